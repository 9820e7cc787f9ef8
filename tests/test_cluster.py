"""The generated project's cluster suite (two replicas on a real redis-server) passes, nothing
skipped: CI installs redis-server (.ci/run), so these tests really run there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .conftest import run

CLUSTER_TESTS = {
    "test_through_the_load_balancer_the_replicas_are_one_app",
    "test_two_replicas_act_as_one",
    "test_a_trickled_candidate_reaches_the_replica_that_took_the_offer",
    "test_a_killed_replica_leaves_the_listing_within_the_ttl",
    "test_a_replica_that_stops_leaves_the_listing_at_once",
    "test_without_redis_the_cluster_routes_answer_503_and_local_work_goes_on",
}


def test_make_test_cluster_passes(default_project: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"

    run(
        ["make", "test-cluster"],
        cwd=default_project,
        timeout=600,
        PYTEST_ADDOPTS=f"--junitxml={report}",
    )

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    outcomes = {
        str(case.get("name")): next((child.tag for child in case), "passed")
        for case in suite.iter("testcase")
    }
    assert outcomes == dict.fromkeys(CLUSTER_TESTS, "passed")
