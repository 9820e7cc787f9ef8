"""After generation: remove the files the answers exclude, then print the next steps.

Choices are made here by removing whole files, not by Jinja conditionals in the code. What
each answer removes is data, the ``_prune`` rules of cookiecutter.json, which the template's
tests read through the functions below too. Each rule names paths (``{package}`` stands for
the package's directory name) and ``keep_if``: answers and the values they may take; the
paths are kept only if every answer named takes one of its values, and removed otherwise.
A rule's ``paths`` must exist in the template; its ``optional_paths`` may not.

Importable without rendering: the answers are read in ``main()`` only.
"""

from __future__ import annotations

import json
import os
import shutil
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
    where = shown_path(project.resolve(), os.environ.get("PWD"))
    serves = "the UI and the API" if answers["include_ui"] else "the API"
    print(
        f"\nCreated {where}. Next:\n"
        f"  cd {where} && make run    ({serves} on http://127.0.0.1:7860/)\n"
        "  make test    (every test, with real WebRTC peers)\n"
        "  make help    (the other targets)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
