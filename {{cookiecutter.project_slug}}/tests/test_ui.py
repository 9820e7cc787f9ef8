"""The Gradio UI's mount: where it lives and where ``/`` leads."""

from __future__ import annotations

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door, connect
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import MEDIA


async def test_root_redirects_to_the_ui(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    assert (await http.get("/ui/")).status_code == 200


async def test_the_ui_path_is_configurable() -> None:
    settings = Settings(_env_file=None, ui_path="studio/")  # type: ignore[call-arg]
    assert settings.ui_path == "/studio"
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app"
        ) as http:
            assert (await http.get("/")).headers["location"] == "/studio/"
            assert (await http.get("/studio/")).status_code == 200
            client = await connect(http, Door.UI, ui_path="/studio", **MEDIA)
            await client.wait_connected()
            listed = (await http.get("/connections")).json()
            assert [c["source"] for c in listed] == ["ui"]
            await client.close()
    finally:
        await app.state.streams.close_all()


@pytest.mark.parametrize("ui_path", ["/", "", "//"])
def test_the_ui_cannot_take_the_root(ui_path: str) -> None:
    with pytest.raises(ValueError, match="ui_path"):
        Settings(_env_file=None, ui_path=ui_path)  # type: ignore[call-arg]
