"""Confidence intervals by resampling the bench's clips with replacement (percentile bootstrap).

Clips, not frames, are resampled: frames of one clip are not independent, and a stratum's
uncertainty comes from which clips (speakers, recordings) it holds. A set metric (FID, FVD) is
recomputed on each resample's clips; a per-clip metric (Sync-C, CSIM) is averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 200
LEVEL = 0.95


def resample_indices(count: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, count)`` clip indices drawn with replacement, reproducible by ``seed``."""
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def percentile_interval(statistics: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the resampled statistics (linear quantiles)."""
    values = np.asarray(statistics, np.float64)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], indices: np.ndarray, level: float = LEVEL
) -> tuple[float, float]:
    """The interval of ``statistic(clip_indices)`` over the rows of ``indices``."""
    return percentile_interval([statistic(row) for row in indices], level)
