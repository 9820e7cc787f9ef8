"""The default answers give a project that is complete, clean, tested and runnable."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, bake, run

EXPECTED_FILES = {
    ".dockerignore",
    ".env.example",
    ".gitignore",
    "Dockerfile",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "uv.lock",
    "src/my_fastrtc_app/__init__.py",
    "src/my_fastrtc_app/__main__.py",
    "src/my_fastrtc_app/api/__init__.py",
    "src/my_fastrtc_app/api/connections.py",
    "src/my_fastrtc_app/api/deps.py",
    "src/my_fastrtc_app/api/errors.py",
    "src/my_fastrtc_app/api/health.py",
    "src/my_fastrtc_app/app.py",
    "src/my_fastrtc_app/client.py",
    "src/my_fastrtc_app/handlers/__init__.py",
    "src/my_fastrtc_app/handlers/echo.py",
    "src/my_fastrtc_app/py.typed",
    "src/my_fastrtc_app/services/__init__.py",
    "src/my_fastrtc_app/services/streams.py",
    "src/my_fastrtc_app/settings.py",
    "src/my_fastrtc_app/stream.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_live_server.py",
    "tests/test_routes.py",
    "tests/test_streams.py",
}
TOOL_DIRS = {".venv", ".tools", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def project_files(project: Path) -> set[str]:
    return {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and not TOOL_DIRS.intersection(p.relative_to(project).parts)
    }


def test_tree_is_complete_and_rendered(tmp_path: Path) -> None:
    project = bake(tmp_path)

    assert project.name == "my-fastrtc-app"
    assert project_files(project) == EXPECTED_FILES
    for name in EXPECTED_FILES:
        text = (project / name).read_text()
        assert not re.search(r"\{\{|\{%|cookiecutter", text), f"unrendered Jinja in {name}"


def test_answers_reach_the_project(tmp_path: Path) -> None:
    project = bake(tmp_path, project_name="Voice Lab", description='Say "hi"', version="2.0.1")

    assert project.name == "voice-lab"
    assert (project / "src/voice_lab/services/streams.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "voice-lab"' in pyproject
    assert 'version = "2.0.1"' in pyproject
    assert 'description = "Say \\"hi\\""' in pyproject
    assert 'title: str = "Voice Lab"' in (project / "src/voice_lab/settings.py").read_text()


def test_post_generation_prints_next_steps(tmp_path: Path) -> None:
    result = run(["cookiecutter", "--no-input", str(ROOT), "-o", str(tmp_path)], cwd=tmp_path)
    assert "cd my-fastrtc-app && make run" in result.stdout


def test_lock_matches_the_project(default_project: Path) -> None:
    run(["uv", "lock", "--check"], cwd=default_project)


def test_lint_and_types_are_clean(default_project: Path) -> None:
    result = run(["make", "lint"], cwd=default_project)
    assert "All checks passed!" in result.stdout
    assert "Success: no issues found" in result.stdout


def test_generated_suite_passes_with_nothing_skipped(default_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"

    run(["make", "test"], cwd=default_project, PYTEST_ADDOPTS=f"--junitxml={report}")

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] >= 40, counts
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    names = {case.get("name") for case in suite.iter("testcase")}
    assert "test_api_and_ui_peers_are_one_set" in names  # the real-server, real-peer test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_run_serves_the_ui_and_the_api(default_project: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=default_project,
        env=os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so that the whole group (make, uv, python) can be stopped
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "make run exited"
            assert time.monotonic() < deadline, "make run did not serve within 90 s"
            time.sleep(0.3)

        assert httpx.get(f"{base}/connections").json() == []
        ui = httpx.get(f"{base}/", follow_redirects=True)
        assert ui.status_code == 200
        assert str(ui.url) == f"{base}/ui/"
        assert "gradio" in ui.text.lower()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.parametrize(
    "target", ["install", "run", "test", "lint", "format", "docker-build", "docker-run"]
)
def test_makefile_has_the_targets(default_project: Path, target: str) -> None:
    makefile = (default_project / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE)
