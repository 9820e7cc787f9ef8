"""Refresh the generated project's ``uv.lock`` in the template.

Bakes the default project, runs ``uv lock`` there (extra arguments go to it, e.g.
``--upgrade``), and writes the lock back into the template with the project's own name and
version turned back into Jinja, so every baked project gets a lock that matches it.

Usage: uv run python scripts/lock_template.py [--upgrade]
"""

from __future__ import annotations

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


def main(uv_args: list[str]) -> int:
    lock = TEMPLATE / "uv.lock"
    with tempfile.TemporaryDirectory() as out:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=out))
        subprocess.run([UV, "lock", *uv_args], cwd=project, check=True)
        text = (project / "uv.lock").read_text()
    entry = (
        f'[[package]]\nname = "{project.name}"\nversion = "0.1.0"\nsource = {{ editable = "." }}'
    )
    if entry not in text:
        raise SystemExit(f"no entry for {project.name} 0.1.0 in the lock")
    templated = entry.replace(project.name, "{{ cookiecutter.project_slug }}").replace(
        "0.1.0", "{{ cookiecutter.version }}"
    )
    lock.write_text(text.replace(entry, templated))
    print(f"wrote {lock.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
