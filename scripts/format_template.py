"""Format the template's Python files with ruff, through a baked copy.

Template files hold Jinja, so ruff cannot run on them in place: this bakes the project, with
cluster mode and once for each handler module so that every file is in some bake, runs
``ruff format`` and ``ruff check --fix`` there, and copies each changed file back over its
template source when that source has no Jinja but the package name (which goes back in as
Jinja). Other changed files with Jinja are listed, to be mended by hand.

Usage: uv run python scripts/format_template.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
PACKAGE_JINJA = "{{ cookiecutter.package_name }}"


def answer_sets() -> list[dict[str, Any]]:
    """Answers whose bakes hold every file: cluster mode on, and each handler module once."""
    spec = json.loads((ROOT / "cookiecutter.json").read_text())
    pairs = [{"media": media} for media in spec["_demo_handlers"]]
    handlers = [{"handler": handler} for handler in spec["_handlers_need"]]
    return [{"include_cluster": True, **answers} for answers in [*pairs, *handlers]]


def main() -> int:
    for answers in answer_sets():
        format_through(answers)
    return 0


def format_through(answers: dict[str, Any]) -> None:
    """Format the template's Python files that a bake with ``answers`` holds."""
    with tempfile.TemporaryDirectory() as out:
        project = Path(
            cookiecutter(str(ROOT), no_input=True, output_dir=out, extra_context=answers)
        )
        package = next((project / "src").iterdir()).name
        pairs = {
            source: project
            / str(source.relative_to(TEMPLATE)).replace("{{cookiecutter.package_name}}", package)
            for source in TEMPLATE.rglob("*.py")
        }
        before = {baked: baked.read_text() for baked in pairs.values() if baked.exists()}
        ruff = [sys.executable, "-m", "ruff"]
        subprocess.run([*ruff, "check", "-q", "--fix", "."], cwd=project, check=False)
        subprocess.run([*ruff, "format", "-q", "."], cwd=project, check=True)
        for source, baked in sorted(pairs.items()):
            if baked not in before or baked.read_text() == before[baked]:
                continue
            text = source.read_text().replace(PACKAGE_JINJA, "")
            if "{{" in text or "{%" in text:
                print(f"has Jinja, mend by hand: {source.relative_to(ROOT)}")
            else:
                source.write_text(baked.read_text().replace(package, PACKAGE_JINJA))
                print(f"formatted {source.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
