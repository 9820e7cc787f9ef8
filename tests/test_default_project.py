"""The default answers give a project that is complete, clean, tested and runnable."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .conftest import (
    REDIS,
    ROOT,
    UV,
    bake,
    junit_modules,
    junit_results,
    make,
    mentioning,
    project_environment,
    project_files,
    run,
    turn_required,
    unrendered,
)

EXPECTED_FILES = {
    ".cruft.json",
    ".dockerignore",
    ".editorconfig",
    ".env.example",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "Dockerfile",
    "LICENSE",
    "Makefile",
    "README.md",
    "docker-compose.yml",
    "pyproject.toml",
    "src/my_fastrtc_app/__init__.py",
    "src/my_fastrtc_app/__main__.py",
    "src/my_fastrtc_app/api/__init__.py",
    "src/my_fastrtc_app/api/auth.py",
    "src/my_fastrtc_app/api/connections.py",
    "src/my_fastrtc_app/api/deps.py",
    "src/my_fastrtc_app/api/docs.py",
    "src/my_fastrtc_app/api/errors.py",
    "src/my_fastrtc_app/api/health.py",
    "src/my_fastrtc_app/api/limits.py",
    "src/my_fastrtc_app/api/metrics.py",
    "src/my_fastrtc_app/api/offers.py",
    "src/my_fastrtc_app/api/ui_calls.py",
    "src/my_fastrtc_app/app.py",
    "src/my_fastrtc_app/client.py",
    "src/my_fastrtc_app/handlers/__init__.py",
    "src/my_fastrtc_app/handlers/echo.py",
    "src/my_fastrtc_app/handlers/io.py",
    "src/my_fastrtc_app/ice.py",
    "src/my_fastrtc_app/loadtest.py",
    "src/my_fastrtc_app/loadtest_network.py",
    "src/my_fastrtc_app/loadtest_peer.py",
    "src/my_fastrtc_app/loadtest_server.py",
    "src/my_fastrtc_app/media.py",
    "src/my_fastrtc_app/observability.py",
    "src/my_fastrtc_app/py.typed",
    "src/my_fastrtc_app/services/__init__.py",
    "src/my_fastrtc_app/services/streams/__init__.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/__init__.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/marks.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/owners.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/peers.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/audio_buffer.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/latency.py",
    "src/my_fastrtc_app/services/streams/_fastrtc/replies.py",
    "src/my_fastrtc_app/services/streams/_websocket.py",
    "src/my_fastrtc_app/services/streams/directory.py",
    "src/my_fastrtc_app/services/streams/errors.py",
    "src/my_fastrtc_app/services/streams/interface.py",
    "src/my_fastrtc_app/services/streams/outputs.py",
    "src/my_fastrtc_app/services/streams/service.py",
    "src/my_fastrtc_app/settings.py",
    "src/my_fastrtc_app/static/client/client.js",
    "src/my_fastrtc_app/static/client/index.html",
    "src/my_fastrtc_app/ui.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/doors_support.py",
    "tests/test_api_docs.py",
    "tests/test_audio_buffer.py",
    "tests/test_browser.py",
    "tests/test_client_page.py",
    "tests/test_docker.py",
    "tests/test_doors.py",
    "tests/test_echo.py",
    "tests/test_errors.py",
    "tests/test_fuzz.py",
    "tests/test_handler_errors.py",
    "tests/test_ice.py",
    "tests/test_latency.py",
    "tests/test_limits.py",
    "tests/test_live_server.py",
    "tests/test_loadtest.py",
    "tests/test_lookup_cost.py",
    "tests/test_observability.py",
    "tests/test_readme.py",
    "tests/test_reliability.py",
    "tests/test_routes.py",
    "tests/test_security.py",
    "tests/test_settings.py",
    "tests/test_streams.py",
    "tests/test_turn.py",
    "tests/test_ui.py",
    "tests/test_websocket_door.py",
    "tests/test_workarounds.py",
    "tests/turn_support.py",
    "uv.lock",
}


def test_tree_is_complete_and_rendered(tmp_path: Path) -> None:
    project = bake(tmp_path)

    assert project.name == "my-fastrtc-app"
    assert project_files(project) == EXPECTED_FILES
    assert unrendered(project) == []
    assert mentioning(project, REDIS) == []  # cluster mode is off by default
    workflow = (project / ".github/workflows/ci.yml").read_text()
    assert "${{ always() }}" in workflow
    assert "${{ github.run_id }}" in workflow
    assert "MIT License" in (project / "LICENSE").read_text()


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_unrendered_check_finds_every_leftover(tmp_path: Path) -> None:
    """What ``unrendered`` flags: any Jinja token, but not a workflow's own expressions."""
    files = {
        "clean.py": "x = {'a': {'b': 1}}  # f'{a}' and ${VAR}\n",
        "value.toml": 'name = "{{ cookiecutter.project_slug }}"\n',
        "block.py": "{% if x %}\n",
        "comment.md": "{# note #}\n",
        "dotted.txt": "see cookiecutter.json\n",
        ".github/workflows/ok.yml": "if: ${{ always() }}\nname: a-${{ github.run_id }}\n",
        ".github/workflows/bad.yml": "name: ${{ github.sha }}-{{ cookiecutter.version }}\n",
    }
    write_files(tmp_path, files)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\xff {{ not text")

    assert unrendered(tmp_path) == [
        ".github/workflows/bad.yml",
        "block.py",
        "comment.md",
        "dotted.txt",
        "value.toml",
    ]


def test_redis_is_found_by_name_only(tmp_path: Path) -> None:
    named = {"a.toml": '"redis>=5.2",', "b.env": "APP_REDIS_URL=", "c.md": "Start Redis."}
    unnamed = {"LICENSE": "Redistribution and use in source and binary forms", "d.txt": "credisle"}
    write_files(tmp_path, named | unnamed)

    assert mentioning(tmp_path, REDIS) == ["a.toml", "b.env", "c.md"]


def test_answers_reach_the_project(tmp_path: Path) -> None:
    project = bake(tmp_path, project_name="Voice Lab", description='Say "hi"', version="2.0.1")

    assert project.name == "voice-lab"
    assert (project / "src/voice_lab/app.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "voice-lab"' in pyproject
    assert 'version = "2.0.1"' in pyproject
    assert 'description = "Say \\"hi\\""' in pyproject
    assert 'title: str = "Voice Lab"' in (project / "src/voice_lab/settings.py").read_text()


@pytest.mark.parametrize(
    ("shell", "output", "shown"),
    [
        (".", ".", "my-fastrtc-app"),
        (".", "apps/voice", "apps/voice/my-fastrtc-app"),
        ("elsewhere", "apps", "{tmp}/apps/my-fastrtc-app"),
    ],
    ids=["here", "below", "elsewhere"],
)
def test_post_generation_prints_next_steps(
    tmp_path: Path, shell: str, output: str, shown: str
) -> None:
    """The ``cd`` path is right from the user's shell, whatever ``-o`` says."""
    directory = tmp_path / shell
    directory.mkdir(exist_ok=True)
    target = str(tmp_path / output) if shell != "." else output
    # A shell sets PWD to its directory; cookiecutter's hooks run elsewhere but inherit it.
    result = run(
        ["cookiecutter", "--no-input", str(ROOT), "-o", target], cwd=directory, PWD=str(directory)
    )
    path = shown.format(tmp=tmp_path.resolve())
    assert f"Created {path}. Next:" in result.stdout
    assert f"cd {path} && make run" in result.stdout
    assert (directory / path / "pyproject.toml").is_file()
    assert "make test" in result.stdout


def test_lock_matches_the_project(default_project: Path) -> None:
    run([UV, "lock", "--check"], cwd=default_project)


def test_lint_and_types_are_clean(default_project: Path, mypy_cache: Path) -> None:
    result = make("lint", default_project, MYPY_CACHE_DIR=str(mypy_cache))
    assert "All checks passed!" in result.stdout
    assert "Success: no issues found" in result.stdout


BROWSER_MODULE = "tests.test_browser"
TURN_MODULE = "tests.test_turn"
TURN_BROWSER_TEST = (
    "tests/test_turn.py::test_a_browser_streams_through_coturn_with_the_relay_policy"
)
"""The relay test of the browser, which runs with the browser tests (make test-e2e)."""


def browser_required() -> bool:
    """CI must run the browser tests; elsewhere they run wherever a Chromium is installed."""
    return bool(os.environ.get("CI") or shutil.which("chromium"))


def test_generated_suite_passes_with_nothing_skipped(default_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    strict = browser_required()

    # The browser tests run in test_make_test_e2e_runs_the_browser_tests, not twice (the
    # matrix checks that make test runs them too).
    make(
        "test",
        default_project,
        PYTEST_ADDOPTS=f"--junitxml={report} --ignore=tests/test_browser.py "
        f"--deselect={TURN_BROWSER_TEST}",
        REQUIRE_BROWSER="1" if strict else "0",
        REQUIRE_TURN="1" if turn_required() else "0",
    )

    counts, outcomes = junit_results(report)
    assert counts["tests"] >= 45, counts
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    assert outcomes["test_peers_of_every_door_are_one_set"] == "passed"  # real server, real peers
    assert BROWSER_MODULE not in junit_modules(report)
    assert "services/cluster" not in "".join(project_files(default_project))
    assert "redis" not in (default_project / "pyproject.toml").read_text().lower()


def test_make_test_e2e_runs_the_browser_tests(default_project: Path, tmp_path: Path) -> None:
    if not browser_required():
        pytest.skip("no Chromium here (apt-get install chromium); CI always runs this")
    report = tmp_path / "junit.xml"

    make(
        "test-e2e",
        default_project,
        PYTEST_ADDOPTS=f"--junitxml={report}",
        REQUIRE_TURN="1" if turn_required() else "0",
    )

    counts, _ = junit_results(report)
    assert counts["tests"] > 0, counts
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    assert junit_modules(report) == {BROWSER_MODULE, TURN_MODULE}  # the browser tests only
    assert (default_project / "test-artifacts/ui-streaming.png").stat().st_size > 10_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_make_run_serves_the_ui_and_the_api(default_project: Path, tmp_path: Path) -> None:
    """make run and make loadtest take the port of the app's settings, here from .env."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dotenv = default_project / ".env"
    dotenv.write_text(f"APP_PORT={port}\n")
    environment = {k: v for k, v in project_environment().items() if k != "APP_PORT"}
    log = tmp_path / "run.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["make", "run", f"UV={UV}"],  # no PORT=: the port is the one of .env
            cwd=default_project,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the whole group (make, uv, python) can be stopped
        )
    try:
        deadline = time.monotonic() + 90
        while f"Uvicorn running on {base}" not in log.read_text():
            assert server.poll() is None, f"make run exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, (
                f"make run did not serve on {base}:\n{log.read_text()}"
            )
            time.sleep(0.3)

        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/connections").json() == []
        ui = httpx.get(f"{base}/", follow_redirects=True)
        assert ui.status_code == 200
        assert str(ui.url) == f"{base}/ui/"
        assert "gradio" in ui.text.lower()

        # make loadtest, against what make run serves, on the port of .env too: real peers
        # through both doors
        report = tmp_path / "loadtest.json"
        args = f"--peers 2 --duration 2 --ui-share 0.5 --quiet --out {report}"
        make("loadtest", default_project, f"ARGS={args}")
        numbers = json.loads(report.read_text())
        assert numbers["url"] == base
        assert numbers["errors"] == []
        assert numbers["echo_ms"]["count"] > 0
        assert numbers["server"]["pid"] > 0  # make run's server, found by its port
    finally:
        dotenv.unlink()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_port_on_the_make_command_line_is_short_for_app_port(tmp_path: Path) -> None:
    """PORT=8123 on the command line sets APP_PORT; a PORT in the environment does not."""
    project = bake(tmp_path)
    given = run(["make", "-n", "run", "loadtest", "PORT=8123", f"UV={UV}"], cwd=project)
    inherited = run(["make", "-n", "run", f"UV={UV}"], cwd=project, PORT="8123")

    assert given.stdout.count("APP_PORT=8123 ") == 2, given.stdout
    assert "APP_PORT" not in inherited.stdout, inherited.stdout


HELP_RULE = re.compile(r"^([\w./-]+):(?!=).*?## (.*)$", re.MULTILINE)
"""A rule of a Makefile with a ``##`` text: what make help must list."""
HELP_ROW = re.compile(r"^  (\S+)( +)(\S.*)$")


@pytest.mark.parametrize(
    "answers",
    [{}, {"include_ui": False, "include_docker": False}],
    ids=["default", "no-ui-no-docker"],
)
def test_make_help_lists_every_target(tmp_path: Path, answers: dict[str, bool]) -> None:
    project = bake(tmp_path, **answers)
    documented = dict(HELP_RULE.findall((project / "Makefile").read_text()))

    output = make("help", project).stdout
    rows = [HELP_ROW.match(line) for line in output.splitlines()]

    assert "$(" not in output
    assert all(rows), output  # nothing but the rows
    listed = {row[1]: row[3] for row in rows if row}
    assert listed == documented
    assert {"help", "run", "test-reliability"} <= listed.keys()
    assert ("test-e2e" in listed) == bool(answers.get("include_ui", True))
    assert ("docker-run" in listed) == bool(answers.get("include_docker", True))
    assert len({row.start(3) for row in rows if row}) == 1, output  # one column of texts
    assert min(len(row[2]) for row in rows if row) == 2, output  # as wide as the longest


@pytest.mark.parametrize(
    "target",
    [
        "install",
        "hooks",
        "run",
        "test",
        "test-e2e",
        "test-reliability",
        "loadtest",
        "lint",
        "format",
        "docker-build",
        "docker-run",
        "update",
    ],
)
def test_makefile_has_the_targets(default_project: Path, target: str) -> None:
    makefile = (default_project / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE)
