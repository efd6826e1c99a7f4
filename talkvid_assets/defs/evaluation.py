"""``bench_evaluation``: a model's videos measured on TalkVid-Bench, one partition per model.

Partitioned by the evaluated model's name (a dynamic partition `talkvid evaluate` adds); run
config names the folder of its videos (default ``$TALKVID_HOME/generated/<model>``) and the
extractors. It runs on request only (tagged like clip files, never in a curation run) and in
the GPU pool, where its networks belong. Its metadata holds the per-stratum table, the gaps
and the chart; the numbers are in ``evaluations/<model>/*.parquet``.
"""

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)
from pydantic import Field

from talkvid_assets.core.evaluate.bootstrap import RESAMPLES
from talkvid_assets.core.evaluate.report import NO_CHART, gap_table, metric_table
from talkvid_assets.core.evaluate.run import GENERATED_DIR, evaluate_model
from talkvid_assets.defs.metadata import picture
from talkvid_assets.defs.model_stages import GPU_OP_TAGS
from talkvid_assets.defs.names import (
    BENCH_GROUP,
    BENCH_STRATA,
    EVALUATED_MODELS,
    EVALUATION_JOB,
    GPU_POOL,
    ON_DEMAND_TAG,
)
from talkvid_assets.defs.resources import TalkvidResource

evaluated_models = DynamicPartitionsDefinition(name=EVALUATED_MODELS)


class EvaluationSettings(Config):
    generated: str = Field(default="", description="folder of <clip_id>.mp4 videos")
    extractors: dict[str, str] = Field(
        default_factory=dict, description="role -> backend (frames, clips, sync, identity)"
    )
    resamples: int = RESAMPLES
    seed: int = 0


@asset(
    partitions_def=evaluated_models,
    group_name=BENCH_GROUP,
    deps=[BENCH_STRATA],
    kinds={"parquet", "gpu"},
    tags={ON_DEMAND_TAG: "true"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def bench_evaluation(
    context: AssetExecutionContext, config: EvaluationSettings, talkvid: TalkvidResource
) -> MaterializeResult:
    """FID, FVD, Sync-C / Sync-D and CSIM of a model's videos per bench stratum, with
    bootstrap intervals and each dimension's best-to-worst gap."""
    model = context.partition_key
    home = talkvid.home_path
    generated = config.generated or str(home / GENERATED_DIR / model)
    result = evaluate_model(
        talkvid.store(),
        model,
        home / generated,  # an absolute folder stays itself
        talkvid.config().runtime(home),
        config.extractors,
        config.resamples,
        config.seed,
        report=context.log.info,
    )
    metadata = {
        "metrics": MetadataValue.md(f"```\n{metric_table(result.rows)}\n```"),
        "gaps": MetadataValue.md(f"```\n{gap_table(result.gaps)}\n```"),
        "chart": picture(result.chart, f"{model} per stratum") if result.chart else NO_CHART,
        "extractors": result.extractors,
        "skipped": result.skipped or "none",
        "clips_not_measured": len(result.problems),
        "problems": "\n".join(f"{k}: {v}" for k, v in result.problems.items()) or "none",
        "folder": MetadataValue.path(str(result.folder)),
    }
    return MaterializeResult(metadata=metadata)


evaluation_job = define_asset_job(
    EVALUATION_JOB,
    selection=AssetSelection.assets(bench_evaluation),
    partitions_def=evaluated_models,
    description="Evaluate one model's videos on TalkVid-Bench (partition: the model's name)",
)
