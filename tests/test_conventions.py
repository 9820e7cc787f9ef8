"""The generated project's conventions: its git hook (make hooks) passes on a fresh project and
stops a commit that breaks what it checks; its GitHub and pre-commit files are well-formed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import UV, bake, make, project_environment, run

PYTHONS = ["3.11", "3.12", "3.13"]
"""The Pythons the project supports (requires-python >=3.11), each tested by its CI."""
RELEASE_TAG = re.compile(r"^[\w.-]+/[\w./-]+@v\d+(\.\d+)*$")
"""An action pinned to a release tag: ``actions/checkout@v4``."""
HOOK_STATUS = re.compile(r"^(.+?)\.{3,}(?:\(no files to check\))?(Passed|Failed|Skipped)$")
"""A line of pre-commit's report: the hook's name, dots, its outcome."""
HOOKS = {
    "ruff check": "uv run --locked ruff check",
    "ruff format --check": "uv run --locked ruff format --check",
    "mypy --strict": "uv run --locked mypy",
    "uv lock --check": "uv lock --check",
}
"""Each hook's name, as pre-commit reports it, and its command."""
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,  # no hooksPath or signing of this machine's user
    "GIT_CONFIG_NOSYSTEM": "1",
}


def load(project: Path, name: str) -> Any:
    return yaml.safe_load((project / name).read_text())


def hook_outcomes(output: str) -> dict[str, str]:
    """Each hook's outcome in a pre-commit report: ``{"ruff check": "Passed", ...}``."""
    return {
        found[1]: found[2]
        for line in output.splitlines()
        if (found := HOOK_STATUS.match(line.strip()))
    }


def commit(project: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``git commit`` of what is staged, through the hook that make hooks installed."""
    return subprocess.run(
        ["git", "commit", "--quiet", "-m", "change"],
        cwd=project,
        env={**project_environment(), **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the hook's report, wherever git sends it
        text=True,
        timeout=600,
        check=False,
    )


def test_the_git_hook_passes_then_stops_bad_format_and_a_stale_lock(
    tmp_path: Path, mypy_cache: Path
) -> None:
    project = bake(tmp_path / "bake")
    environment = {  # of git, and of the hook it runs, which runs uv from PATH
        **GIT_IDENTITY,
        "PATH": f"{Path(shutil.which(UV) or UV).parent}{os.pathsep}{os.environ['PATH']}",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "MYPY_CACHE_DIR": str(mypy_cache),
    }
    run(["git", "init", "--quiet"], cwd=project, **environment)
    make("hooks", project, **environment)
    assert (project / ".git/hooks/pre-commit").is_file()
    run(["git", "add", "--all"], cwd=project, **environment)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "generated"], cwd=project, **environment)

    clean = run(
        [UV, "run", "--locked", "pre-commit", "run", "--all-files"], cwd=project, **environment
    )
    assert hook_outcomes(clean.stdout) == dict.fromkeys(HOOKS, "Passed"), clean.stdout

    badly_formatted = project / "src/my_fastrtc_app/badly_formatted.py"
    badly_formatted.write_text('"""Badly formatted."""\n\nVALUE=( 1 )\n')
    run(["git", "add", str(badly_formatted)], cwd=project, **environment)
    refused = commit(project, environment)
    assert refused.returncode != 0, refused.stdout
    outcomes = hook_outcomes(refused.stdout)
    assert outcomes["ruff format --check"] == "Failed", refused.stdout
    assert outcomes["ruff check"] == outcomes["mypy --strict"] == "Passed", refused.stdout
    run(["git", "rm", "--quiet", "--force", str(badly_formatted)], cwd=project, **environment)

    pyproject = project / "pyproject.toml"
    added = pyproject.read_text().replace(
        "dependencies = [\n", 'dependencies = [\n    "anyio",\n', 1
    )
    pyproject.write_text(added)  # a dependency the lock does not have as the project's
    run(["git", "add", "pyproject.toml"], cwd=project, **environment)
    refused = commit(project, environment)
    assert refused.returncode != 0, refused.stdout
    assert hook_outcomes(refused.stdout)["uv lock --check"] == "Failed", refused.stdout


@pytest.mark.parametrize(
    "answers",
    [{}, {"include_docker": False, "include_cluster": True}],
    ids=["default", "cluster-without-docker"],
)
def test_the_workflow_dependabot_and_hooks_are_well_formed(
    tmp_path: Path, answers: dict[str, bool]
) -> None:
    project = bake(tmp_path, **answers)
    docker = answers.get("include_docker", True)
    workflow = load(project, ".github/workflows/ci.yml")
    jobs: dict[str, Any] = workflow["jobs"]

    assert jobs["test"]["strategy"]["matrix"]["python-version"] == PYTHONS
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "make test" in runs["test"]
    assert ("make test-cluster" in runs["test"]) == bool(answers.get("include_cluster"))
    assert "make test-reliability" in runs["reliability"]
    assert ("image" in jobs) == docker
    if docker:
        assert any(command.startswith("docker build") for command in runs["image"])
    for name, commands in runs.items():
        updated = False
        for command in commands:
            for install in re.finditer(r"apt-get install", command):
                assert updated or "apt-get update" in command[: install.start()], (name, command)
            updated = updated or "apt-get update" in command
    actions = [step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step]
    assert actions
    assert [action for action in actions if not RELEASE_TAG.match(action)] == []

    dependabot = load(project, ".github/dependabot.yml")
    ecosystems = {update["package-ecosystem"] for update in dependabot["updates"]}
    assert ecosystems == {"uv", "github-actions"} | ({"docker"} if docker else set())

    hooks = load(project, ".pre-commit-config.yaml")
    assert [repo["repo"] for repo in hooks["repos"]] == ["local"]  # nothing fetched
    (local,) = hooks["repos"]
    assert {hook["name"]: hook["entry"] for hook in local["hooks"]} == HOOKS
    assert {hook["language"] for hook in local["hooks"]} == {"system"}

    editorconfig = (project / ".editorconfig").read_text()
    assert "[Makefile]\nindent_style = tab" in editorconfig
