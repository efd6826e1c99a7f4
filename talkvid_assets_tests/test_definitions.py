"""The Definitions as a whole: what importing them does, and what they declare.

The snapshot (definitions_snapshot.json beside this file) holds every asset's key, deps, code
version, partitions, pools, automation and checks, and the jobs and sensors, so an unintended
change of the graph (a dep lost in a refactor, a code version bumped by accident, an asset moved
out of its pool) fails here, in the diff. After an intended change, write the new snapshot with
``python -m talkvid_assets_tests.test_definitions`` and commit it with the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dagster import Definitions

from talkvid_assets.defs.build import build_definitions

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
KIND_TAG = "dagster/kind/"


def test_importing_the_definitions_writes_nothing(tmp_path):
    """`dagster dev`, a code server and `dagster asset materialize` import the module; the
    import itself must not create the home's curation.yaml (or anything else): Dagster builds
    the definitions when it loads them."""
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import talkvid_assets.defs.definitions"],
        env={**os.environ, "TALKVID_HOME": str(home)},
        check=True,
        timeout=120,
    )
    assert list(home.iterdir()) == []


def snapshot(defs: Definitions) -> dict[str, Any]:
    """What the definitions declare, as plain data in a stable order."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda key: key.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "code_version": node.code_version,
            "group": node.group_name,
            "partitions": getattr(node.partitions_def, "name", None),
            "pools": sorted(node.pools),
            "kinds": sorted(node.kinds),
            "tags": {
                tag: value
                for tag, value in sorted(node.tags.items())
                if not tag.startswith(KIND_TAG)  # the kinds above
            },
            "automation": condition.get_label() if condition else None,
            "checks": sorted(check.name for check in node.check_keys),
        }
    checks = {
        f"{check.asset_key.to_user_string()}/{check.name}": {
            "blocking": graph.get(check).blocking,
            "partitions": getattr(graph.get(check).partitions_def, "name", None),
        }
        for check in sorted(graph.asset_check_keys, key=lambda check: check.to_user_string())
    }
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda job: job.name):
        selection = getattr(job, "selection", None)  # an asset job's; an op job has none
        jobs[job.name] = {
            "assets": sorted(key.to_user_string() for key in selection.resolve(graph))
            if selection is not None
            else None,
            "partitions": getattr(job.partitions_def, "name", None),
        }
    sensors = {
        sensor.name: {
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
        }
        for sensor in sorted(defs.sensors or [], key=lambda sensor: sensor.name)
    }
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors}


def current() -> dict[str, Any]:
    """The snapshot of a new home's definitions (the default curation.yaml)."""
    with tempfile.TemporaryDirectory() as home:
        return snapshot(build_definitions(Path(home)))


def test_the_definitions_match_the_committed_snapshot():
    expected = json.loads(SNAPSHOT.read_text())
    assert current() == expected, (
        f"the definitions changed; if that was intended, rewrite {SNAPSHOT.name} with "
        "`python -m talkvid_assets_tests.test_definitions` and commit it"
    )


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=2) + "\n")
    print(f"wrote {SNAPSHOT}")
