"""The names Dagster knows the graph by: partitions, asset keys, groups, pools, tags and jobs.

Declared once here and imported by every defs module, launch.py and the CLI, so a rename is one
edit and a typo is an ImportError rather than a selection that quietly matches nothing. A
scoring stage's asset is named after its table (core.stages.Stage.table); a part of
curation.yaml after :func:`config_asset`. This module imports nothing, so the CLI can name a
partition or a job without loading Dagster.
"""

# Partitions: one dynamic partition per source video; one per evaluated model.
VIDEOS = "videos"
EVALUATED_MODELS = "evaluated_models"

# Assets, in the order of the graph.
URL_SOURCES = "url_sources"
RAW_VIDEOS = "raw_videos"
SEGMENTS = "segments"
DECODE_PASS = "decode_pass"  # the multi-asset computing segments and the embedded stages
FILTERED_CLIPS = "filtered_clips"
ANNOTATIONS = "annotations"
TALKVID_EXPORT = "talkvid_export"
SPEAKERS = "speakers"
BENCH_STRATA = "bench_strata"
TRAINING_SPLIT = "training_split"
DATASET = "talkvid_dataset"
CLIP_FILES = "clip_files"
FIXED_FRAME_RECORDS = "fixed_frame_records"
REVIEW_CALIBRATION = "review_calibration"
BENCH_EVALUATION = "bench_evaluation"
# The unpartitioned assets over the whole corpus, in the order they are updated after the
# videos' runs.
CORPUS_ASSETS = (SPEAKERS, BENCH_STRATA, TRAINING_SPLIT)
CORPUS_WIDE = (DATASET, *CORPUS_ASSETS)

# Groups of the UI's asset graph.
SOURCES_GROUP = "sources"
CONFIG_GROUP = "config"
CURATION_GROUP = "curation"
BENCH_GROUP = "bench"
EXPORTS_GROUP = "exports"
REVIEW_GROUP = "review"

# Concurrency pools: a decode slot per core's worth of work (dagster.yaml), the GPU slots
# (curation.yaml's `gpu_slots`), one download run at a time.
DECODE_POOL = "decode_pass"
GPU_POOL = "gpu"
DOWNLOAD_POOL = "downloads"

# Jobs.
CURATE_JOB = "curate"
REMOVE_JOB = "remove_videos"
URL_INGEST_JOB = "url_ingest"
INBOX_INGEST_JOB = "inbox_ingest"
EVALUATION_JOB = "bench_evaluation_job"

# Tags. Assets tagged ON_DEMAND_TAG are left out of curation runs and automation.
ON_DEMAND_TAG = "talkvid/on_demand"
# A run started by the CLI (or a test) on this host by this process: a dead one is reaped.
LAUNCHER_TAG = "talkvid/launched_by"
HOST_TAG, PID_TAG = "talkvid/host", "talkvid/pid"
INBOX_FILE_TAG = "talkvid/inbox_file"  # path:size:mtime of the file an inbox_ingest run ingests
MAX_RUNTIME_TAG = "dagster/max_runtime"  # run monitoring (dagster.yaml) ends a run past it


def config_asset(part: str) -> str:
    """The observable source asset of a part of curation.yaml."""
    return f"config_{part}"
