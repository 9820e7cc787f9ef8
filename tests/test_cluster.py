"""The generated project's cluster suite (two replicas on a real redis-server, and behind the
shipped nginx config) passes, nothing skipped: CI installs redis-server and nginx (.ci/run).
It runs on a project baked with cluster mode, which the default project leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REDIS, UV, assert_suite_passes, mentioning, run

pytestmark = pytest.mark.serial  # its timing bounds need the machine to itself


def test_cluster_mode_brings_redis_and_its_files(cluster_project: Path) -> None:
    assert {"pyproject.toml", "uv.lock"} <= set(mentioning(cluster_project, REDIS))
    assert (cluster_project / "deploy/nginx.conf").is_file()
    assert (cluster_project / "tests/test_load_balancer.py").is_file()
    assert "test-cluster:" in (cluster_project / "Makefile").read_text()
    run([UV, "lock", "--check"], cwd=cluster_project)


def test_make_test_cluster_passes(cluster_project: Path, tmp_path: Path) -> None:
    assert_suite_passes("test-cluster", cluster_project, tmp_path / "junit.xml")
