"""Before generation: refuse a bad answer with one line that names it.

Cookiecutter removes the project directory when this exits non-zero, so nothing is left.
Runs under the user's cookiecutter, so it uses the standard library only. Importable without
rendering (the template's tests use ``media_problem``): the answers are read in ``main()`` only.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from typing import Any

SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# PEP 440, public versions (the specification's canonical pattern, without local versions).
VERSION = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?$"
)
# Names the package must not take: it would shadow these on import.
TAKEN = set(sys.stdlib_module_names) | {
    "aiortc", "fastapi", "fastrtc", "gradio", "httpx", "numpy", "playwright", "pydantic",
    "pydantic_settings", "pytest", "starlette", "tests", "uvicorn",
}  # fmt: skip


def supported_pairs(answers: dict[str, Any]) -> list[tuple[str, str]]:
    """The (modality, mode) pairs fastrtc supports: the keys of ``_demo_handlers``."""
    demos: dict[str, dict[str, str]] = answers["_demo_handlers"]
    return [(modality, mode) for modality, modes in demos.items() for mode in modes]


def media_problem(answers: dict[str, Any]) -> str | None:
    """What is wrong with the modality, mode and handler answers together; None if nothing.

    The template's tests import this too, to leave the same pairs out of the answer matrix.
    """
    modality, mode, handler = answers["modality"], answers["mode"], answers["handler"]
    pairs = supported_pairs(answers)
    if (modality, mode) not in pairs:
        listed = ", ".join(f"{a}/{b}" for a, b in pairs)
        return (
            f"modality {modality!r} with mode {mode!r} is not supported by fastrtc: "
            f"choose one of {listed}"
        )
    needs = answers["_handlers_need"].get(handler)
    if needs is not None and [modality, mode] != list(needs):
        return (
            f"handler {handler!r} needs modality {needs[0]!r} and mode {needs[1]!r}, "
            f"not {modality}/{mode}: choose handler 'echo' for {modality}/{mode}"
        )
    return None


def problem(answers: dict[str, Any]) -> str | None:
    """What is wrong with the answers, in one line naming the answer; None if nothing."""
    name, slug, package = answers["project_name"], answers["project_slug"], answers["package_name"]
    if not name.strip():
        return "project_name is empty: give the project a name"
    if not SLUG.match(slug):
        return (
            f"project_slug {slug!r} is not valid: use lowercase letters, digits and single "
            "hyphens, starting with a letter (e.g. 'voice-bot')"
        )
    if not PACKAGE.match(package):
        return (
            f"package_name {package!r} is not a valid package name: use lowercase letters, "
            "digits and underscores, starting with a letter (e.g. 'voice_bot')"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"package_name {package!r} is a Python keyword: choose another name"
    if package in TAKEN:
        return f"package_name {package!r} would shadow the module of the same name: choose another"
    if not VERSION.match(answers["version"]):
        return f"version {answers['version']!r} is not a PEP 440 version (e.g. '0.1.0')"
    if not EMAIL.match(answers["author_email"]):
        return f"author_email {answers['author_email']!r} does not look like an e-mail address"
    for key in ("project_name", "description", "author_name"):
        if "\n" in answers[key] or "\r" in answers[key]:
            return f"{key} must be a single line"
    return media_problem(answers)


def main() -> int:
    # The answers, as cookiecutter renders them into this script.
    answers: dict[str, Any] = json.loads(r"""{{ cookiecutter | tojson }}""")
    found = problem(answers)
    if found is None:
        return 0
    print(f"error: {found}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
