"""Dagster's declarative automation is the one automation: every asset carries a condition
composed of Dagster's own operands, evaluated by Dagster's automation sensor.

An asset partition is requested when it appeared (a new video), when a parent changed (a new
materialization or observation: a re-scored stage, an edited part of curation.yaml, see
defs.config_assets), or when its code version changed; never while it or a parent is in
progress, and never over a parent whose blocking check failed (until the data is fixed).
``since_last_handled`` keeps a request pending until it is carried out, so a failed or
cancelled run is requested again after the next change, and a value used before is not
"already done": there are no run keys.
"""

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

AUTOMATION_INTERVAL_S = 10

_CHANGED = (
    AutomationCondition.newly_missing()
    | AutomationCondition.any_deps_updated()
    | AutomationCondition.code_version_changed()
).since_last_handled()
_NOT_BUSY_OR_BLOCKED = (
    ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
)
# A video's assets wait for that video's parents.
VIDEO_AUTOMATION = (
    _CHANGED & ~AutomationCondition.any_deps_missing() & _NOT_BUSY_OR_BLOCKED
).with_label("curates what changed")
# The corpus-wide assets: a video not yet curated does not hold the others back.
CORPUS_AUTOMATION = (_CHANGED & _NOT_BUSY_OR_BLOCKED).with_label("follows the curated videos")

automation_sensor = AutomationConditionSensorDefinition(
    "automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_S,
    description="Dagster's declarative automation over every asset: new videos, edits of "
    "curation.yaml, re-materialized parents and new code versions, each carried out once",
)
