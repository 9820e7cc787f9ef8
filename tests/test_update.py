"""A generated project records its template, and cruft brings in the template's later changes."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

from .conftest import ROOT, run

TEMPLATE_PARTS = ("cookiecutter.json", "hooks", "{{cookiecutter.project_slug}}")
# Commits made by the tests, whatever the machine's git configuration (signing, hooks...).
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
TEMPLATE_README = "{{cookiecutter.project_slug}}/README.md"
TEMPLATE_TITLE = "# {{ cookiecutter.project_name }}\n"
TITLE = "# Voice Lab\n"


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo, **GIT_ENV).stdout.rstrip("\n")


def commit_all(repo: Path, message: str) -> str:
    """Commit every change in ``repo``; return the commit."""
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def cruft_update(project: Path, *args: str) -> str:
    """``cruft update`` without asking, as ``make update ARGS=-y`` runs it; its output."""
    done = run([sys.executable, "-m", "cruft", "update", "-y", *args], cwd=project, **GIT_ENV)
    return done.stdout + done.stderr


def generate(template: Path, output_dir: Path, **answers: str) -> Path:
    """Generate a project from ``template`` with cookiecutter's API, as ``conftest.bake`` does."""
    return Path(
        cookiecutter(
            str(template), no_input=True, output_dir=str(output_dir), extra_context=answers
        )
    )


def recorded(project: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((project / ".cruft.json").read_text())
    return state


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A copy of the template in a git repository of its own."""
    copy = tmp_path / "template"
    copy.mkdir()
    for part in TEMPLATE_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / part)
    git(copy, "init", "--quiet")
    commit_all(copy, "template")
    return copy


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    """A project named Voice Lab, generated from ``template``, committed in its own repository."""
    baked = generate(template, tmp_path / "out", project_name="Voice Lab")
    git(baked, "init", "--quiet")
    commit_all(baked, "generated")
    return baked


def test_the_project_records_its_template_commit_and_public_answers(
    template: Path, project: Path
) -> None:
    state = recorded(project)
    answers = state["context"]["cookiecutter"]

    assert state["template"] == answers["_template"] == str(template)
    assert state["commit"] == answers["_commit"] == git(template, "rev-parse", "HEAD")
    assert answers["project_slug"] == "voice-lab"
    assert answers["include_cluster"] is False
    private = {key for key in answers if key.startswith("_")}
    assert private == {"_template", "_commit"}  # not _prune, _demo_handlers, __handler_module


def test_a_template_outside_git_is_recorded_without_a_commit(
    template: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.rmtree(template / ".git")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above either
    project = generate(template, tmp_path / "out")

    assert recorded(project)["commit"] is None
    assert "no git commit found for the template" in capfd.readouterr().out


def test_update_applies_the_template_change_and_keeps_the_users(
    template: Path, project: Path
) -> None:
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "Our own notes.\n")
    commit_all(project, "user's edit")
    edit(template / TEMPLATE_README, TEMPLATE_TITLE, TEMPLATE_TITLE + "\nNews from the template.\n")
    newer = commit_all(template, "template change")

    cruft_update(project)

    text = readme.read_text()
    assert text.startswith(TITLE + "\nNews from the template.\n")
    assert text.endswith("Our own notes.\n")
    assert recorded(project)["commit"] == newer
    assert git(project, "status", "--porcelain").splitlines() == [" M .cruft.json", "M  README.md"]


def test_update_leaves_a_conflict_marked_not_lost(template: Path, project: Path) -> None:
    edit(project / "README.md", TITLE, "# Our App\n")
    commit_all(project, "user's title")
    edit(template / TEMPLATE_README, TEMPLATE_TITLE, "# The template's\n")
    commit_all(template, "template's title")

    output = cruft_update(project)

    text = (project / "README.md").read_text()
    assert "<<<<<<<" in text
    assert "# Our App\n" in text
    assert "# The template's\n" in text
    assert "README.md' with conflicts" in output
    assert "UU README.md" in git(project, "status", "--porcelain")


def test_update_changes_answers_adding_and_removing_files(project: Path) -> None:
    changed = {"include_cluster": True, "include_docker": False}
    cruft_update(project, "--variables-to-update", json.dumps(changed))

    assert (project / "src/voice_lab/services/cluster/__init__.py").is_file()
    assert (project / "tests/test_cluster.py").is_file()
    assert "redis" in (project / "pyproject.toml").read_text()
    assert not (project / "Dockerfile").exists()
    assert not (project / "deploy").exists()  # with Docker and cluster mode both only
    answers = recorded(project)["context"]["cookiecutter"]
    assert changed.items() <= answers.items()
