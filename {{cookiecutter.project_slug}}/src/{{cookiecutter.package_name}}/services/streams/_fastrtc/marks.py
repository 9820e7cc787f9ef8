"""How workarounds are marked, the fastrtc versions they were tested with, and the one
adapter between the project's typed input and fastrtc's argument lists."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, TypeVar

from packaging.specifiers import SpecifierSet

logger = logging.getLogger(__name__)

TESTED_WITH = SpecifierSet(">=0.0.34,<0.0.35")
"""The fastrtc versions these workarounds were written and tested against."""
CHECKED = "0.0.34"
"""The fastrtc version each workaround was last checked with, unless it says otherwise."""

Function = TypeVar("Function", bound=Callable[..., Any])


@dataclass(frozen=True)
class Workaround:
    name: str
    checked: str
    """The fastrtc version it was checked with."""
    behaviour: str
    """What fastrtc does that the layer corrects."""
    tests: tuple[str, ...]
    """The tests that prove it (``tests/<file>.py::<test>``)."""


WORKAROUNDS: list[Workaround] = []


def workaround(
    behaviour: str, *tests: str, checked: str = CHECKED
) -> Callable[[Function], Function]:
    """Mark a function as a fastrtc workaround (see the module's docstring)."""

    def mark(function: Function) -> Function:
        WORKAROUNDS.append(Workaround(function.__name__, checked, behaviour, tests))
        return function

    return mark


def fastrtc_args(connection_id: str, value: object) -> list[Any]:
    """fastrtc's argument list for a connection's typed input: the one adapter.

    fastrtc calls a generator or a video handler with ``value`` alone, a ``ReplyOnPause``
    function with the audio, the id and ``value``; a stream handler reads ``input``.
    """
    return [connection_id, value]


def control_values(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The UI controls' values of a ``set_input`` call from fastrtc's UI, which passes the
    WebRTC component's own value first."""
    return args[1:]


def check_version() -> None:
    """Warn, once at start-up, when the installed fastrtc is not one these were tested with."""
    installed = version("fastrtc")
    if installed not in TESTED_WITH:
        logger.warning(
            "fastrtc %s is installed; the layer's workarounds were tested with fastrtc %s",
            installed,
            TESTED_WITH,
        )
