"""Definitions for one talkvid home.

Built per home rather than once per process: which stages run one of the paper's models (an
asset of their own in the GPU pool) follows the home's curation.yaml. Everything else the file
decides is data observed at run time (defs.config_assets), not frozen into the definitions, so
an edit needs no reload. `definitions.py` builds them for ``$TALKVID_HOME`` for `dagster dev`
and `dagster asset materialize`.
"""

from __future__ import annotations

from pathlib import Path

from dagster import AssetSelection, Definitions, define_asset_job

from talkvid_assets.core.config import load_config, model_stages
from talkvid_assets.core.stages import STAGES
from talkvid_assets.defs.automation import automation_sensor
from talkvid_assets.defs.bench import BENCH_CHECKS, build_bench
from talkvid_assets.defs.checks import build_checks
from talkvid_assets.defs.config_assets import CONFIG_ASSETS, config_sensor
from talkvid_assets.defs.decode_pass import build_decode_pass
from talkvid_assets.defs.evaluation import bench_evaluation, evaluation_job
from talkvid_assets.defs.exports import build_exports
from talkvid_assets.defs.filtered_clips import build_filtered_clips
from talkvid_assets.defs.model_stages import build_model_stage
from talkvid_assets.defs.names import (
    CONFIG_GROUP,
    CORPUS_WIDE,
    CURATE_JOB,
    ON_DEMAND_TAG,
    URL_SOURCES,
)
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.raw_videos import build_raw_videos
from talkvid_assets.defs.removal import remove_videos
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.review import review_calibration
from talkvid_assets.defs.scale import executor_from_env
from talkvid_assets.defs.sensors import inbox_sensor, manifest_sensor
from talkvid_assets.defs.url_sources import url_ingest_job, url_list_sensor, url_sources

curate_job = define_asset_job(
    CURATE_JOB,
    selection=AssetSelection.all()
    - AssetSelection.assets(*CORPUS_WIDE)
    - AssetSelection.tag(ON_DEMAND_TAG, "true")
    - AssetSelection.groups(CONFIG_GROUP)
    - AssetSelection.assets(URL_SOURCES),
    partitions_def=video_partitions,
    description="The curation graph for a range of source videos (one or more partitions)",
)


def build_definitions(home: Path) -> Definitions:
    """The graph, checks, sensors and resource of the home at ``home``.

    Runs are in-process by default: a step process would import torch, OpenCV and Dagster again
    (about 4 s) for work that takes about as long; a run covers several partitions instead.
    ``TALKVID_EXECUTOR`` sends steps to Celery workers or Kubernetes pods (defs.scale).
    """
    models = model_stages(load_config(home))
    return Definitions(
        assets=[
            *CONFIG_ASSETS,
            build_raw_videos(),
            build_decode_pass([stage for stage in STAGES if stage.name not in models]),
            *(build_model_stage(stage) for stage in STAGES if stage.name in models),
            build_filtered_clips(),
            *build_exports(),
            *build_bench(),
            review_calibration,
            url_sources,
            bench_evaluation,
        ],
        asset_checks=[*build_checks(), *BENCH_CHECKS],
        jobs=[curate_job, remove_videos, url_ingest_job, evaluation_job],
        sensors=[inbox_sensor, manifest_sensor, url_list_sensor, config_sensor, automation_sensor],
        resources={"talkvid": TalkvidResource(home=str(home), model_stages=list(models))},
        executor=executor_from_env(),
    )
