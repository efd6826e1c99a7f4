"""Asset checks that re-read what each stage wrote (core.validation) and can fail.

Blocking checks stop a run before bad data reaches the export: broken clip bounds, a missing or
out-of-range score, a verdict that does not account for a NULL score. The decode-coverage check
only warns: a truncated source is curated on its decodable part, on purpose.
"""

from collections.abc import Callable, Mapping, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from talkvid_assets.core import validation
from talkvid_assets.core.export import DATASET_FILE, VIDEO_EXPORT_DIR
from talkvid_assets.core.stages import STAGES, Stage
from talkvid_assets.core.store import Store
from talkvid_assets.defs.exports import JUDGED_AT, latest_judging
from talkvid_assets.defs.names import DATASET, FILTERED_CLIPS, RAW_VIDEOS, SEGMENTS, TALKVID_EXPORT
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.per_partition import check_partitions, problem_metadata
from talkvid_assets.defs.resources import TalkvidResource

# An invariant over a run's videos: the problems it finds in each video's rows. Those that need
# a query over the views answer for all the videos at once (a query costs about 20 ms, whatever
# the number of videos); those reading a video's own partition files go one video at a time.
Finder = Callable[[Store, Sequence[str]], Mapping[str, list[str]]]


def _each(per_video: Callable[[Store, str], list[str]]) -> Finder:
    return lambda store, keys: {key: per_video(store, key) for key in keys}


def _result(problems: list[str], severity: AssetCheckSeverity) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not problems,
        severity=severity,
        metadata=problem_metadata(problems),
    )


def _per_video_check(
    asset: str, name: str, finder: Finder, blocking: bool, description: str
) -> AssetChecksDefinition:
    severity = AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN

    @asset_check(
        asset=asset,
        name=name,
        blocking=blocking,
        partitions_def=video_partitions,
        description=description,
    )
    def check(context: AssetCheckExecutionContext, talkvid: TalkvidResource) -> AssetCheckResult:
        store = talkvid.store()
        return check_partitions(context, finder(store, context.partition_keys), severity)

    return check


def _stage_check(stage: Stage) -> AssetChecksDefinition:
    return _per_video_check(
        stage.table,
        "every_segment_scored_in_range",
        _each(lambda store, key: validation.score_problems(store, key, stage)),
        True,
        f"one {stage.name} row per segment; each score within its formula's range, or NULL",
    )


def _video_export_problems(store: Store, keys: Sequence[str]) -> Mapping[str, list[str]]:
    return validation.video_export_problems(store, store.home / VIDEO_EXPORT_DIR, keys)


@asset_check(asset=DATASET, name="holds_exactly_the_passing_clips", blocking=True)
def dataset_check(
    context: AssetCheckExecutionContext, talkvid: TalkvidResource
) -> AssetCheckResult:
    """The merged export holds every passing clip of the home once, and nothing else.

    Another curation may judge clips between the export's read and this check (two `talkvid
    curate` at once); then the export is out of date rather than wrong, the other curation
    rewrites it, and the check only warns.
    """
    store = talkvid.store()
    problems = validation.export_problems(store, [store.home / DATASET_FILE])
    built = context.instance.get_latest_materialization_event(AssetKey(DATASET))
    entry = built.asset_materialization.metadata.get(JUDGED_AT) if built else None
    superseded = entry is not None and latest_judging(store) > entry.value
    if problems and superseded:
        problems.insert(0, "clips were judged after this export read them: it is out of date")
    return _result(problems, AssetCheckSeverity.WARN if superseded else AssetCheckSeverity.ERROR)


def build_checks() -> list[AssetChecksDefinition]:
    return [
        _per_video_check(
            RAW_VIDEOS, "accepted_sources_are_plausible", _each(validation.probe_problems),
            True,
            "an accepted video has positive size, fps and duration, and its file exists",
        ),
        _per_video_check(
            SEGMENTS, "clip_bounds_are_consistent", _each(validation.segment_problems),
            True,
            "bounds inside the video, start < end, duration matches the bounds, unique ids",
        ),
        _per_video_check(
            SEGMENTS, "decode_covered_the_source",
            _each(validation.decode_coverage_problems), False,
            "warns when the decode failed or stopped before the end of the source",
        ),
        *[_stage_check(stage) for stage in STAGES],
        _per_video_check(
            FILTERED_CLIPS, "every_clip_judged_with_reasons",
            validation.verdict_problems, True,
            "a verdict per segment; passing means no reasons; a NULL score is always explained",
        ),
        _per_video_check(
            TALKVID_EXPORT, "holds_exactly_the_passing_clips", _video_export_problems, True,
            "the per-video export file holds exactly the video's passing clips",
        ),
        dataset_check,
    ]  # fmt: skip
