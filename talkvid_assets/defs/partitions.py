"""One dynamic partition per source video, keyed by its file name and content hash (see
core.partition_keys), and how many of them one run curates."""

from dagster import BackfillPolicy, DynamicPartitionsDefinition

from talkvid_assets.defs.names import VIDEOS

video_partitions = DynamicPartitionsDefinition(name=VIDEOS)

# A run process starts in about 3.5 s (torch, OpenCV, Dagster imports) and one in-process run of
# a few videos shares that cost; at most two runs at once (dagster.yaml) keep two cores busy.
PARTITIONS_PER_RUN = 3
backfill_policy = BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)
