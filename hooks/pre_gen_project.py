"""Before generation: refuse bad answers, every problem at once, one line each naming it.

Cookiecutter removes the project directory when this exits non-zero, so nothing is left.
Cookiecutter then logs its own traceback for the failed hook (``run_hook_from_repo_dir`` uses
``logger.exception``, cookiecutter 2.7.1): a template cannot silence it, so our lines come
first and end with a count. Runs under the user's cookiecutter, so it uses the standard library
only. Importable without rendering (the template's tests use ``handler_problem``): the
answers are read in ``main()`` only.
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


def handler_problem(answers: dict[str, Any]) -> str | None:
    """What is wrong with the handler for the media; None if nothing.

    The media question offers only the pairs fastrtc supports, but a handler may need one of
    them (``_handlers_need``). The template's tests import this too, to leave the same answers
    out of the answer matrix.
    """
    media, handler = answers["media"], answers["handler"]
    needs = answers["_handlers_need"].get(handler)
    if needs is not None and media != needs:
        return (
            f"handler {handler!r} needs media {needs!r}, not {media!r}: "
            f"choose handler 'echo' for {media}"
        )
    return None


def problems(answers: dict[str, Any]) -> list[str]:
    """Everything wrong with the answers, one line each naming the answer; [] if nothing."""
    found: list[str] = []
    name, slug, package = answers["project_name"], answers["project_slug"], answers["package_name"]
    if not name.strip():
        found.append("project_name is empty: give the project a name")
    if not SLUG.match(slug):
        found.append(
            f"project_slug {slug!r} is not valid: use lowercase letters, digits and single "
            "hyphens, starting with a letter (e.g. 'voice-bot')"
        )
    # A package name derived from a bad slug is the slug's problem, said once.
    derived_from_bad_slug = package == slug.replace("-", "_") and not SLUG.match(slug)
    if not PACKAGE.match(package):
        if not derived_from_bad_slug:
            found.append(
                f"package_name {package!r} is not a valid package name: use lowercase "
                "letters, digits and underscores, starting with a letter (e.g. 'voice_bot')"
            )
    elif keyword.iskeyword(package) or keyword.issoftkeyword(package):
        found.append(f"package_name {package!r} is a Python keyword: choose another name")
    elif package in TAKEN:
        found.append(
            f"package_name {package!r} would shadow the module of the same name: choose another"
        )
    if not VERSION.match(answers["version"]):
        found.append(f"version {answers['version']!r} is not a PEP 440 version (e.g. '0.1.0')")
    if not EMAIL.match(answers["author_email"]):
        found.append(
            f"author_email {answers['author_email']!r} does not look like an e-mail address"
        )
    for key in ("project_name", "description", "author_name"):
        if "\n" in answers[key] or "\r" in answers[key]:
            found.append(f"{key} must be a single line")
    media = handler_problem(answers)
    if media is not None:
        found.append(media)
    return found


def main() -> int:
    # The answers, as cookiecutter renders them into this script.
    answers: dict[str, Any] = json.loads(r"""{{ cookiecutter | tojson }}""")
    found = problems(answers)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if not found:
        return 0
    count = f"{len(found)} problem{'s' if len(found) > 1 else ''}"
    print(f"{count} with the answers: nothing generated", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
