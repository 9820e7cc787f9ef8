"""The generated project's slow reliability suite (soak, load, shutdown) passes, nothing skipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .conftest import run

RELIABILITY_TESTS = {
    "test_soak_leaves_no_state_and_little_memory",
    "test_load_every_peer_gets_its_echo",
    "test_sigterm_closes_every_connection_and_exits_0",
    "test_a_vanished_peer_is_reclaimed_within_the_peer_timeout",
    "test_no_input_causes_a_server_error",
}


def test_make_test_reliability_passes(default_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"

    run(
        ["make", "test-reliability"],
        cwd=default_project,
        timeout=600,
        PYTEST_ADDOPTS=f"--junitxml={report}",
    )

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    outcomes = {
        str(case.get("name")): next((child.tag for child in case), "passed")
        for case in suite.iter("testcase")
    }
    assert outcomes == dict.fromkeys(RELIABILITY_TESTS, "passed")
