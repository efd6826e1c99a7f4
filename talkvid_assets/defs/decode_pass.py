"""Stages 1-3 from one decode: segments, then every scoring stage's scores.

They are separate assets (separate tables, lineage, history and code versions in the UI)
computed by one op, because decoding is the cost floor: one pass over the video feeds the scene
detector, the voice detector and every scorer. The op can be subset: re-scoring one stage
replays the recorded cuts and runs only that scorer (or reuses cached scores without decoding).
"""

from collections.abc import Iterator, Mapping, Sequence
from statistics import fmean
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    multi_asset,
)

from talkvid_assets.core.pipeline import record_decode_passes
from talkvid_assets.core.stages import CPU_PARTS, STAGES, Stage
from talkvid_assets.core.store import Store
from talkvid_assets.defs.metadata import describe_sources, histogram, picture
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.resources import TalkvidResource

POOL = "decode_pass"


def _summary(rows: list[dict[str, Any]], column: str) -> dict[str, float]:
    values = [row[column] for row in rows if row.get(column) is not None]
    if not values:
        return {"scored": 0}
    return {"scored": len(values), f"mean_{column}": fmean(values), f"min_{column}": min(values)}


def stage_result(
    stage: Stage, rows: list[dict[str, Any]], sources: dict[str, Any], backend: str
) -> MaterializeResult:
    """What a stage's materialization shows: how many clips it scored and the distribution."""
    shown = stage.column(stage.summary_column)
    return MaterializeResult(
        asset_key=stage.table,
        metadata={
            **sources,
            **_summary(rows, stage.summary_column),
            "backend": backend,
            "distribution": histogram(
                [row.get(stage.summary_column) for row in rows],
                (max(shown.low, 0.0), shown.high),
                None,
                shown.name,
            ),
        },
    )


def build_decode_pass(
    code_versions: Mapping[str, str], stages_in_pass: Sequence[Stage] = STAGES
) -> AssetsDefinition:
    """The decode multi-asset: segments and the scores of ``stages_in_pass`` (the stages whose
    backend is embedded; model stages are assets of their own, see defs.model_stages)."""
    specs = [
        AssetSpec(
            "segments",
            deps=["raw_videos"],
            description="Scene cuts (PySceneDetect), clip bounds and silero-vad speech ratio",
            kinds={"pyav", "duckdb"},
            code_version=code_versions["segments"],
            skippable=True,
        ),
        *[
            AssetSpec(
                stage.table,
                deps=["segments"],
                description=stage.description,
                kinds={"duckdb"},
                code_version=code_versions[stage.table],
                skippable=True,
            )
            for stage in stages_in_pass
        ],
    ]

    @multi_asset(
        name="decode_pass",
        specs=specs,
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name="curation",
        pool=POOL,
        can_subset=True,
    )
    def decode_pass(
        context: AssetExecutionContext, talkvid: TalkvidResource
    ) -> Iterator[MaterializeResult]:
        """Decode each video once; write its segments and the selected stages' scores."""
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        stages = [stage for stage in stages_in_pass if stage.table in selected]
        store, config = talkvid.store(), talkvid.config()
        backends = talkvid.backends([stage.name for stage in stages])
        tables = record_decode_passes(
            store,
            context.partition_keys,
            backends,
            scene_detector=config.scene_detector,
            segments="segments" in selected,
            runtime=config.runtime(talkvid.home_path),
            integer_downscale=config.judging_profile().integer_downscale,
        )
        sources = describe_sources(store, context.partition_keys)
        if "segments" in selected:
            yield _segments_result(
                context, store, tables["segments"], config.scene_detector, sources
            )
        for stage in stages:
            yield stage_result(stage, tables[stage.table], sources, config.backends[stage.name])

    return decode_pass


def _segments_result(
    context: AssetExecutionContext,
    store: Store,
    segments: list[dict[str, Any]],
    detector: str,
    sources: dict[str, Any],
) -> MaterializeResult:
    problems, frames = [], 0
    cpu_s = dict.fromkeys(CPU_PARTS, 0.0)
    for key in context.partition_keys:
        for report in store.rows("decode_reports", key):
            frames += report.get("frames_decoded") or 0
            problems += [p for p in (report.get("error"), report.get("note")) if p]
            for part in CPU_PARTS:
                cpu_s[part] += report.get(f"{part}_cpu_s") or 0.0
    for problem in problems:
        context.log.warning(problem)
    metadata: dict[str, Any] = {
        **sources,
        "segments": len(segments),
        "scene_detector": detector,
        "frames_decoded": frames,
        "decode_problems": "; ".join(problems) or "none",
        # Where the pass's CPU went (decode_reports.<part>_cpu_s), summed over the run's videos.
        "cpu_seconds": {part: round(seconds, 2) for part, seconds in cpu_s.items()},
        **_summary(segments, "speech_ratio"),
    }
    if len(context.partition_keys) == 1:
        sheet = store.preview_path(context.partition_key)
        if sheet.exists():
            metadata["contact_sheet"] = picture(sheet.read_bytes(), "first frame of each clip")
    return MaterializeResult(asset_key=AssetKey("segments"), metadata=metadata)
