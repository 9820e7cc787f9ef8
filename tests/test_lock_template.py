"""scripts/lock_template.py's merge: one Jinja text that renders each combination's lock."""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import pytest
from cookiecutter.environment import StrictEnvironment

from .conftest import ROOT


def script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lock_template", ROOT / "scripts/lock_template.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where its dataclass looks itself up
    spec.loader.exec_module(module)
    return module


LOCK = script()


def render(text: str, **answers: Any) -> str:
    """``text`` rendered as cookiecutter renders a template file."""
    return (
        StrictEnvironment(keep_trailing_newline=True).from_string(text).render(cookiecutter=answers)
    )


def lock(cluster: bool, voice: bool) -> str:
    """A lock-like text: entries apart by blank lines, some only for some answers."""
    entries = [
        'name = "aiortc"\ndeps = [\n    "av",\n]',
        *(['name = "async-timeout"\ndeps = [\n]'] if cluster else []),
        'name = "fastapi"',
        *(['name = "openai"\ndeps = [\n    "jiter",\n]'] if voice else []),
        'name = "app"\ndeps = [\n    "numpy",\n'
        + ('    "openai",\n' if voice else "")
        + ('    "redis",\n' if cluster else "")
        + "]",
        f'name = "both"\nfor = "{cluster}-{voice}"',
        'name = "uvicorn"',
    ]
    return "version = 1\n\n" + "\n\n".join(f"[[package]]\n{entry}" for entry in entries) + "\n"


def test_each_combination_renders_its_own_lock() -> None:
    locks = {c: lock(*c) for c in LOCK.COMBINATIONS}
    merged = LOCK.merged(locks)

    for combination, expected in locks.items():
        assert render(merged, **LOCK.context(combination)) == expected
    # Another handler renders like the one that is not the voice agent.
    for cluster in (True, False):
        assert render(merged, include_cluster=cluster, handler="custom") == lock(cluster, False)


def test_a_line_sits_under_the_answers_it_depends_on() -> None:
    merged = LOCK.merged({c: lock(*c) for c in LOCK.COMBINATIONS})
    cluster = "{%- if cookiecutter.include_cluster %}\n"
    voice = '{%- if cookiecutter.handler == "voice-agent" %}\n'
    other, end = "{%- else %}\n", "{%- endif %}\n"

    assert f'{voice}    "openai",\n{other}{end}{cluster}    "redis",\n{other}{end}' in merged
    assert f'{cluster}]\n\n[[package]]\nname = "async-timeout"\ndeps = [\n{other}{end}' in merged
    both = (
        f'{cluster}{voice}for = "True-True"\n{other}for = "True-False"\n{end}'
        f'{other}{voice}for = "False-True"\n{other}for = "False-False"\n{end}{end}'
    )
    assert both in merged
    assert merged.count("{%- if ") == 7


def test_locks_that_differ_on_their_first_line_are_refused() -> None:
    with pytest.raises(SystemExit, match="first line"):
        LOCK.merged({c: f"{c}\nsame\n" for c in LOCK.COMBINATIONS})
