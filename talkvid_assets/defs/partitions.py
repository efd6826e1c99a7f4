"""One dynamic partition per source video, keyed by content hash (see core.ingest.video_key)."""

from dagster import DynamicPartitionsDefinition

video_partitions = DynamicPartitionsDefinition(name="videos")
