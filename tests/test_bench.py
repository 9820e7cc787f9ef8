"""``make bench``'s parts run against the default project: its plain fastrtc app builds, and
the stage-by-stage breakdown times tone bursts through the layer and through plain fastrtc.
(The whole bench takes a quarter of an hour: it is run by hand, its report is BENCHMARKS.md.)"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import ROOT, run

PROBE = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import breakdown, plain_app
from my_fastrtc_app.app import create_app
from my_fastrtc_app.settings import Settings

async def main():
    layer = create_app(Settings(_env_file=None, log_level="warning", ice_servers=[]))
    plain, _ = plain_app.build("my_fastrtc_app")
    print(json.dumps({
        "layer": await breakdown.measure("my_fastrtc_app", layer, 2.0),
        "plain": await breakdown.measure("my_fastrtc_app", plain, 2.0, "lan"),
    }))

asyncio.run(main())
"""


def test_the_breakdown_times_every_stage_of_both_apps(default_project: Path) -> None:
    python = default_project / ".venv" / "bin" / "python"
    result = run([str(python), "-c", PROBE, str(ROOT / "bench")], cwd=default_project)
    measured = json.loads(result.stdout.strip().splitlines()[-1])

    for app, stages in measured.items():
        assert stages["bursts"] >= 2, (app, stages)
        echo = stages["echo_ms"]
        assert all(value is not None and value >= 0 for value in echo.values()), (app, echo)
        parts = sum(value for stage, value in echo.items() if stage != "round trip")
        assert abs(parts - echo["round trip"]) < 0.2 * echo["round trip"], (app, echo)
        assert stages["connect_ms"]["offer -> connected"] > 0, (app, stages)
    # plain fastrtc holds 4 packets before its handler hears them; the layer, none in order
    assert measured["plain"]["echo_ms"]["server: receive buffer and decode"] >= 60
    assert measured["layer"]["echo_ms"]["server: receive buffer and decode"] < 30
