"""Refresh the generated project's ``uv.lock`` in the template.

The lock depends on the answers that change the project's dependencies, ``VARIABLES``:
cluster mode (redis) and the voice-agent handler (its speech and language libraries). This
bakes the default project once for each combination of them (four), runs ``uv lock`` in each
(extra arguments go to it, e.g. ``--upgrade``), and writes one lock back into the template:
the locks merged on one answer at a time, first cluster mode for each handler, then the
handler. A merge keeps the lines both sides share as they are and puts each stretch where
they differ between ``{%- if <test> %}``, ``{%- else %}`` and ``{%- endif %}`` (e.g.
``{%- if cookiecutter.include_cluster %}``), grown to whole blocks of the merge before, so a
line that only some combinations hold sits under the answers it depends on, nested where it
depends on both. The project's own name and version are turned back into Jinja, so every
baked project gets a lock that matches it byte for byte. Then bakes every combination again
and checks that each renders the lock uv wrote for it.

A dependency added under one of these answers needs only a rerun; an answer that starts to
change the dependencies needs its entry in ``VARIABLES``.

Usage: uv run python scripts/lock_template.py [--upgrade]
"""

from __future__ import annotations

import difflib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
# The uv that runs this script (``uv run`` exports it as UV), else the one on PATH.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
SLUG, VERSION = "my-fastrtc-app", "0.1.0"  # the default answers the bakes take


@dataclass(frozen=True)
class Variable:
    """An answer the lock depends on: the value baked for the ``if`` side and the one for the
    ``else`` side (which any other value renders too), and the Jinja test for ``on``."""

    answer: str
    on: Any
    off: Any
    test: str


VARIABLES = (
    Variable(
        answer="include_cluster",
        on=True,
        off=False,
        test="cookiecutter.include_cluster",
    ),
    Variable(
        answer="handler",
        on="voice-agent",
        off="echo",
        test='cookiecutter.handler == "voice-agent"',
    ),
)

Combination = tuple[bool, ...]
"""Whether each of ``VARIABLES`` takes its ``on`` value."""

COMBINATIONS: list[Combination] = list(itertools.product((True, False), repeat=len(VARIABLES)))
"""Every combination, the first of ``VARIABLES`` the first of each."""


def context(combination: Combination) -> dict[str, Any]:
    """The answers a combination bakes with, over the defaults."""
    return {
        variable.answer: variable.on if on else variable.off
        for variable, on in zip(VARIABLES, combination, strict=True)
    }


def bake(out: Path, combination: Combination) -> Path:
    """The default project with ``combination``'s answers, baked into ``out``."""
    return Path(
        cookiecutter(
            str(ROOT), no_input=True, output_dir=str(out), extra_context=context(combination)
        )
    )


def locked(out: Path, combination: Combination, uv_args: list[str]) -> str:
    """The lock ``uv lock`` writes for the default project with ``combination``'s answers."""
    project = bake(out, combination)
    subprocess.run([UV, "lock", *uv_args], cwd=project, check=True)
    text = (project / "uv.lock").read_text()
    for token in ("{{", "{%", "{#"):
        if token in text:
            raise SystemExit(f"the lock holds {token!r}, which Jinja would read")
    if not text.endswith("\n"):
        raise SystemExit("a lock that does not end with a newline")
    return text


def templated_entry(text: str) -> str:
    """``text`` with the project's own entry naming it by Jinja."""
    entry = f'[[package]]\nname = "{SLUG}"\nversion = "{VERSION}"\nsource = {{ editable = "." }}'
    if entry not in text:
        raise SystemExit(f"no entry for {SLUG} {VERSION} in the lock")
    templated = entry.replace(SLUG, "{{ cookiecutter.project_slug }}").replace(
        VERSION, "{{ cookiecutter.version }}"
    )
    return text.replace(entry, templated)


def ends_a_line(line: str) -> bool:
    """Whether ``line`` is text that ``{%-`` may follow: nothing but its newline to eat. (A tag
    line is such text: the tag after it eats the tag's own newline.)"""
    body = line.removesuffix("\n")
    return body != "" and body == body.rstrip()


def reaches_out(lines: list[str]) -> tuple[bool, bool]:
    """Whether the tags in ``lines`` need a tag before them (an ``else`` or ``endif`` of an
    ``if`` above) and after them (an ``if`` still open)."""
    depth, before = 0, False
    for line in lines:
        if line.startswith("{%- if "):
            depth += 1
        elif line.startswith(("{%- elif ", "{%- else ", "{%- endif ")):
            before = before or depth == 0
            if line.startswith("{%- endif ") and depth > 0:
                depth -= 1
    return before, depth > 0


def changes(a: list[str], b: list[str]) -> list[list[int]]:
    """Where ``a`` and ``b`` differ, ``[i1, i2, j1, j2]`` each, with every line only one side
    holds placed as early as the shared lines before it allow: where a line is inserted in
    one text and in another (a package in the locks with and without the voice agent) is then
    the same, and so is the stretch the merge puts it in."""
    found: list[list[int]] = []
    floor_i = floor_j = 0  # the end of the change before
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        while (
            i1 > floor_i
            and j1 > floor_j
            and ((i1 == i2 and a[i1 - 1] == b[j2 - 1]) or (j1 == j2 and b[j1 - 1] == a[i2 - 1]))
        ):
            i1, i2, j1, j2 = i1 - 1, i2 - 1, j1 - 1, j2 - 1
        found.append([i1, i2, j1, j2])
        floor_i, floor_j = i2, j2
    return found


def hunks(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """Where ``a`` and ``b`` differ, each stretch grown over shared lines until ``{%-`` eats only
    a newline (the line before it and each side's last line must end in text) and each side
    holds whole ``if`` blocks of the answers merged before."""
    found = changes(a, b)
    grown: list[list[int]] = []
    while found:
        hunk = found.pop(0)
        while True:
            if grown and hunk[0] <= grown[-1][1]:  # reaches the one before: one stretch
                last = grown.pop()
                hunk = [last[0], hunk[1], last[2], hunk[3]]
            if found and hunk[1] >= found[0][0]:  # reaches the next one: one stretch
                after = found.pop(0)
                hunk = [hunk[0], after[1], hunk[2], after[3]]
            i1, i2, j1, j2 = hunk
            if i1 == 0 or j1 == 0:
                raise SystemExit("the locks differ on their first line")
            sides = [reaches_out(a[i1:i2]), reaches_out(b[j1:j2])]
            if not ends_a_line(a[i1 - 1]) or any(before for before, _ in sides):
                hunk = [i1 - 1, i2, j1 - 1, j2]
            elif (
                (i2 > i1 and not ends_a_line(a[i2 - 1]))
                or (j2 > j1 and not ends_a_line(b[j2 - 1]))
                or any(after for _, after in sides)
            ):
                if i2 == len(a) or j2 == len(b):
                    raise SystemExit("the locks differ on a last line that Jinja would eat")
                hunk = [i1, i2 + 1, j1, j2 + 1]
            else:
                break
        grown.append(hunk)
    return [(i1, i2, j1, j2) for i1, i2, j1, j2 in grown]


def merged_on(on: str, off: str, variable: Variable) -> str:
    """One Jinja text that renders ``on`` when ``variable`` takes its ``on`` value, else
    ``off``; both may hold the ``if`` blocks of the answers merged before."""
    a, b = on.splitlines(keepends=True), off.splitlines(keepends=True)
    out: list[str] = []
    done = 0
    for i1, i2, j1, j2 in hunks(a, b):
        out += [*a[done:i1], f"{{%- if {variable.test} %}}\n", *a[i1:i2]]
        out += ["{%- else %}\n", *b[j1:j2], "{%- endif %}\n"]
        done = i2
    return "".join([*out, *a[done:]])


def merged(locks: dict[Combination, str]) -> str:
    """One Jinja text that renders each combination's lock with its answers: merged on the
    first answer for each value of the others, then on the second, and so on."""
    texts = locks
    for variable in VARIABLES:
        texts = {
            rest: merged_on(texts[(True, *rest)], texts[(False, *rest)], variable)
            for rest in dict.fromkeys(combination[1:] for combination in texts)
        }
    return texts[()]


def main(uv_args: list[str]) -> int:
    lock = TEMPLATE / "uv.lock"
    with tempfile.TemporaryDirectory() as out:
        locks = {c: locked(Path(out) / str(n), c, uv_args) for n, c in enumerate(COMBINATIONS)}
    lock.write_text(merged({c: templated_entry(text) for c, text in locks.items()}))
    print(f"wrote {lock.relative_to(ROOT)}")
    with tempfile.TemporaryDirectory() as out:
        for n, (combination, expected) in enumerate(locks.items()):
            project = bake(Path(out) / str(n), combination)
            if (project / "uv.lock").read_text() != expected:
                raise SystemExit(f"{context(combination)}: the baked lock differs")
    print(f"all {len(locks)} bakes render the lock uv wrote for them")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
