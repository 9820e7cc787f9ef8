"""The fastrtc workarounds: each in the README's table with the tests that prove it, those
tests real, installed once per stream, and a warning for a fastrtc they were not tested with."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from {{ cookiecutter.package_name }}.media import build_stream, build_streams
from {{ cookiecutter.package_name }}.services.streams._fastrtc import WORKAROUNDS, marks
from {{ cookiecutter.package_name }}.settings import Settings

PROJECT = Path(__file__).resolve().parent.parent
HANDLERS = ("echo", "meter", "tone", "video_echo", "video_meter", "color_bars", "av_echo")
ANSWER_SPECIFIC = {
    "test_browser.py",
    "test_handler_errors.py",
    *(f"test_{name}.py" for name in (*HANDLERS, "reply_on_pause", "voice_agent", "custom")),
}
"""Test files that only some answers keep (the UI, a handler): a workaround may name them."""


def table_rows() -> list[str]:
    readme = (PROJECT / "README.md").read_text()
    start = readme.index("| fastrtc behaviour |")
    table = readme[start:].split("\n\n", 1)[0]
    return table.splitlines()[2:]


def test_every_workaround_has_its_row_naming_its_tests() -> None:
    rows = table_rows()
    assert len(rows) == len(WORKAROUNDS)
    for workaround in WORKAROUNDS:
        (row,) = [row for row in rows if f"`{workaround.name}`" in row]
        assert f"| {workaround.behaviour} |" in row
        named = re.findall(r"`(test_\w+\.py::\w+)`", row)
        assert named == [test.removeprefix("tests/") for test in workaround.tests]


def test_the_tests_a_workaround_names_exist() -> None:
    assert all(workaround.tests for workaround in WORKAROUNDS)
    for workaround in WORKAROUNDS:
        for test in workaround.tests:
            file, name = test.split("::")
            path = PROJECT / file
            if not path.exists():
                assert path.name in ANSWER_SPECIFIC, test
                continue
            assert re.search(rf"^(async )?def {name}\(", path.read_text(), re.M), test


def test_the_workarounds_are_installed_once_per_stream() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    stream = build_stream(settings)
    build_streams(stream, settings)
    with pytest.raises(RuntimeError, match="installed on this stream already"):
        build_streams(stream, settings)


def test_a_fastrtc_outside_the_tested_versions_is_warned_of(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with caplog.at_level(logging.WARNING):
        marks.check_version()
    assert not caplog.records  # the installed fastrtc is one they were tested with

    monkeypatch.setattr(marks, "TESTED_WITH", SpecifierSet("<0.0.1"))
    with caplog.at_level(logging.WARNING):
        marks.check_version()
    (record,) = caplog.records
    assert "tested with fastrtc <0.0.1" in record.getMessage()
