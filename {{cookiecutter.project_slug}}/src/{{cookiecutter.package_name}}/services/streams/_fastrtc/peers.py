"""Workarounds on fastrtc's peers, tracks and tasks, as plain functions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import aioice.ice
from fastrtc.tracks import ServerToClientAudio, ServerToClientVideo, StreamHandlerBase
from fastrtc.utils import create_message, current_context, webrtc_error_handler
from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin
from fastrtc.websocket import WebSocketHandler

from .marks import workaround

logger = logging.getLogger(__name__)

CONSENT_CHECKS = 3
"""Consent checks a peer may miss in a row before it is dropped."""
CLOSE_NOTICE_S = 0.1
"""How long closing a UI connection waits for the page's notice to leave."""
GENERATED = (ServerToClientAudio, ServerToClientVideo)
"""fastrtc's tracks of receive mode, which play what the handler (a generator) yields."""
WORKERS = ("decode_task", "process_input_task", "start_up_task")
"""The tasks fastrtc runs for a track's handler (``AudioCallback.start``)."""
FASTRTC_MIXIN = inspect.getfile(WebRTCConnectionMixin)


@workaround(
    "aioice drops a peer that stops answering after 6 consent checks 5 s apart (~30 s)",
    "tests/test_reliability.py::test_a_vanished_peer_is_reclaimed_within_the_peer_timeout",
    "tests/test_browser.py::test_a_vanished_browser_is_dropped_after_the_peer_timeout",
)
def set_peer_timeout(seconds: float) -> None:
    """Drop a peer about ``seconds`` (+1.5 s of STUN timeouts) after it stops answering."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"peer timeout must be a positive number of seconds, got {seconds}")
    aioice.ice.CONSENT_FAILURES = CONSENT_CHECKS
    aioice.ice.CONSENT_INTERVAL = seconds / CONSENT_CHECKS  # type: ignore[assignment]


@workaround(
    "fastrtc's update_connection message is never sent when the server closes a peer",
    "tests/test_doors.py::test_a_page_is_told_when_the_server_closes_its_connection",
    "tests/test_browser.py::test_the_page_learns_at_once_that_the_server_closed_it",
)
async def tell_page_closed(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Tell a UI page over its data channel that the server closes its connection."""
    channel = owner.data_channels.get(connection_id)
    if channel is None or channel.readyState != "open":
        return
    channel.send(create_message("update_connection", "closed"))
    await asyncio.sleep(CLOSE_NOTICE_S)  # for the transport to send it before the peer closes


@workaround(
    "fastrtc's own close only asks the browser to hang up, and frees nothing until it does",
    "tests/test_routes.py::test_delete_closes_the_peer",
    "tests/test_streams.py::test_close_removes_it_everywhere",
)
async def discard(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Close the connection's peer and release everything ``owner`` holds for it at once."""
    if (pc := owner.pcs.get(connection_id)) is not None:
        await pc.close()
    for track in owner.clean_up(connection_id):
        track.stop()


async def close_websocket(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Close a websocket connection's socket, if it is still open."""
    tracks = owner.connections.get(connection_id) or []
    if tracks and isinstance(tracks[0], WebSocketHandler) and tracks[0].websocket:
        with contextlib.suppress(RuntimeError):  # the socket was closed already
            await tracks[0].websocket.close()


@workaround(
    "fastrtc's websocket handler reads a start-up task that only a start makes: a socket "
    "that ends before its start fails with an exception of the ASGI application",
    "tests/test_websocket_door.py::test_a_socket_that_ends_before_its_start_leaves_no_error",
)
def no_start_up_task_before_start() -> None:
    """Give fastrtc's websocket handlers no start-up task until a ``start`` makes one."""
    WebSocketHandler.start_up_task = None  # type: ignore[assignment]


@workaround(
    "fastrtc calls a receive-mode generator once, so later inputs never reach it",
    "tests/test_tone.py::test_every_new_gain_is_heard",
    "tests/test_color_bars.py::test_every_new_gain_is_seen",
)
def restart_generators(tracks: Sequence[Any], args: list[Any]) -> None:
    """Start a receive-mode generator again with the input just set (it runs no code until
    its first frame is drawn, so swapping it is safe)."""
    for track in tracks:
        if isinstance(track, GENERATED) and track.generator is not None:
            track.generator = track.event_handler(*args[1:])  # as fastrtc first calls it


def give_handlers(tracks: Sequence[Any], value: object) -> None:
    """Set ``input`` on the connection's stream handlers that declare one."""
    for track in tracks:
        handler = getattr(track, "event_handler", track)
        if isinstance(handler, StreamHandlerBase) and hasattr(handler, "input"):
            handler.input = value


def own_copy(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of the handler fastrtc wrapped (in its error handler), wrapped the same way."""
    copy = getattr(getattr(handler, "__wrapped__", handler), "copy", None)
    return handler if copy is None else cast(Callable[..., Any], webrtc_error_handler(copy()))


def counted(name: str, method: Callable[..., Any], count: Callable[[], None]) -> Callable[..., Any]:
    """``method``, counting and logging what it raises; a coroutine function stays one
    (fastrtc tells the two kinds apart)."""

    def raised(exc: Exception) -> None:
        count()
        context = current_context.get()
        logger.error(
            "handler %s raised %s: %s",
            name,
            type(exc).__name__,
            exc,
            extra={
                "event": "handler_error",
                "connection_id": context.webrtc_id if context else None,
                "method": name,
            },
        )

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def counted_coroutine(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                raised(exc)
                raise

        return counted_coroutine

    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            raised(exc)
            raise

    return counted


def stop_workers(track: object) -> None:
    """Cancel the tasks that run a closed connection's handler.

    fastrtc's ``stop`` only sets a flag its output loop reads between two frames, so a
    handler waiting for audio that never comes kept the whole peer for 60 s. A task that
    ended with the handler's exception is marked as seen: the layer has counted it already.
    """
    for name in WORKERS:
        task = getattr(track, name, None)
        if not isinstance(task, asyncio.Task):
            continue
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()


def cancel_tasks(
    function: str, matches: Callable[[dict[str, Any]], bool], filename: str | None = None
) -> None:
    """Cancel the running tasks of fastrtc's coroutine ``function`` whose locals ``matches``:
    fastrtc keeps no handle on them, so finding them is the only way."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no event loop running, so no task either
        return
    for task in tasks:
        coroutine = task.get_coro()
        if (
            inspect.iscoroutine(coroutine)
            and coroutine.cr_code.co_name == function
            and (filename is None or coroutine.cr_code.co_filename == filename)
            and coroutine.cr_frame is not None
            and matches(coroutine.cr_frame.f_locals)
        ):
            task.cancel()
