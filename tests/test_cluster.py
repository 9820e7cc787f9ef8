"""The generated project's cluster suite (two replicas on a real redis-server, and behind the
shipped nginx config) passes, nothing skipped: CI installs redis-server and nginx (.ci/run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import make_suite

pytestmark = pytest.mark.serial  # its timing bounds need the machine to itself

CLUSTER_TESTS = {
    "test_through_the_load_balancer_the_replicas_are_one_app",
    "test_two_replicas_act_as_one",
    "test_a_trickled_candidate_reaches_the_replica_that_took_the_offer",
    "test_a_killed_replica_leaves_the_listing_within_the_ttl",
    "test_a_replica_that_stops_leaves_the_listing_at_once",
    "test_without_redis_the_cluster_routes_answer_503_and_local_work_goes_on",
}


def test_make_test_cluster_passes(default_project: Path, tmp_path: Path) -> None:
    outcomes = make_suite("test-cluster", default_project, tmp_path / "junit.xml")

    assert outcomes == dict.fromkeys(CLUSTER_TESTS, "passed")
