"""The generated project's slow reliability suite (fuzz, soak, load, shutdown) passes with
nothing skipped, with the UI and without it (API-only churn meets the limits differently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import bake, make, make_suite

pytestmark = pytest.mark.serial  # its load and memory figures need the machine to itself

RELIABILITY_TESTS = {
    "test_soak_leaves_no_state_and_little_memory",
    "test_load_every_peer_is_served",
    "test_sigterm_closes_every_connection_and_exits_0",
    "test_a_vanished_peer_is_reclaimed_within_the_peer_timeout",
    "test_no_route_answers_a_server_error_or_an_odd_shape",
    "test_no_websocket_message_harms_the_server",
    "test_every_mounted_route_is_fuzzed",
    "test_a_huge_body_to_any_route_leaves_memory_alone",
}


@pytest.fixture(scope="module")
def api_only_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project without the Gradio UI, installed."""
    project = bake(tmp_path_factory.mktemp("api-only"), include_ui=False)
    make("install", project)
    return project


def assert_reliability_passes(project: Path, report: Path) -> None:
    outcomes = make_suite("test-reliability", project, report)
    assert outcomes == dict.fromkeys(RELIABILITY_TESTS, "passed")


def test_make_test_reliability_passes(default_project: Path, tmp_path: Path) -> None:
    assert_reliability_passes(default_project, tmp_path / "junit.xml")


def test_make_test_reliability_passes_without_the_ui(
    api_only_project: Path, tmp_path: Path
) -> None:
    assert (api_only_project / "src/my_fastrtc_app/ui.py").exists() is False
    assert_reliability_passes(api_only_project, tmp_path / "junit.xml")
