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
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    MaterializeResult,
    multi_asset,
)

from talkvid_assets.core.decode_pass import DecodeOptions
from talkvid_assets.core.failures import describe
from talkvid_assets.core.stages import CPU_PARTS, STAGES, Stage
from talkvid_assets.core.store import Store
from talkvid_assets.defs.automation import VIDEO_AUTOMATION
from talkvid_assets.defs.metadata import histogram, picture
from talkvid_assets.defs.names import (
    CURATION_GROUP,
    DECODE_PASS,
    DECODE_POOL,
    RAW_VIDEOS,
    SEGMENTS,
    config_asset,
)
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.per_partition import record_partitions
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.scale import decode_passes


def _summary(rows: list[dict[str, Any]], column: str) -> dict[str, float]:
    values = [row[column] for row in rows if row.get(column) is not None]
    if not values:
        return {"scored": 0}
    return {"scored": len(values), f"mean_{column}": fmean(values), f"min_{column}": min(values)}


# What every stage's asset computes beyond its backend (the backend's build is its config part):
# bump when the scores' rows change for every backend.
SCORES_CODE_VERSION = "scores-2"


def stage_spec(stage: Stage) -> dict[str, Any]:
    """What a stage's asset is made of besides its partitions: the segments and the part of
    curation.yaml naming its backend."""
    return {
        "deps": [SEGMENTS, config_asset(stage.name)],
        "code_version": SCORES_CODE_VERSION,
        "automation_condition": VIDEO_AUTOMATION,
    }


def stage_version(context: AssetExecutionContext, store: Store, stage: Stage) -> DataVersion:
    """Each video's scores summarised on its own partition, and the output's data version."""
    shown = stage.column(stage.summary_column)
    metadata = {}
    for key in context.partition_keys:
        rows = store.rows(stage.table, key)
        metadata[key] = {
            **_summary(rows, stage.summary_column),
            "distribution": histogram(
                [row.get(stage.summary_column) for row in rows],
                (max(shown.low, 0.0), shown.high),
                None,
                shown.name,
            ),
        }
    digests = {key: store.digest(stage.table, key) for key in context.partition_keys}
    return record_partitions(context, store, stage.table, digests, metadata)


def build_decode_pass(stages_in_pass: Sequence[Stage] = STAGES) -> AssetsDefinition:
    """The decode multi-asset: segments and the scores of ``stages_in_pass`` (the stages whose
    backend is embedded; model stages are assets of their own, see defs.model_stages)."""
    specs = [
        AssetSpec(
            SEGMENTS,
            deps=[RAW_VIDEOS, config_asset("scenes")],
            description="Scene cuts (PySceneDetect), clip bounds and silero-vad speech ratio",
            kinds={"pyav", "duckdb"},
            code_version="segments-4",  # decode failures structured (3: subtitle rule)
            automation_condition=VIDEO_AUTOMATION,
            skippable=True,
        ),
        *[
            AssetSpec(
                stage.table,
                description=stage.description,
                kinds={"duckdb"},
                skippable=True,
                **stage_spec(stage),
            )
            for stage in stages_in_pass
        ],
    ]

    @multi_asset(
        name=DECODE_PASS,
        specs=specs,
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=CURATION_GROUP,
        pool=DECODE_POOL,
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
        options = DecodeOptions(
            scene_detector=config.scene_detector,
            runtime=config.runtime(talkvid.home_path),
            integer_downscale=config.judging_profile().integer_downscale,
        )
        decode_passes(
            store, context.partition_keys, backends, options, segments=SEGMENTS in selected
        )
        if SEGMENTS in selected:
            yield MaterializeResult(
                asset_key=SEGMENTS,
                metadata={"scene_detector": config.scene_detector},
                data_version=_segments_version(context, store),
            )
        for stage in stages:
            yield MaterializeResult(
                asset_key=stage.table,
                metadata={"backend": config.backends[stage.name]},
                data_version=stage_version(context, store, stage),
            )

    return decode_pass


def _segments_version(context: AssetExecutionContext, store: Store) -> DataVersion:
    """Each video's own segment and frame counts, decode problems, CPU and contact sheet."""
    metadata: dict[str, Mapping[str, Any]] = {}
    for key in context.partition_keys:
        segments = store.rows("segments", key)
        problems, frames = [], 0
        cpu_s = dict.fromkeys(CPU_PARTS, 0.0)
        for report in store.rows("decode_reports", key):
            frames += report.get("frames_decoded") or 0
            problems += [p for p in (describe(report.get("failures")), report.get("note")) if p]
            for part in CPU_PARTS:
                cpu_s[part] += report.get(f"{part}_cpu_s") or 0.0
        for problem in problems:
            context.log.warning(f"{key}: {problem}")
        entry: dict[str, Any] = {
            "segments": len(segments),
            "frames_decoded": frames,
            "decode_problems": "; ".join(problems) or "none",
            # Where the pass's CPU went (decode_reports.<part>_cpu_s).
            "cpu_seconds": {part: round(seconds, 2) for part, seconds in cpu_s.items()},
            **_summary(segments, "speech_ratio"),
        }
        sheet = store.preview_path(key)
        if sheet.exists():
            entry["contact_sheet"] = picture(sheet.read_bytes(), "first frame of each clip")
        metadata[key] = entry
    digests = {key: store.digest("segments", key) for key in context.partition_keys}
    return record_partitions(context, store, SEGMENTS, digests, metadata)
