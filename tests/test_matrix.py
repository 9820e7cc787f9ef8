"""Every pair of answers, baked, linted, type-checked and tested.

The full product of the choices in cookiecutter.json is 288 projects. The answers act on
different files (the license, CI and Docker files stand alone; the UI and the Python version
change code and interpreter), so what can break is a pair of answers that meet in one file:
the matrix is a covering set that holds every pair of answers at least once (14 projects),
computed from cookiecutter.json so that a new choice joins it by itself.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, UV, bake, make, project_environment

Row = dict[str, Any]


def choices() -> dict[str, list[Any]]:
    """The answers that choose something, with every value they may take."""
    spec = json.loads((ROOT / "cookiecutter.json").read_text())
    found: dict[str, list[Any]] = {}
    for key, value in spec.items():
        if isinstance(value, list):
            found[key] = value
        elif isinstance(value, bool):
            found[key] = [value, not value]
    return found


def pairs_of(row: Row) -> Iterator[tuple[tuple[str, Any], tuple[str, Any]]]:
    return itertools.combinations(sorted(row.items(), key=lambda kv: kv[0]), 2)


def covering_rows(options: dict[str, list[Any]]) -> list[Row]:
    """A small set of rows that holds every pair of answers (greedy, deterministic)."""
    keys = list(options)
    product = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())
    ]
    uncovered = {pair for row in product for pair in pairs_of(row)}
    rows: list[Row] = []
    while uncovered:
        best = max(product, key=lambda row: len(uncovered.intersection(pairs_of(row))))
        uncovered.difference_update(pairs_of(best))
        rows.append(best)
    return rows


OPTIONS = choices()
ROWS = covering_rows(OPTIONS)


def row_id(row: Row) -> str:
    return "-".join(
        f"{'no-' if value is False else ''}{key}" if isinstance(value, bool) else str(value)
        for key, value in row.items()
    )


def test_the_rows_cover_every_pair_of_answers() -> None:
    every_pair = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(sorted(OPTIONS), 2)
        for x in OPTIONS[a]
        for y in OPTIONS[b]
    }
    covered = {pair for row in ROWS for pair in pairs_of(row)}
    assert covered == every_pair
    assert len(ROWS) < len(list(itertools.product(*OPTIONS.values())))
    print(f"{len(ROWS)} projects cover all {len(every_pair)} pairs of answers")


def expected_paths(row: Row) -> dict[str, bool]:
    """Paths whose presence the answers decide: path -> whether it must exist."""
    package = "src/my_fastrtc_app"
    handler = row["handler"].replace("-", "_")
    handlers = {
        path: name == handler
        for name in ("echo", "reply_on_pause", "custom")
        for path in (f"{package}/handlers/{name}.py", f"tests/test_{name}.py")
    }
    echoes = row["handler"] != "reply-on-pause"  # what the load generator times
    return {
        **handlers,
        f"{package}/loadtest.py": echoes,
        "tests/test_loadtest.py": echoes,
        "LICENSE": row["license"] != "none",
        "licenses": False,
        "Dockerfile": row["include_docker"],
        "docker-compose.yml": row["include_docker"],
        "deploy/nginx.conf": row["include_docker"],
        "tests/test_docker.py": row["include_docker"],
        "tests/test_load_balancer.py": row["include_docker"],
        ".dockerignore": row["include_docker"],
        f"{package}/ui.py": row["include_ui"],
        "tests/test_ui.py": row["include_ui"],
        "tests/test_browser.py": row["include_ui"],
        ".github/workflows/ci.yml": row["ci"] == "github-actions",
    }


def has_python(version: str, project: Path) -> bool:
    """Whether uv finds the Python the project pins (in its directory, as pyenv needs)."""
    found = subprocess.run(
        [UV, "python", "find", "--no-project", version],
        cwd=project,
        env=project_environment(),
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@pytest.mark.parametrize("row", ROWS, ids=[row_id(row) for row in ROWS])
def test_answers_give_a_clean_passing_project(row: Row, tmp_path: Path) -> None:
    project = bake(tmp_path, **row)
    if not has_python(row["python_version"], project):
        pytest.skip(f"Python {row['python_version']} is not installed here")

    for path, present in expected_paths(row).items():
        assert (project / path).exists() == present, path
    assert (project / ".python-version").read_text().strip() == row["python_version"]
    makefile = (project / "Makefile").read_text()
    assert ("docker-build:" in makefile) == row["include_docker"]
    assert ("test-e2e:" in makefile) == row["include_ui"]
    assert ("loadtest:" in makefile) == (row["handler"] != "reply-on-pause")

    make("install", project)
    make("lint", project)
    report = tmp_path / "junit.xml"
    browser = row["include_ui"] and bool(os.environ.get("CI") or shutil.which("chromium"))
    make(
        "test",
        project,
        PYTEST_ADDOPTS=f"--junitxml={report}",
        REQUIRE_BROWSER="1" if browser else "0",
    )

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == suite.get("errors") == "0"
    skipped = [
        case.get("name") for case in suite.iter("testcase") if case.find("skipped") is not None
    ]
    if browser or not row["include_ui"]:
        assert skipped == []
    version = subprocess.run(
        [UV, "run", "--locked", "python", "-c", "import sys; print(sys.version_info[:2])"],
        cwd=project,
        env=project_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == str(tuple(int(n) for n in row["python_version"].split(".")))
