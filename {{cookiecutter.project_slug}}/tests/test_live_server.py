"""The app as users run it (``python -m``, uvicorn, 127.0.0.1) with real peers over the network."""

from __future__ import annotations

import asyncio
import json

import httpx

from {{ cookiecutter.package_name }}.client import Door, Peer, connect, wait_until


async def first_event(http: httpx.AsyncClient, connection_id: str, gain: float) -> dict[str, float]:
    """The first server-sent output of the connection that reports ``gain``."""
    async with http.stream("GET", f"/connections/{connection_id}/outputs") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["gain"] == gain:
                    return dict(event)
    raise AssertionError("the event stream ended first")


async def test_api_and_ui_peers_are_one_set(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=10) as http:
        api = await connect(http, Door.API)
        ui = await connect(http, Door.UI)
        peers: list[Peer] = [api, ui]
        try:
            for peer in peers:
                await peer.wait_connected()
                await peer.wait_frames(25)  # the echo of our tone comes back
                assert peer.last_level_dbfs > -20

            listed = (await http.get("/connections")).json()
            assert {(c["id"], c["source"], c["state"]) for c in listed} == {
                (api.connection_id, "api", "connected"),
                (ui.connection_id, "ui", "connected"),
            }

            for peer in peers:
                response = await http.post(
                    f"/connections/{peer.connection_id}/input", json={"gain": 0}
                )
                assert response.status_code == 204
                async with asyncio.timeout(10):
                    event = await first_event(http, peer.connection_id, gain=0.0)
                assert event["frames"] > 0
                await peer.wait_frames(25)
                assert peer.last_level_dbfs < -60  # the handler applied the input

            assert (await http.delete(f"/connections/{api.connection_id}")).status_code == 204
            await ui.close()

            async def nothing_listed() -> bool:
                return bool((await http.get("/connections")).json() == [])

            await wait_until(nothing_listed, within=5)
            assert api.state == "closed"
        finally:
            for peer in peers:
                await peer.close()
