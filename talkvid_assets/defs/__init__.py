"""The thin Dagster layer: partitions, resources, assets per stage, checks, sensors, and the
Definitions of a home (build.py)."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Ranged backfill policies and partitioned checks are what make curation cheap; their
# "beta/preview" notices would otherwise print on every command.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
