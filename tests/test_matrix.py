"""Every pair of answers, baked, linted, type-checked and tested.

The full product of the choices in cookiecutter.json is 2592 projects, of which 864 are
valid: fastrtc supports 7 of the 9 modality/mode pairs, and the reply-on-pause and custom
handlers exist for audio send-receive only (the pre-generation hook refuses the rest). The
answers act on different files (the license stands alone; CI, Docker, the UI, the media, the
handler and the Python version change code, tests and interpreter), so what can break is a
pair of answers that meet in one file: the matrix is a covering set of valid projects that
holds every pair of answers a valid project can hold, and each license once (17 projects).
It is computed from cookiecutter.json and the hook's own rule, so a new choice joins it by
itself.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from .conftest import ROOT, UV, bake, make, project_environment

Row = dict[str, Any]


SPEC: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())


def choices() -> dict[str, list[Any]]:
    """The answers that choose something, with every value they may take."""
    found: dict[str, list[Any]] = {}
    for key, value in SPEC.items():
        if isinstance(value, list):
            found[key] = value
        elif isinstance(value, bool):
            found[key] = [value, not value]
    return found


def pre_gen_hook() -> types.ModuleType:
    """``hooks/pre_gen_project.py`` as a module (rendered with no answers: it reads them later)."""
    source = jinja2.Template((ROOT / "hooks" / "pre_gen_project.py").read_text()).render(
        cookiecutter={}
    )
    module = types.ModuleType("pre_gen_project")
    exec(compile(source, "pre_gen_project.py", "exec"), module.__dict__)
    return module


MEDIA_PROBLEM = pre_gen_hook().media_problem


def is_valid(row: Row) -> bool:
    """Whether the hook takes these answers (the media rule; the other answers are free)."""
    return MEDIA_PROBLEM({**SPEC, **row}) is None


STANDALONE = {"license"}
"""Answers that only pick a file nothing else reads: each value is needed once, not each pair."""


def pairs_of(row: Row) -> Iterator[tuple[tuple[str, Any], tuple[str, Any]]]:
    """The pairs of answers ``row`` holds; a standalone answer pairs with itself only."""
    items = sorted(row.items(), key=lambda kv: kv[0])
    for a, b in itertools.combinations(items, 2):
        if a[0] not in STANDALONE and b[0] not in STANDALONE:
            yield a, b
    for item in items:
        if item[0] in STANDALONE:
            yield item, item


def valid_rows(options: dict[str, list[Any]]) -> list[Row]:
    keys = list(options)
    product = (
        dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())
    )
    return [row for row in product if is_valid(row)]


def covering_rows(options: dict[str, list[Any]]) -> list[Row]:
    """A small set of valid rows that holds every pair a valid row holds (greedy, deterministic)."""
    product = valid_rows(options)
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
    keys = sorted(set(OPTIONS) - STANDALONE)
    every_pair = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(keys, 2)
        for x in OPTIONS[a]
        for y in OPTIONS[b]
    } | {((key, x), (key, x)) for key in STANDALONE for x in OPTIONS[key]}
    possible = {pair for row in valid_rows(OPTIONS) for pair in pairs_of(row)}
    impossible = every_pair - possible
    covered = {pair for row in ROWS for pair in pairs_of(row)}
    assert covered == possible
    assert all(is_valid(row) for row in ROWS)
    # What no valid project holds is what the hook refuses, and only that.
    assert impossible == {
        (("handler", handler), (key, value))
        for handler in ("custom", "reply-on-pause")
        for key, value in [("mode", "receive"), ("mode", "send")]
    } | {
        (("handler", handler), ("modality", value))
        for handler in ("custom", "reply-on-pause")
        for value in ("audio-video", "video")
    } | {(("modality", "audio-video"), ("mode", mode)) for mode in ("receive", "send")}
    assert len(ROWS) < len(valid_rows(OPTIONS))
    print(f"{len(ROWS)} projects cover all {len(possible)} possible pairs of answers")


def expected_paths(row: Row) -> dict[str, bool]:
    """Paths whose presence the answers decide: path -> whether it must exist."""
    package = "src/my_fastrtc_app"
    demos: dict[str, dict[str, str]] = SPEC["_demo_handlers"]
    names = [
        *(name for modes in demos.values() for name in modes.values()),
        "reply_on_pause",
        "custom",
    ]
    handler = (
        demos[row["modality"]][row["mode"]]
        if row["handler"] == "echo"
        else row["handler"].replace("-", "_")
    )
    handlers = {
        path: name == handler
        for name in names
        for path in (f"{package}/handlers/{name}.py", f"tests/test_{name}.py")
    }
    echoes = handler in ("echo", "custom")  # what the load generator times
    return {
        **handlers,
        f"{package}/loadtest.py": echoes,
        "tests/test_loadtest.py": echoes,
        "tests/test_handler_errors.py": handler in ("echo", "custom", "reply_on_pause", "av_echo"),
        "LICENSE": row["license"] != "none",
        "licenses": False,
        "Dockerfile": row["include_docker"],
        "docker-compose.yml": row["include_docker"],
        "deploy/nginx.conf": row["include_docker"],
        "tests/test_docker.py": row["include_docker"],
        "tests/test_load_balancer.py": row["include_docker"],
        ".dockerignore": row["include_docker"],
        f"{package}/ui.py": row["include_ui"],
        f"{package}/api/ui_calls.py": row["include_ui"],
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
    assert ("loadtest:" in makefile) == expected_paths(row)["tests/test_loadtest.py"]

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
