"""Scoring stages whose configured backend runs one of the paper's models (DOVER, CoTracker3,
RetinaFace, insightface): each is an asset of its own, in the "gpu" concurrency pool, tagged
for Kubernetes to place it on a GPU node.

A model step replays the recorded cuts (the clip ids stay those of ``segments``) and feeds only
its model, so the decode pass never waits on a GPU slot and CPU work never holds one. The cost
is a second decode of each video for the model stages; scores are cached per clip bounds, so a
re-run does not decode again.
"""

from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from talkvid_assets.core.decode_pass import DecodeOptions
from talkvid_assets.core.stages import Stage
from talkvid_assets.defs.decode_pass import stage_spec, stage_version
from talkvid_assets.defs.names import CURATION_GROUP, GPU_POOL
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.scale import model_passes

# dagster-k8s reads this tag: a model step's pod asks the scheduler for one GPU.
GPU_OP_TAGS: dict[str, Any] = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    }
}


def build_model_stage(stage: Stage) -> AssetsDefinition:
    @asset(
        name=stage.table,
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=CURATION_GROUP,
        kinds={"duckdb", "gpu"},
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        description=f"{stage.description} (the paper's model, in the {GPU_POOL} pool)",
        **stage_spec(stage),
    )
    def model_stage(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        store, config = talkvid.store(), talkvid.config()
        backends = talkvid.backends([stage.name])
        # One video at a time (the model holds the GPU or the cores for a whole pass), on the
        # backend's Ray actor with TALKVID_EXECUTOR=ray (defs.scale).
        model_passes(
            store,
            context.partition_keys,
            backends,
            DecodeOptions(
                scene_detector=config.scene_detector, runtime=config.runtime(talkvid.home_path)
            ),
            reencoded=config.model_input == "clip",
        )
        return MaterializeResult(
            metadata={"backend": config.backends[stage.name]},
            data_version=stage_version(context, store, stage),
        )

    return model_stage
