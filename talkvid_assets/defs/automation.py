"""Dagster's declarative automation is the one automation: every asset carries a condition
composed of Dagster's own operands, evaluated by Dagster's automation sensor.

An asset partition is requested when it appeared (a new video), when a parent's data version
changed (re-scored data, an edited part of curation.yaml, see defs.config_assets), or when its
code version changed; never while it or a parent is in
progress, and never over a parent whose blocking check failed (until the data is fixed).
``since_last_handled`` keeps a request pending until it is carried out, so a failed or
cancelled run is requested again after the next change, and a value used before is not
"already done": there are no run keys.
"""

import os

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from talkvid_assets.defs.names import ANNOTATIONS, TALKVID_EXPORT

# Dagster's own guard against a race between a tick and the sensors' writes: the daemon's
# automation tick and the config sensor's tick start on the same 5 s loop, and an observation
# of curation.yaml written while a tick reads was seen by none (the tick's event cursor passed
# it, its reads did not): an edit carried out never. With a settle delay the tick fixes its
# cursor first, waits, and reads nothing past it, so the next tick sees the observation.
# `talkvid dev` and the image set it; a value already in the environment wins.
TICK_SETTLE_ENV = "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS"
TICK_SETTLE_S = "1"
AUTOMATION_INTERVAL_ENV = "TALKVID_AUTOMATION_INTERVAL_S"
DEFAULT_AUTOMATION_INTERVAL_S = 10


def automation_interval_s() -> int:
    """Seconds between automation ticks: ``$TALKVID_AUTOMATION_INTERVAL_S`` or 10.

    Tests of `talkvid dev` ask for less to wait less for each tick; Dagster's asset daemon
    loops every 5 s, so anything below 5 means a tick at every loop.
    """
    return int(os.environ.get(AUTOMATION_INTERVAL_ENV) or DEFAULT_AUTOMATION_INTERVAL_S)


# A parent's data changed: a new data version (an identical re-run of a parent changes none, so
# nothing below it runs; Dagster's any_deps_updated() counts every new materialization), unless
# the run that changed it built this asset too; or the parent is requested in this tick.
_PARENT_CHANGED = AutomationCondition.any_deps_match(
    (AutomationCondition.data_version_changed() & ~AutomationCondition.executed_with_root_target())
    | AutomationCondition.will_be_requested()
).with_label("a parent's data changed")
_UPDATED = _PARENT_CHANGED | AutomationCondition.code_version_changed()
# A parent built in the same run is checked there (a failed blocking check stops the run before
# the child); any other parent's blocking checks must have passed. Dagster's own
# all_deps_blocking_checks_passed() asks the checks themselves to be requested in the tick,
# which would hold each level of the graph to a run of its own.
_PARENTS_CHECKED = AutomationCondition.all_deps_match(
    AutomationCondition.will_be_requested()
    | AutomationCondition.all_checks_match(AutomationCondition.check_passed(), blocking_only=True)
).with_label("parents' blocking checks passed")
_NOT_BUSY_OR_BLOCKED = (
    ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & _PARENTS_CHECKED
)
# A video's assets: a new partition, or a change upstream; they wait for that video's parents.
VIDEO_AUTOMATION = (
    (AutomationCondition.newly_missing() | _UPDATED).since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & _NOT_BUSY_OR_BLOCKED
).with_label("curates what changed")
# The per-video parents of the corpus-wide assets: a video not yet curated (a missing partition)
# must not hold the corpus back, so only their other parents must be present.
VIDEO_PARENTS = AssetSelection.assets(ANNOTATIONS, TALKVID_EXPORT)
# The corpus-wide assets follow the videos' updates; on a home with no curated video (the
# speakers missing) they wait, even when the config sensor's first observation arrives.
CORPUS_AUTOMATION = (
    _UPDATED.since_last_handled()
    & ~AutomationCondition.any_deps_missing().ignore(VIDEO_PARENTS)
    & _NOT_BUSY_OR_BLOCKED
).with_label("follows the curated videos")

automation_sensor = AutomationConditionSensorDefinition(
    "automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=automation_interval_s(),
    description="Dagster's declarative automation over every asset: new videos, edits of "
    "curation.yaml, re-materialized parents and new code versions, each carried out once",
)
