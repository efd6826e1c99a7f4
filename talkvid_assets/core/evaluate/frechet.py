"""The Fréchet distance between Gaussians fitted to two feature sets: FID on frame features,
FVD on clip features.

``d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``. The trace of the matrix square
root is computed as the sum of the square roots of the eigenvalues of ``S1^(1/2) S2 S1^(1/2)``
(symmetric, positive semi-definite, the same eigenvalues as ``S1 S2``): two symmetric
eigendecompositions, stable for the singular covariances few samples give, with no SciPy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Gaussian(NamedTuple):
    mean: np.ndarray
    covariance: np.ndarray


def fit_gaussian(features: np.ndarray) -> Gaussian:
    """Mean and unbiased covariance of ``(samples, dim)`` features, as FID's reference code
    computes them (``numpy.cov`` with ``rowvar=False``)."""
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 samples, got {len(features)}")
    return Gaussian(features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False)))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(first: Gaussian, second: Gaussian) -> float:
    """The squared Fréchet distance between two Gaussians (what FID and FVD report)."""
    root = _sqrt_psd(first.covariance)
    middle = root @ second.covariance @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    difference = first.mean - second.mean
    value = (
        float(difference @ difference)
        + float(np.trace(first.covariance))
        + float(np.trace(second.covariance))
        - 2.0 * trace_sqrt
    )
    return max(0.0, value)


def feature_distance(reference: np.ndarray, generated: np.ndarray) -> float:
    """FID / FVD of two feature sets, each ``(samples, dim)``."""
    return frechet_distance(fit_gaussian(reference), fit_gaussian(generated))
