"""Stage 4: every threshold of the profile applied at once, every failed check listed."""

from collections import Counter

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    asset,
)

from talkvid_assets.core.pipeline import judge_clips
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource


@asset(
    partitions_def=video_partitions,
    group_name="curation",
    deps=["segments", "quality_scores", "motion_scores", "head_detail_scores"],
    kinds={"duckdb"},
    check_specs=[AssetCheckSpec("every_segment_judged", asset="filtered_clips")],
)
def filtered_clips(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
    """Pass/fail per clip with the list of failed checks and the profile version used."""
    store = talkvid.store()
    verdicts = judge_clips(store, context.partition_key, talkvid.curation_profile())
    segments = store.rows("segments", context.partition_key)
    reasons = Counter(
        reason.split("=")[0].split(" ")[0] for v in verdicts for reason in v["reject_reasons"]
    )
    return MaterializeResult(
        metadata={
            "clips": len(verdicts),
            "passed": sum(v["passed"] for v in verdicts),
            "profile": talkvid.curation_profile().tag,
            "failed_checks": dict(reasons.most_common()) or "none",
        },
        check_results=[
            AssetCheckResult(
                check_name="every_segment_judged",
                passed=len(verdicts) == len(segments),
                metadata={"segments": len(segments), "verdicts": len(verdicts)},
            )
        ],
    )
