"""After generation: remove the files the answers exclude, then print the next steps.

Choices are made here by removing whole files, not by Jinja conditionals in the code. What
each answer removes is data, the ``_prune`` rules of cookiecutter.json, which the template's
tests read through the functions below too. Each rule names paths (``{package}`` stands for
the package's directory name) and ``keep_if``: answers and the values they may take; the
paths are kept only if every answer named takes one of its values, and removed otherwise.
A rule's ``paths`` must exist in the template; its ``optional_paths`` may not.

It also records the template, its git commit and the answers in ``.cruft.json``, so that
``make update`` (cruft) can bring the template's later changes into the project. Runs under the
user's cookiecutter: standard library only.

Importable without rendering: the answers are read in ``main()`` only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def keeps(rule: dict[str, Any], answers: dict[str, Any]) -> bool:
    """Whether the answers keep the rule's paths: every answer named takes an allowed value."""
    return all(answers[key] in allowed for key, allowed in rule["keep_if"].items())


def declared_paths(answers: dict[str, Any]) -> dict[str, bool]:
    """Every path a rule names, with the package filled in: path -> whether it is optional."""
    found: dict[str, bool] = {}
    for rule in answers["_prune"]:
        for optional, key in ((False, "paths"), (True, "optional_paths")):
            for path in rule.get(key, []):
                found[path.replace("{package}", answers["package_name"])] = optional
    return found


def excluded_paths(answers: dict[str, Any]) -> list[str]:
    """The paths the answers remove, optional ones included, in the rules' order."""
    package = answers["package_name"]
    return [
        path.replace("{package}", package)
        for rule in answers["_prune"]
        if not keeps(rule, answers)
        for path in [*rule["paths"], *rule.get("optional_paths", [])]
    ]


def missing_paths(answers: dict[str, Any], project: Path) -> list[str]:
    """The non-optional declared paths absent from the generated project: a rule's typo."""
    return [
        path
        for path, optional in declared_paths(answers).items()
        if not optional and not (project / path).exists()
    ]


# What cookiecutter clones rather than reads from disk: a URL (https://, git+ssh://, file://),
# user@host:path, or an abbreviation such as gh:owner/name.
REMOTE_TEMPLATE = re.compile(r"^\w+@|^[A-Za-z][\w+.-]+:")
CRUFT_FILE = ".cruft.json"


def git(directory: Path, *args: str) -> str | None:
    """A git command's output in ``directory``; None if it fails or git is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def template_directory(repo_dir: str) -> Path | None:
    """Where cookiecutter read the template. A relative path is relative to where cookiecutter
    started; while its hooks run, cookiecutter works in the template's directory itself."""
    path = Path(repo_dir)
    if path.is_absolute():
        return path
    candidates = [Path(f"/proc/{os.getppid()}/cwd"), Path(os.environ.get("PWD", "/")) / path]
    return next((c.resolve() for c in candidates if (c / "cookiecutter.json").is_file()), None)


def template_source(given: str, directory: Path | None) -> tuple[str, str | None, str | None]:
    """The template as cruft clones it, its commit (None if not a git checkout) and its folder
    in the repository (None at the root): a clone's origin if cookiecutter cloned it."""
    remote = REMOTE_TEMPLATE.match(given)
    found = None if directory is None else git(directory, "rev-parse", "--show-toplevel", "HEAD")
    if directory is None or found is None:
        return (given if remote or directory is None else str(directory)), None, None
    top, commit = found.splitlines()
    origin = git(directory, "remote", "get-url", "origin") if remote else None
    folder = directory.resolve().relative_to(Path(top).resolve()).as_posix()
    return origin or top, commit, None if folder == "." else folder


def cruft_state(answers: dict[str, Any], directory: Path | None) -> dict[str, Any]:
    """What cruft reads in ``.cruft.json``: the template, its commit and the public answers."""
    given = str(answers.get("_template", ""))
    url, commit, folder = template_source(given, directory)
    public = {key: value for key, value in answers.items() if not key.startswith("_")}
    return {
        "template": url,
        "commit": commit,
        "checkout": answers.get("_checkout"),
        "context": {"cookiecutter": {**public, "_template": url, "_commit": commit}},
        "directory": folder,
    }


def record_template(answers: dict[str, Any], project: Path) -> str:
    """Write ``.cruft.json``; return a note on what keeps ``make update`` from following it."""
    directory = template_directory(str(answers.get("_repo_dir", "")))
    state = cruft_state(answers, directory)
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": "))
    (project / CRUFT_FILE).write_text(text + "\n", encoding="utf-8")
    if state["commit"] is None:
        return (
            f"note: no git commit found for the template ({state['template']}), so make "
            "update cannot follow it: generate from a git clone or URL to be able to update\n"
        )
    if directory and git(directory, "status", "--porcelain", "--untracked-files=no", "--", "."):
        return (
            "note: the template has uncommitted changes; .cruft.json records its last commit, "
            f"{state['commit'][:12]}, which make update takes as this project's starting point\n"
        )
    return ""


def remove(path: Path) -> None:
    """Remove a file or a folder; an optional path may already be absent."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def shown_path(project: Path, shell: str | None) -> str:
    """How to ``cd`` into the project from the user's shell: relative when it is under the shell's
    directory (``$PWD``, which cookiecutter leaves as it was), absolute otherwise."""
    if shell:
        try:
            return str(project.relative_to(Path(shell).resolve()))
        except ValueError:
            pass
    return str(project)


def main() -> int:
    """Check the rules against the tree, place the license, prune, print the next steps."""
    # The answers, as cookiecutter renders them into this script.
    answers: dict[str, Any] = json.loads(r"""{{ cookiecutter | tojson }}""")
    project = Path.cwd()
    missing = missing_paths(answers, project)
    if missing:
        print(f"error: _prune names paths the template lacks: {missing}", file=sys.stderr)
        return 1
    if answers["license"] != "none":
        (project / "licenses" / answers["license"]).rename(project / "LICENSE")
    for path in excluded_paths(answers):
        remove(project / path)
    if "_commit" in answers:
        return 0  # cruft is generating: it records the template itself
    note = record_template(answers, project)
    where = shown_path(project.resolve(), os.environ.get("PWD"))
    serves = "the UI and the API" if answers["include_ui"] else "the API"
    print(
        f"\nCreated {where}. Next:\n"
        f"  cd {where} && make run    ({serves} on http://127.0.0.1:7860/)\n"
        "  make test    (every test, with real WebRTC peers)\n"
        "  make update  (the template's later changes, see the README)\n"
        "  make help    (the other targets)\n"
        f"{note}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
