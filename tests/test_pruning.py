"""The post-generation hook's pruning: rules as data, every condition must hold to keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import hook

POST_GEN = hook("post_gen_project")

RULES = [
    {"paths": ["src/{package}/ui.py"], "keep_if": {"include_ui": [True]}},
    {
        "paths": ["deploy"],
        "optional_paths": ["src/{package}/cluster.py"],
        "keep_if": {"include_docker": [True], "include_cluster": [True]},
    },
    {"paths": ["licenses"], "keep_if": {"license": []}},
]


def answers(**given: Any) -> dict[str, Any]:
    return {"package_name": "app", "license": "MIT", "_prune": RULES, **given}


def test_paths_are_kept_only_when_every_condition_holds() -> None:
    both = answers(include_ui=True, include_docker=True, include_cluster=True)
    docker_only = answers(include_ui=False, include_docker=True, include_cluster=False)

    assert POST_GEN.excluded_paths(both) == ["licenses"]
    assert POST_GEN.excluded_paths(docker_only) == [
        "src/app/ui.py",
        "deploy",
        "src/app/cluster.py",
        "licenses",
    ]


def test_only_a_path_marked_optional_may_be_missing(tmp_path: Path) -> None:
    given = answers(include_ui=True, include_docker=True, include_cluster=True)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "licenses").mkdir()

    assert POST_GEN.declared_paths(given) == {
        "src/app/ui.py": False,
        "deploy": False,
        "src/app/cluster.py": True,
        "licenses": False,
    }
    assert POST_GEN.missing_paths(given, tmp_path) == ["src/app/ui.py"]
