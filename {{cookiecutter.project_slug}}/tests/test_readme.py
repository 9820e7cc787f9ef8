"""The README's tree of the package lists every module, and only those."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "src" / "{{ cookiecutter.package_name }}"


def test_the_tree_lists_every_module() -> None:
    readme = (PROJECT / "README.md").read_text()
    tree = readme.split("## How it is built", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^  (\S+\.py) ", tree, re.M))
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    assert listed == modules
