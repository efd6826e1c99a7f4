"""The definitions a new home loads, as plain values beside a reviewed snapshot: each asset's
dependencies, code version, group, partitions, automation condition and pool, each check and
whether it blocks, the jobs and the sensors. A change to any of them shows in review as a diff
of ``snapshots/definitions.json``; after a deliberate change, rewrite it by running this file
with ``TALKVID_UPDATE_SNAPSHOTS=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dagster import Definitions

from talkvid_assets.defs.build import build_definitions

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "definitions.json"
UPDATE_ENV = "TALKVID_UPDATE_SNAPSHOTS"


def outline(defs: Definitions) -> dict[str, Any]:
    """What ``defs`` declares, as JSON values in a stable order."""
    assets = {}
    for spec in defs.resolve_all_asset_specs():
        op = defs.resolve_assets_def(spec.key).op
        condition = spec.automation_condition
        assets[spec.key.to_user_string()] = {
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "code_version": spec.code_version,
            "group": spec.group_name,
            "partitions": getattr(spec.partitions_def, "name", None)
            or (type(spec.partitions_def).__name__ if spec.partitions_def else None),
            "automation": condition.get_label() if condition else None,
            "pool": op.pool,
        }
    checks = {
        f"{check.asset_key.to_user_string()}:{check.name}": {"blocking": check.blocking}
        for definition in defs.asset_checks or []
        for check in definition.check_specs
    }
    return {
        "assets": dict(sorted(assets.items())),
        "checks": dict(sorted(checks.items())),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
        "sensors": sorted(sensor.name for sensor in defs.sensors or []),
        "schedules": sorted(schedule.name for schedule in defs.schedules or []),
    }


def test_the_definitions_match_their_snapshot(tmp_path):
    current = outline(build_definitions(tmp_path / "home"))
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), f"rewrite it with {UPDATE_ENV}=1"
