"""The evaluation's statistics against closed forms and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkvid_assets.core.evaluate.bootstrap import (
    bootstrap_interval,
    percentile_interval,
    resample_indices,
)
from talkvid_assets.core.evaluate.extractors import I3DClips, InceptionFrames
from talkvid_assets.core.evaluate.frechet import Gaussian, feature_distance, frechet_distance
from talkvid_assets.core.evaluate.harness import BenchClip, ClipMeasures, gap_rows, metric_rows
from talkvid_assets.core.evaluate.references import ReferenceCache, reference_key
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable


def exact_samples(mean: np.ndarray, covariance: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Samples whose sample mean and (unbiased) covariance are exactly ``mean``/``covariance``."""
    raw = np.random.default_rng(seed).normal(size=(count, len(mean)))
    raw -= raw.mean(axis=0)
    whitened = raw @ np.linalg.inv(np.linalg.cholesky(np.cov(raw, rowvar=False))).T
    return whitened @ np.linalg.cholesky(covariance).T + mean


def closed_form_scaled(mu1, mu2, covariance, scale) -> float:
    """d^2 between N(mu1, S) and N(mu2, a S): |mu1 - mu2|^2 + (1 - sqrt(a))^2 tr(S)."""
    return float(np.sum((mu1 - mu2) ** 2) + (1 - np.sqrt(scale)) ** 2 * np.trace(covariance))


COVARIANCE = np.array([[2.0, 0.6, 0.1], [0.6, 1.0, -0.3], [0.1, -0.3, 0.5]])
MU1, MU2 = np.array([0.0, 1.0, -2.0]), np.array([1.5, -0.5, 0.25])


def test_frechet_distance_of_known_gaussians_is_the_closed_form():
    first, second = Gaussian(MU1, COVARIANCE), Gaussian(MU2, 4.0 * COVARIANCE)
    assert frechet_distance(first, second) == pytest.approx(
        closed_form_scaled(MU1, MU2, COVARIANCE, 4.0), abs=1e-6
    )
    # Commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((MU1 - MU2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(Gaussian(MU1, np.diag(s1)), Gaussian(MU2, np.diag(s2))) == (
        pytest.approx(expected, abs=1e-6)
    )


def test_fid_of_feature_sets_with_known_moments_is_the_closed_form_and_zero_on_itself():
    reference = exact_samples(MU1, COVARIANCE, 50, seed=1)
    generated = exact_samples(MU2, 2.25 * COVARIANCE, 80, seed=2)
    assert feature_distance(reference, generated) == pytest.approx(
        closed_form_scaled(MU1, MU2, COVARIANCE, 2.25), abs=1e-6
    )
    assert feature_distance(reference, reference) == pytest.approx(0.0, abs=1e-9)


def _clip(index: int, dimension: str, stratum: str) -> BenchClip:
    return BenchClip(f"v-{index:04d}", "v", dimension, stratum, "unused.mp4", 0.0, 5.0)


def test_fvd_per_stratum_is_the_closed_form_of_its_clips():
    """Clip features built with known moments per stratum: FVD is computed on each stratum's
    clips alone, and on all of them for the overall row."""
    reference = exact_samples(MU1, COVARIANCE, 40, seed=3)
    shifted = exact_samples(MU2, COVARIANCE, 40, seed=4)
    measures = [
        ClipMeasures(_clip(i, "gender", "Female"), reference_clip=r, generated_clip=r)
        for i, r in enumerate(reference)
    ] + [
        ClipMeasures(_clip(100 + i, "gender", "Male"), reference_clip=r, generated_clip=g)
        for i, (r, g) in enumerate(zip(reference, shifted, strict=True))
    ]
    rows = {
        (row["stratum"], row["metric"]): row
        for row in metric_rows(measures, {"clips": "tiny"}, resamples=20)
    }
    assert rows[("Female", "FVD")]["value"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("Male", "FVD")]["value"] == pytest.approx(
        float(np.sum((MU1 - MU2) ** 2)), abs=1e-6
    )
    assert rows[("Male", "FVD")]["clips"] == 40 and rows[("all", "FVD")]["clips"] == 80
    assert rows[("Male", "FVD")]["extractor"] == "tiny"
    (gap,) = gap_rows(list(rows.values()))
    assert (gap["best_stratum"], gap["worst_stratum"]) == ("Female", "Male")


def test_bootstrap_interval_of_a_hand_computed_case():
    values = np.array([1.0, 2.0, 4.0])
    indices = np.array([[0, 0, 0], [0, 1, 2], [2, 2, 2], [1, 1, 2]])
    # Resampled means 1, 7/3, 4, 8/3; sorted, the 25% and 75% linear quantiles are 2 and 3.
    low, high = bootstrap_interval(lambda row: float(values[row].mean()), indices, level=0.5)
    assert (low, high) == pytest.approx((2.0, 3.0))
    assert percentile_interval([5.0] * 10) == (5.0, 5.0)


def test_per_clip_metrics_group_by_stratum_with_their_own_bootstrap():
    csim = {"Asian": [0.9, 0.8, 0.7], "Black": [0.5, 0.6], "White": [0.95]}
    measures = []
    for stratum, values in csim.items():
        for value in values:
            clip = _clip(len(measures), "ethnicity", stratum)
            measures.append(ClipMeasures(clip, per_clip={"CSIM": value}))
    rows = metric_rows(measures, {"identity": "dlib-resnet"}, resamples=50, seed=7)
    found = {row["stratum"]: row for row in rows}
    assert list(found) == ["all", "Asian", "Black", "White"]
    for stratum, values in csim.items():
        row = found[stratum]
        assert row["value"] == pytest.approx(np.mean(values)) and row["clips"] == len(values)
        by_hand = [np.mean(np.array(values)[i]) for i in resample_indices(len(values), 50, 7)]
        assert (row["low"], row["high"]) == pytest.approx(
            (np.quantile(by_hand, 0.025), np.quantile(by_hand, 0.975))
        )
    everything = [value for values in csim.values() for value in values]
    assert found["all"]["value"] == pytest.approx(np.mean(everything))
    (gap,) = gap_rows(rows)
    assert (gap["best_stratum"], gap["worst_stratum"]) == ("White", "Black")
    assert gap["gap"] == pytest.approx(0.95 - 0.55)


class ChannelMeans(torch.nn.Module):
    """Stands in for Inception's TorchScript file: same call, per-channel means as features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


class ClipChannelMeans(torch.nn.Module):
    """Stands in for I3D's TorchScript file: same call, per-channel means over the clip."""

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = True,
        return_features: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        return x.mean(dim=(2, 3, 4))


def test_torchscript_extractors_load_from_the_models_folder_and_feed_their_layout(tmp_path):
    """The published Inception and I3D files cannot be fetched here; TorchScript files of the
    same call signature go through the same loading and input layout (uint8 NCHW for
    Inception, NCTHW in [-1, 1] for I3D, 16 frames)."""
    runtime = Runtime(tmp_path / "models", "cpu")
    with pytest.raises(BackendUnavailable, match="talkvid models fetch inception-v3"):
        InceptionFrames(runtime).ready()
    for extractor, module in ((InceptionFrames, ChannelMeans), (I3DClips, ClipChannelMeans)):
        (tmp_path / "models" / extractor.MODEL).mkdir(parents=True)
        torch.jit.script(module()).save(str(tmp_path / "models" / extractor.MODEL / extractor.FILE))
    frames = np.zeros((20, 8, 8, 3), np.uint8)
    frames[..., 0], frames[:16, :, :, 1] = 255, 51  # red full, green only in the first 16
    assert InceptionFrames(runtime).frame_features(frames[:2]).tolist() == [[255.0, 51.0, 0.0]] * 2
    assert I3DClips(runtime).clip_features(frames) == pytest.approx([1.0, -0.6, -1.0])


def test_kept_reference_features_follow_their_source_file_and_span(tmp_path):
    source = tmp_path / "source.mp4"
    source.write_bytes(b"x" * 10)
    key = reference_key("v-0000", source, 0.0, 4.0)
    assert key is not None and key == reference_key("v-0000", source, 0.0, 4.0)
    assert key != reference_key("v-0000", source, 0.0, 3.96)  # a re-cut clip
    assert reference_key("v-0000", tmp_path / "gone.mp4", 0.0, 4.0) is None
    cache = ReferenceCache(tmp_path / "home")
    assert cache.get("a/b:c", "v", key) is None
    cache.put("a/b:c", "v", key, np.arange(3.0))  # a plugged-in extractor's name, as a folder
    cache.put("dlib-resnet", "v", key, np.zeros(0))  # no face: kept as an empty embedding
    cache.put("dlib-resnet", "v-0000", "v-0000-0000-x", np.ones(2))  # a video named "v-0000"
    assert cache.get("a/b:c", "v", key).tolist() == [0.0, 1.0, 2.0]
    source.write_bytes(b"y" * 11)  # the source replaced
    assert reference_key("v-0000", source, 0.0, 4.0) != key
    (cache.folder / "a_b_c" / "v" / f"{key}.npy").write_bytes(b"torn")
    assert cache.get("a/b:c", "v", key) is None  # measured again, not a crash
    assert len(cache.forget("v")) == 2  # a removed video's features go with it, no other's
    assert [path.parent.name for path in cache.folder.rglob("*.npy")] == ["v-0000"]
