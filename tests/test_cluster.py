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
    "test_simultaneous_offers_never_pass_a_replicas_limit_nor_share_an_id",
    "test_an_id_stays_taken_while_its_connection_lives_and_is_free_once_it_closes",
    "test_garbage_requests_neither_stop_a_replica_serving_others_nor_keep_it_registered",
    "test_garbage_listing_entries_are_skipped_on_every_replica",
    "test_garbage_outputs_neither_cut_remote_event_streams_nor_fail_latest",
    "test_an_id_claimed_with_garbage_outputs_only_has_no_output_yet",
    "test_after_redis_restarts_remote_commands_are_unavailable_until_the_view_is_back",
    "test_a_replica_on_a_taken_port_exits_non_zero",
}


def test_make_test_cluster_passes(default_project: Path, tmp_path: Path) -> None:
    outcomes = make_suite("test-cluster", default_project, tmp_path / "junit.xml")

    assert outcomes == dict.fromkeys(CLUSTER_TESTS, "passed")
