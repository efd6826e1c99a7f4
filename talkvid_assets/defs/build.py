"""Definitions for one talkvid home: code versions follow its curation.yaml.

Built per home rather than once per process, because what a home's config decides (thresholds,
backends, scene detector) is what the assets' code versions are made of; `definitions.py` builds
them for ``$TALKVID_HOME`` for `dagster dev` and `dagster asset materialize`.
"""

from __future__ import annotations

from pathlib import Path

from dagster import AssetSelection, Definitions, define_asset_job

from talkvid_assets.core.config import backend_tag, code_versions, load_config
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import STAGES
from talkvid_assets.defs.bench import BENCH_CHECKS, CORPUS_ASSETS, build_bench
from talkvid_assets.defs.checks import build_checks
from talkvid_assets.defs.decode_pass import build_decode_pass
from talkvid_assets.defs.exports import ON_DEMAND_TAG, build_exports
from talkvid_assets.defs.filtered_clips import build_filtered_clips
from talkvid_assets.defs.model_stages import build_model_stage
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.raw_videos import build_raw_videos
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.review import review_calibration
from talkvid_assets.defs.scale import executor_from_env
from talkvid_assets.defs.sensors import (
    CURATE_JOB,
    DATASET,
    dataset_automation,
    inbox_sensor,
    stale_sensor,
)

curate_job = define_asset_job(
    CURATE_JOB,
    selection=AssetSelection.all()
    - AssetSelection.assets(DATASET, *CORPUS_ASSETS)
    - AssetSelection.tag(ON_DEMAND_TAG, "true"),
    partitions_def=video_partitions,
    description="The curation graph for a range of source videos (one or more partitions)",
)


def build_definitions(home: Path) -> Definitions:
    """The graph, checks, sensors and resource of the home at ``home``.

    Runs are in-process by default: a step process would import torch, OpenCV and Dagster again
    (about 4 s) for work that takes about as long; a run covers several partitions instead.
    ``TALKVID_EXECUTOR`` sends steps to Celery workers or Kubernetes pods (defs.scale).
    """
    config = load_config(home)
    runtime = config.runtime(home)
    tags = {
        name: backend_tag(load_backend(name, backend, runtime))
        for name, backend in config.backends.items()
    }
    versions = code_versions(config, tags)
    models = [stage for stage in STAGES if config.backends[stage.name] in stage.model_backends]
    return Definitions(
        assets=[
            build_raw_videos(versions),
            build_decode_pass(versions, [stage for stage in STAGES if stage not in models]),
            *(build_model_stage(stage, versions) for stage in models),
            build_filtered_clips(versions),
            *build_exports(versions),
            *build_bench(versions),
            review_calibration,
        ],
        asset_checks=[*build_checks(), *BENCH_CHECKS],
        jobs=[curate_job],
        sensors=[inbox_sensor, stale_sensor, dataset_automation],
        resources={"talkvid": TalkvidResource(home=str(home), config_digest=config.digest)},
        executor=executor_from_env(),
    )
