"""Stages 1-3 from one decode: segments, then the quality, motion and head-detail scores.

They are separate assets (separate tables, lineage and history in the UI) computed by one op,
because decoding is the cost floor: one pass over the video feeds the scene detector, the voice
detector and every scorer.
"""

from collections.abc import Iterator
from statistics import fmean

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from talkvid_assets.core.pipeline import analyse_segments
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource

SCORE_ASSETS = {
    "quality_scores": ("quality_score", "DOVER stand-in: technical quality on a 0-10 scale"),
    "motion_scores": ("motion_ratio", "CoTracker stand-in: share of tracked grid points"),
    "head_detail_scores": ("min_rotation", "movement, orientation, completeness, resolution..."),
}


def _summary(rows: list[dict], column: str) -> dict[str, float]:
    values = [row[column] for row in rows if row.get(column) is not None]
    if not values:
        return {"scored": 0}
    return {"scored": len(values), f"mean_{column}": fmean(values), f"min_{column}": min(values)}


@multi_asset(
    name="decode_pass",
    specs=[
        AssetSpec(
            "segments",
            deps=["raw_videos"],
            description="Scene cuts (PySceneDetect), clip bounds and silero-vad speech ratio",
            kinds={"pyav", "duckdb"},
        ),
        *[
            AssetSpec(key, deps=["segments"], description=description, kinds={"duckdb"})
            for key, (_, description) in SCORE_ASSETS.items()
        ],
    ],
    partitions_def=video_partitions,
    group_name="curation",
    pool="decode",
)
def decode_pass(
    context: AssetExecutionContext, talkvid: TalkvidResource
) -> Iterator[MaterializeResult]:
    """Decode the video once; write its segments and every clip score."""
    store = talkvid.store()
    tables = analyse_segments(
        store, context.partition_key, talkvid.backends(), talkvid.scene_detector
    )
    segments = tables["segments"]
    min_duration = talkvid.curation_profile().clip.min_duration_s
    report = store.rows("decode_reports", context.partition_key)[0]
    problems = [problem for problem in (report.get("error"), report.get("note")) if problem]
    for problem in problems:
        context.log.warning(problem)
    yield MaterializeResult(
        asset_key="segments",
        metadata={
            "segments": len(segments),
            "long_enough": sum(row["duration_s"] > min_duration for row in segments),
            "scene_detector": talkvid.scene_detector,
            "frames_decoded": report.get("frames_decoded") or 0,
            "decode_problems": "; ".join(problems) or "none",
            **_summary(segments, "speech_ratio"),
        },
    )
    for key, (column, _) in SCORE_ASSETS.items():
        yield MaterializeResult(asset_key=key, metadata=_summary(tables[key], column))
