"""Every pair of answers, baked, linted, type-checked and tested.

The full product of the choices in cookiecutter.json is 5376 projects, of which 1920 are
valid: the media question offers the 7 modality/direction pairs fastrtc supports, and the
reply-on-pause, voice-agent and custom handlers exist for audio/send-receive only (the
pre-generation hook refuses the rest). The media answer holds two facts, a modality and a
direction, which meet other answers in different files: pairs are counted on its parts
(``PARTS``), so that video with the UI and receive with the UI are each a pair to hold.
The answers act on different files (the license stands alone; CI, Docker, cluster
mode, the UI, the media, the handler and the Python version change code, tests and
interpreter), so what can break is a pair of answers that meet in one file: the matrix is a
covering set of valid projects that holds every pair of answers a valid project can hold,
and each license once. It is computed from cookiecutter.json and the hook's own rule, so a
new choice joins it by itself. Its first row is the default answers, whose project
test_default_project.py lints and tests: here that row's tree is checked, not its suite run
a second time. A slow answer (``SLOW``: the voice agent, whose suite recognizes speech) is
in the fewest rows that hold its pairs, one for each Python version. The browser tests (a
minute of Chromium each time) run in the fewest rows that hold every pair with the UI; the
other rows' suites leave them out.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from .conftest import (
    REDIS,
    ROOT,
    UV,
    bake,
    hook,
    junit_modules,
    junit_results,
    make,
    mentioning,
    project_environment,
    turn_required,
    unrendered,
)

Row = dict[str, Any]
Pair = tuple[tuple[str, Any], tuple[str, Any]]


SPEC: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())


def choices() -> dict[str, list[Any]]:
    """The answers that choose something, with every value they may take (the default first)."""
    found: dict[str, list[Any]] = {}
    for key, value in SPEC.items():
        if key.startswith("_"):
            continue  # private: data for the hooks, not a question
        if isinstance(value, list):
            found[key] = value
        elif isinstance(value, bool):
            found[key] = [value, not value]
    return found


HANDLER_PROBLEM = hook("pre_gen_project").handler_problem
POST_GEN = hook("post_gen_project")


def is_valid(row: Row) -> bool:
    """Whether the hook takes these answers (the handler rule; the other answers are free)."""
    return HANDLER_PROBLEM({**SPEC, **row}) is None


PARTS = {"media": ("modality", "mode")}
"""Answers that hold several facts, each meeting other answers in its own files: an answer's
value is its parts' values joined by "/"."""


def parts(row: Row) -> Row:
    """``row`` with each answer of ``PARTS`` split into its parts."""
    split: Row = {}
    for key, value in row.items():
        if key in PARTS:
            split.update(zip(PARTS[key], str(value).split("/"), strict=True))
        else:
            split[key] = value
    return split


def part_options(options: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The options with each answer of ``PARTS`` replaced by its parts' values, in order."""
    split: dict[str, list[Any]] = {}
    for key, values in options.items():
        if key not in PARTS:
            split[key] = values
            continue
        for index, part in enumerate(PARTS[key]):
            split[part] = list(dict.fromkeys(str(value).split("/")[index] for value in values))
    return split


STANDALONE = {"license"}
"""Answers that only pick a file nothing else reads: each value is needed once, not each pair."""


def pairs_of(row: Row) -> Iterator[Pair]:
    """The pairs of answers ``row`` holds; a standalone answer pairs with itself only."""
    items = sorted(parts(row).items(), key=lambda kv: kv[0])
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


SLOW = {("handler", "voice-agent")}
"""Answers whose project's suite is slow (speech recognition on the CPU): held by as few rows
as their pairs allow, as many as the values of the answer they meet in most values."""


def covering_rows(options: dict[str, list[Any]]) -> list[Row]:
    """A small set of valid rows that holds every pair a valid row holds (greedy, deterministic),
    starting with the default answers: first the pairs of each slow answer, by rows that hold
    it; then the others, by rows that hold none; then each row whose pairs the others hold is
    dropped."""
    product = valid_rows(options)
    every = {pair for row in product for pair in pairs_of(row)}
    default = {key: values[0] for key, values in options.items()}
    rows: list[Row] = [default]
    uncovered = every - set(pairs_of(default))

    def cover(pairs: set[Pair], candidates: list[Row]) -> None:
        """Add the candidate holding most of ``pairs`` not held yet, then most others, until
        ``pairs`` are all held."""
        while pairs & uncovered:
            best = max(
                candidates,
                key=lambda row: (
                    len(pairs & uncovered & set(pairs_of(row))),
                    len(uncovered & set(pairs_of(row))),
                ),
            )
            assert pairs & uncovered & set(pairs_of(best)), "pairs no candidate holds"
            uncovered.difference_update(pairs_of(best))
            rows.append(best)

    for answer in sorted(SLOW):
        holding = [row for row in product if answer in row.items()]
        cover({pair for pair in every if answer in pair}, holding)
    cover(every, [row for row in product if not SLOW & set(row.items())])
    for row in rows[1:]:
        others = [other for other in rows if other is not row]
        if {pair for other in others for pair in pairs_of(other)} == every:
            rows = others
    return rows


OPTIONS = choices()
ROWS = covering_rows(OPTIONS)
DEFAULT, *OTHER_ROWS = ROWS


def with_the_ui(row: Row) -> set[Pair]:
    """The pairs of ``row`` that hold the UI: those the browser tests are needed for."""
    return {pair for pair in pairs_of(row) if ("include_ui", True) in pair}


def browser_rows(rows: list[Row]) -> list[Row]:
    """The fewest rows (greedy) that hold every pair with the UI the rows hold, the default
    first (its browser tests run through make test-e2e in test_default_project.py). The
    other rows' suites leave the browser tests out: each runs a minute of Chromium, and a
    pair of two other answers does not need a browser to meet."""
    uncovered = {pair for row in rows for pair in with_the_ui(row)} - with_the_ui(rows[0])
    chosen = [rows[0]]
    while uncovered:
        best = max(rows, key=lambda row: len(uncovered & with_the_ui(row)))
        uncovered -= with_the_ui(best)
        chosen.append(best)
    return chosen


BROWSER_ROWS = browser_rows(ROWS)


def row_id(row: Row) -> str:
    return "-".join(
        f"{'no-' if value is False else ''}{key}"
        if isinstance(value, bool)
        else str(value).replace("/", "-")
        for key, value in row.items()
    )


def test_the_rows_cover_every_pair_of_answers() -> None:
    split = part_options(OPTIONS)
    keys = sorted(set(split) - STANDALONE)
    every_pair = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(keys, 2)
        for x in split[a]
        for y in split[b]
    } | {((key, x), (key, x)) for key in STANDALONE for x in split[key]}
    possible = {pair for row in valid_rows(OPTIONS) for pair in pairs_of(row)}
    impossible = every_pair - possible
    covered = {pair for row in ROWS for pair in pairs_of(row)}
    assert covered == possible
    assert all(is_valid(row) for row in ROWS)
    # What no valid project holds is what the menu does not offer and the hook refuses, and
    # only that.
    audio_handlers = ("custom", "reply-on-pause", "voice-agent")  # audio send-receive only
    assert impossible == {
        (("handler", handler), (key, value))
        for handler in audio_handlers
        for key, value in [("mode", "receive"), ("mode", "send")]
    } | {
        (("handler", handler), ("modality", value))
        for handler in audio_handlers
        for value in ("audio-video", "video")
    } | {(("modality", "audio-video"), ("mode", mode)) for mode in ("receive", "send")}
    assert len(ROWS) < len(valid_rows(OPTIONS))
    # A slow answer is in as few rows as its pairs allow: as many as the values of the answer
    # it meets in most values (each row holds one of them).
    for key, value in SLOW:
        holding = [parts(row) for row in valid_rows(OPTIONS) if row[key] == value]
        fewest = max(
            len({row[other] for row in holding}) for other in set(split) - STANDALONE - {key}
        )
        assert sum(row[key] == value for row in ROWS) == fewest
    # The first row is what cookiecutter --no-input bakes: test_default_project.py's project.
    defaults = {key: value[0] if isinstance(value, list) else value for key, value in SPEC.items()}
    assert {key: defaults[key] for key in OPTIONS} == DEFAULT
    # The browser tests run on every pair with the UI, in fewer rows.
    assert all(row["include_ui"] for row in BROWSER_ROWS)
    assert {pair for row in BROWSER_ROWS for pair in with_the_ui(row)} == {
        pair for pair in possible if ("include_ui", True) in pair
    }
    print(f"{len(BROWSER_ROWS)} of them run the browser tests")
    print(f"{len(ROWS)} projects cover all {len(possible)} possible pairs of answers")


PACKAGE = "my_fastrtc_app"
SUITE_WITHIN_S = 1500
"""A row's ``make test`` (the voice agent's, the longest, takes about 11 minutes on 2 busy
cores), inside the template's own per-test timeout."""


def answers(row: Row) -> dict[str, Any]:
    """What the post-generation hook reads for ``row``: the row over cookiecutter.json, with
    ``__handler_module`` rendered from its own expression, as cookiecutter does."""
    context = {**SPEC, **row, "package_name": PACKAGE}
    module = jinja2.Template(SPEC["__handler_module"]).render(cookiecutter=context)
    return {**context, "__handler_module": module}


def expected_paths(row: Row) -> dict[str, bool]:
    """Paths whose presence the answers decide: path -> whether it must exist. From the hook's
    own functions over the ``_prune`` rules; an optional path that is kept may be absent."""
    given = answers(row)
    excluded = set(POST_GEN.excluded_paths(given))
    return {
        path: path not in excluded
        for path, optional in POST_GEN.declared_paths(given).items()
        if path in excluded or not optional
    } | {"LICENSE": row["license"] != "none"}


def handler_module(row: Row) -> str:
    """The handler module a row keeps, found apart from cookiecutter.json's expression."""
    if row["handler"] != "echo":
        return str(row["handler"]).replace("-", "_")
    return {
        ("audio", "send-receive"): "echo",
        ("audio", "send"): "meter",
        ("audio", "receive"): "tone",
        ("video", "send-receive"): "video_echo",
        ("video", "send"): "video_meter",
        ("video", "receive"): "color_bars",
        ("audio-video", "send-receive"): "av_echo",
    }[parts(row)["modality"], parts(row)["mode"]]


HANDLER_PACKAGES = {"voice_agent"}
"""Handler modules that are packages (a folder), not a file."""
PAUSE_HANDLERS = {"reply_on_pause", "voice_agent"}
"""Handler modules that wait for the speaker's pause: they keep handlers/pauses.py."""


def check_tree(row: Row, project: Path) -> None:
    """The files ``row`` decides, rendered, and without Redis unless in cluster mode."""
    for path, present in expected_paths(row).items():
        assert (project / path).exists() == present, path
    module = handler_module(row)
    assert answers(row)["__handler_module"] == module
    handlers = {p.name for p in (project / f"src/{PACKAGE}/handlers").iterdir()}
    kept = {module if module in HANDLER_PACKAGES else f"{module}.py"}
    if module in PAUSE_HANDLERS:
        kept.add("pauses.py")
    assert handlers == {"__init__.py", "io.py", *kept}
    assert (project / f"tests/test_{module}.py").is_file()
    assert (project / ".python-version").read_text().strip() == row["python_version"]
    makefile = (project / "Makefile").read_text()
    assert ("docker-build:" in makefile) == row["include_docker"]
    assert ("test-e2e:" in makefile) == row["include_ui"]
    assert ("test-cluster:" in makefile) == row["include_cluster"]
    assert ("loadtest:" in makefile) == expected_paths(row)["tests/test_loadtest.py"]
    assert unrendered(project) == []
    redis = mentioning(project, REDIS)
    if row["include_cluster"]:
        assert {"pyproject.toml", "uv.lock"} <= set(redis), redis
    else:
        assert redis == [], f"Redis in a project without cluster mode: {redis}"


def test_the_pruning_rules_name_template_paths() -> None:
    """Every path a rule must find is in the template; a typo would fail every bake."""
    template = ROOT / "{{cookiecutter.project_slug}}"
    spec = {**SPEC, "package_name": "{{cookiecutter.package_name}}"}
    declared = POST_GEN.declared_paths(spec)
    assert [
        path
        for path, optional in declared.items()
        if not optional and not (template / path).exists()
    ] == []
    modules = {Path(path).stem for path in declared if "/handlers/" in path} - {"pauses"}
    assert modules == {handler_module(row) for row in valid_rows(OPTIONS)}
    assert len(modules) == 10


def test_the_default_row_has_its_files(tmp_path: Path) -> None:
    """The default answers' tree; test_default_project.py lints and tests their project."""
    check_tree(DEFAULT, bake(tmp_path))


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


@pytest.mark.parametrize("row", OTHER_ROWS, ids=[row_id(row) for row in OTHER_ROWS])
def test_answers_give_a_clean_passing_project(row: Row, tmp_path: Path, mypy_cache: Path) -> None:
    project = bake(tmp_path, **row)
    check_tree(row, project)
    if not has_python(row["python_version"], project):
        pytest.skip(f"Python {row['python_version']} is not installed here")

    make("install", project)
    make("lint", project, MYPY_CACHE_DIR=str(mypy_cache))
    report = tmp_path / "junit.xml"
    browser = row in BROWSER_ROWS and bool(os.environ.get("CI") or shutil.which("chromium"))
    turn = row in BROWSER_ROWS and turn_required()
    # The relay tests go through the layer and a browser: they run with the browser tests.
    make(
        "test",
        project,
        PYTEST_ADDOPTS=f"--junitxml={report}"
        + ("" if row in BROWSER_ROWS else " --ignore=tests/test_browser.py")
        + ("" if row in BROWSER_ROWS else " --ignore=tests/test_turn.py"),
        REQUIRE_BROWSER="1" if browser else "0",
        REQUIRE_TURN="1" if turn else "0",
        timeout=SUITE_WITHIN_S,
    )

    counts, outcomes = junit_results(report)
    assert counts["tests"] > 0, counts
    assert counts["failures"] == counts["errors"] == 0, counts
    if (browser and turn) or row not in BROWSER_ROWS:
        assert counts["skipped"] == 0, [n for n, o in outcomes.items() if o == "skipped"]
    assert ("tests.test_browser" in junit_modules(report)) == (row in BROWSER_ROWS)
    version = subprocess.run(
        [UV, "run", "--locked", "python", "-c", "import sys; print(sys.version_info[:2])"],
        cwd=project,
        env=project_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == str(tuple(int(n) for n in row["python_version"].split(".")))
