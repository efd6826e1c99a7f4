"""The thin Dagster layer: partitions, resources, one module per stage, one Definitions."""
