"""A handler that raises is counted in /metrics and logged, on every door, with real peers.

(Generated where the handler is a fastrtc stream handler whose media comes back: the layer
counts what those raise.)
"""

from __future__ import annotations

import inspect
import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door, wait_until
from {{ cookiecutter.package_name }}.handlers import build_handler
from {{ cookiecutter.package_name }}.handlers.io import AudioFrame
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect
from .test_observability import sample


class BrokenError(RuntimeError):
    """What the handler below raises."""


@pytest.mark.parametrize("door", DOORS)
async def test_a_handler_that_raises_is_counted_and_logged(
    http: httpx.AsyncClient,
    peer: Connect,
    door: Door,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    healthy = await peer(door)
    await healthy.wait_frames(10)
    assert sample((await http.get("/metrics")).text, "app_handler_errors_total") == 0

    handler_class = type(build_handler())

    def broken_receive(self: object, frame: AudioFrame) -> None:
        raise BrokenError("broken on purpose")

    async def broken_async_receive(self: object, frame: AudioFrame) -> None:
        raise BrokenError("broken on purpose")

    # The handler's class raises for connections made from now on; fastrtc awaits or calls
    # receive as the class defines it, so the stand-in is of the same kind.
    is_async = inspect.iscoroutinefunction(handler_class.receive)
    receive = broken_async_receive if is_async else broken_receive
    monkeypatch.setattr(handler_class, "receive", receive)
    caplog.set_level(logging.ERROR, logger=AppStreams.__module__)
    broken = await peer(door)

    async def counted() -> bool:
        text = (await http.get("/metrics")).text
        return sample(text, "app_handler_errors_total") >= 1

    await wait_until(counted, within=10)
    errors = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "handler_error"]
    assert errors[0]["connection_id"] == broken.connection_id
    assert errors[0]["method"] == "receive"
    # the connection made before keeps echoing
    await healthy.wait_frames(10)
