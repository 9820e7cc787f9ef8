"""The generated project's slow reliability suite (fuzz, soak, load, shutdown) passes with
nothing skipped, with the UI and without it (API-only churn meets the limits differently), in
projects without cluster mode (the default leaves it out; test_cluster.py covers it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import assert_suite_passes, bake, make

pytestmark = pytest.mark.serial  # its load and memory figures need the machine to itself


@pytest.fixture(scope="module")
def api_only_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project without the Gradio UI, installed."""
    project = bake(tmp_path_factory.mktemp("api-only"), include_ui=False)
    make("install", project)
    return project


def assert_reliability_passes(project: Path, report: Path) -> None:
    assert not (project / "src/my_fastrtc_app/services/cluster").exists()
    assert not (project / "src/my_fastrtc_app/services/cluster.py").exists()
    assert "redis" not in (project / "pyproject.toml").read_text().lower()
    assert_suite_passes("test-reliability", project, report)


def test_make_test_reliability_passes(default_project: Path, tmp_path: Path) -> None:
    assert_reliability_passes(default_project, tmp_path / "junit.xml")


def test_make_test_reliability_passes_without_the_ui(
    api_only_project: Path, tmp_path: Path
) -> None:
    assert (api_only_project / "src/my_fastrtc_app/ui.py").exists() is False
    assert_reliability_passes(api_only_project, tmp_path / "junit.xml")
