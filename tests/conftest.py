"""Baking the template and running what it generates."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
# The uv that runs these tests (``uv run`` exports it as UV), handed to every generated
# Makefile so that none has to bootstrap its own.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
# What tools leave in a project, not what the template generates.
TOOL_DIRS = {".venv", ".tools", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def hook(name: str) -> types.ModuleType:
    """``hooks/<name>.py`` as a module, unrendered: the hooks read their answers in main()."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def turn_required() -> bool:
    """CI must run the TURN relay tests; elsewhere they run wherever coturn is installed."""
    return bool(os.environ.get("CI") or shutil.which("turnserver"))


def project_environment() -> dict[str, str]:
    """This process's environment, less what pins the template's own Python and virtualenv,
    and less what a make running these tests hands its children (MAKELEVEL, MAKEFLAGS: a
    generated project's make would print its "Entering directory" lines and join that make's
    jobs).

    (A pyenv shim exports PYENV_VERSION, which would hide the Python a project pins.)
    """
    pinned = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYENV_VERSION", "PYENV_DIR"}
    outer_make = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}
    return {k: v for k, v in os.environ.items() if k not in pinned | outer_make}


def make(
    target: str, project: Path, *args: str, timeout: float = 900, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``make target`` in a generated project, with this session's uv."""
    return run(["make", target, f"UV={UV}", *args], cwd=project, timeout=timeout, **env)


def project_files(project: Path) -> set[str]:
    """The files of a project, relative to it, less what tools leave there."""
    return {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and not TOOL_DIRS.intersection(p.relative_to(project).parts)
    }


# GitHub Actions' own expressions, ${{ ... }}, legitimate in a workflow and nowhere else.
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^{}]*\}\}")
JINJA = re.compile(r"\{\{|\{%|\{#")


def unrendered(project: Path) -> list[str]:
    """The text files of a project holding Jinja that was not rendered: ``{{``, ``{%`` or
    ``{#`` (outside a GitHub workflow's ``${{ ... }}``) or ``cookiecutter.`` anywhere."""
    found = []
    for name in sorted(project_files(project)):
        try:
            text = (project / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text: Jinja never renders into it
        jinja = GITHUB_EXPRESSION.sub("", text) if name.startswith(".github/") else text
        if JINJA.search(jinja) or "cookiecutter." in text:
            found.append(name)
    return found


# Redis by name, in any case (``redis``, ``APP_REDIS_URL``), not inside a word: the licenses'
# "Redistribution" is no mention.
REDIS = re.compile(rb"(?<![a-z])redis(?![a-z])", re.IGNORECASE)


def mentioning(project: Path, pattern: re.Pattern[bytes]) -> list[str]:
    """The files of a project, text or not, in which ``pattern`` is found."""
    return sorted(
        name for name in project_files(project) if pattern.search((project / name).read_bytes())
    )


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


def junit_modules(report: Path, outcome: str | None = None) -> set[str]:
    """The test modules (``tests.test_browser``, ...) a JUnit report has cases from, or cases
    with ``outcome`` ("skipped", "failure", "error", "passed") if given."""
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    return {
        str(case.get("classname")).split("::")[0]
        for case in suite.iter("testcase")
        if outcome is None or next((child.tag for child in case), "passed") == outcome
    }


def assert_suite_passes(target: str, project: Path, report: Path) -> dict[str, int]:
    """Run ``make target`` in a generated project; it must run tests and pass every one:
    none failed, errored or skipped. Returns the report's counts."""
    run(
        ["make", target, f"UV={UV}"],
        cwd=project,
        timeout=600,
        PYTEST_ADDOPTS=f"--junitxml={report}",
    )
    counts = junit_results(report)[0]
    assert counts["tests"] > 0, counts
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    return counts


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the projects this process lints, one after another: the libraries'
    types are checked once, not once a project (mypy still checks each project's own code)."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, baked and with its locked environment installed."""
    project = bake(tmp_path_factory.mktemp("default"))
    make("install", project)
    return project


@pytest.fixture(scope="session")
def cluster_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project with cluster mode, baked and with its locked environment installed."""
    project = bake(tmp_path_factory.mktemp("cluster"), include_cluster=True)
    make("install", project)
    return project
