"""Refresh the generated project's ``uv.lock`` in the template.

Bakes the default project once with cluster mode and once without, runs ``uv lock`` in each
(extra arguments go to it, e.g. ``--upgrade``), and writes one lock back into the template:
the lines the two share as they are, the lines that differ between
``{%- if cookiecutter.include_cluster %}``, ``{%- else %}`` and ``{%- endif %}``, and the
project's own name and version turned back into Jinja, so every baked project gets a lock that
matches it byte for byte. Then bakes both again and checks that they do.

Usage: uv run python scripts/lock_template.py [--upgrade]
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
# The uv that runs this script (``uv run`` exports it as UV), else the one on PATH.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
SLUG, VERSION = "my-fastrtc-app", "0.1.0"  # the default answers the bakes take
# Each tag stands on a line of its own, and its ``{%-`` eats the newline before it (and any
# whitespace: so a tag never follows a blank line), so each bake renders exactly uv's lines.
IF, ELSE, ENDIF = (
    "{%- if cookiecutter.include_cluster %}",
    "{%- else %}",
    "{%- endif %}",
)


def locked(out: Path, include_cluster: bool, uv_args: list[str]) -> str:
    """The lock ``uv lock`` writes for the default project with or without cluster mode."""
    project = Path(
        cookiecutter(
            str(ROOT),
            no_input=True,
            output_dir=str(out),
            extra_context={"include_cluster": include_cluster},
        )
    )
    subprocess.run([UV, "lock", *uv_args], cwd=project, check=True)
    text = (project / "uv.lock").read_text()
    for token in ("{{", "{%", "{#"):
        if token in text:
            raise SystemExit(f"the lock holds {token!r}, which Jinja would read")
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


def ends_a_line(lines: list[str], index: int) -> bool:
    """Whether ``lines[index]`` is text that ``{%-`` may follow: nothing but its newline to eat."""
    body = lines[index].removesuffix("\n")
    return body != "" and body == body.rstrip()


def hunks(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """Where ``a`` and ``b`` differ, each stretch grown over shared lines until ``{%-`` eats only
    a newline: the line before it and each side's last line must end in text."""
    found = [
        [i1, i2, j1, j2]
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
        if tag != "equal"
    ]
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
            if not ends_a_line(a, i1 - 1):
                hunk = [i1 - 1, i2, j1 - 1, j2]
            elif (i2 > i1 and not ends_a_line(a, i2 - 1)) or (
                j2 > j1 and not ends_a_line(b, j2 - 1)
            ):
                if i2 == len(a) or j2 == len(b):
                    raise SystemExit("the locks differ on a last line that Jinja would eat")
                hunk = [i1, i2 + 1, j1, j2 + 1]
            else:
                break
        grown.append(hunk)
    return [(i1, i2, j1, j2) for i1, i2, j1, j2 in grown]


def merged(cluster: str, single: str) -> str:
    """One Jinja text that renders ``cluster`` with include_cluster, else ``single``."""
    if not (cluster.endswith("\n") and single.endswith("\n")):
        raise SystemExit("a lock that does not end with a newline")
    a, b = cluster.splitlines(keepends=True), single.splitlines(keepends=True)
    out: list[str] = []
    done = 0
    for i1, i2, j1, j2 in hunks(a, b):
        out += [*a[done:i1], f"{IF}\n", *a[i1:i2], f"{ELSE}\n", *b[j1:j2], f"{ENDIF}\n"]
        done = i2
    return "".join([*out, *a[done:]])


def main(uv_args: list[str]) -> int:
    lock = TEMPLATE / "uv.lock"
    with tempfile.TemporaryDirectory() as out:
        cluster = locked(Path(out) / "cluster", True, uv_args)
        single = locked(Path(out) / "single", False, uv_args)
    lock.write_text(merged(templated_entry(cluster), templated_entry(single)))
    print(f"wrote {lock.relative_to(ROOT)}")
    with tempfile.TemporaryDirectory() as out:
        for include_cluster, expected in ((True, cluster), (False, single)):
            project = Path(
                cookiecutter(
                    str(ROOT),
                    no_input=True,
                    output_dir=f"{out}/{include_cluster}",
                    extra_context={"include_cluster": include_cluster},
                )
            )
            if (project / "uv.lock").read_text() != expected:
                raise SystemExit(f"include_cluster={include_cluster}: the baked lock differs")
    print("both bakes render the lock uv wrote for them")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
