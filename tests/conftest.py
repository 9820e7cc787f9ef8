"""Baking the template and running what it generates."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
# The uv that runs these tests (``uv run`` exports it as UV), handed to every generated
# Makefile so that none has to bootstrap its own.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"


def bake(output_dir: Path, **answers: Any) -> Path:
    """Generate a project with ``answers`` over the defaults; return its directory."""
    return Path(
        cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=answers)
    )


def run(
    args: list[str], cwd: Path, timeout: float = 900, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env={**project_environment(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-8000:]}\n--- stderr\n{result.stderr[-8000:]}"
        )
    return result


def project_environment() -> dict[str, str]:
    """This process's environment, less what pins the template's own Python and virtualenv.

    (A pyenv shim exports PYENV_VERSION, which would hide the Python a project pins.)
    """
    pinned = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYENV_VERSION", "PYENV_DIR"}
    return {k: v for k, v in os.environ.items() if k not in pinned}


def make(target: str, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``make target`` in a generated project, with this session's uv."""
    return run(["make", target, f"UV={UV}", *args], cwd=project, **env)


def junit_results(report: Path) -> tuple[dict[str, int], dict[str, str]]:
    """The counts of a JUnit report, and each test case's outcome by name."""
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    outcomes = {
        str(case.get("name")): next((child.tag for child in case), "passed")
        for case in suite.iter("testcase")
    }
    return counts, outcomes


def make_suite(target: str, project: Path, report: Path) -> dict[str, str]:
    """Run ``make target`` in a generated project; each test case's outcome by name."""
    run(["make", target], cwd=project, timeout=600, PYTEST_ADDOPTS=f"--junitxml={report}")
    return junit_results(report)[1]


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, baked and with its locked environment installed."""
    project = bake(tmp_path_factory.mktemp("default"))
    make("install", project)
    return project
