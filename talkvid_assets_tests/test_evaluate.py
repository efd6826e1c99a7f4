"""`talkvid evaluate` end to end: a bench of synthetic talking faces in a real home, the bench
clips themselves as a "perfect model" and a degraded copy (blurred, audio 5 frames late).

FID and FVD use tiny extractors built in the tests (tiny_extractors, plugged in as
module:factory), Sync-C / Sync-D / AV offset the real SyncNet backend with a tiny network trained
on these faces, CSIM dlib's descriptor. The perfect model must win on every metric, overall and
in every stratum, and the printed table must show each stratum with its interval."""

from __future__ import annotations

import importlib.util
import shutil

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from talkvid_assets.core.evaluate.references import ReferenceCache
from talkvid_assets.core.evaluate.report import NO_CHART
from talkvid_assets.core.store import Store
from talkvid_assets.launch import instance_dir
from talkvid_assets_tests.commands import talkvid_in_process
from talkvid_assets_tests.conftest import configure
from talkvid_assets_tests.media import AUDIO_RATE, write_video
from talkvid_assets_tests.synthetic_sync import (
    FACE_FPS,
    delayed,
    envelope,
    face_still,
    talking_face,
    tone,
)

pytestmark = pytest.mark.slow  # three evaluations of eight clips: about two minutes

STRATA = {("gender", "Female"): 2, ("gender", "Male"): 2, ("age", "19-30"): 2, ("age", "60+"): 2}
FRAMES = 100  # 4 s at 25 fps
SHIFT = 5  # frames the degraded model's audio lags
TINY = [
    "--extractor",
    "frames=talkvid_assets_tests.tiny_extractors:TinyFrames",
    "--extractor",
    "clips=talkvid_assets_tests.tiny_extractors:TinyClips",
]
LOWER_IS_BETTER = {"FID": True, "FVD": True, "Sync-D": True, "AV offset": True}


@pytest.fixture(scope="module")
def bench(tmp_path_factory, face_syncnet_models):
    """A home whose bench holds eight synthetic talking clips, and the two models' folders."""
    root = tmp_path_factory.mktemp("evaluate")
    home = root / "home"
    configure(home, "paper")
    store = Store(home)
    still, _, mouth = face_still()
    shutil.copytree(face_syncnet_models, home / "models")
    perfect, degraded = root / "perfect", root / "degraded"
    perfect.mkdir()
    degraded.mkdir()
    rng = np.random.default_rng(11)
    picks: dict[str, list[dict]] = {}
    strata = [key for key, count in STRATA.items() for _ in range(count)]
    for index, (dimension, stratum) in enumerate(strata):
        video_id = f"{index:016x}"
        clip_id = f"{video_id}-0000"
        levels = envelope(FRAMES, rng)
        frames, audio = talking_face(levels, still, mouth), tone(levels, rng, AUDIO_RATE)
        source = write_video(root / f"{video_id}.mp4", frames, FACE_FPS, audio)
        height, width = frames[0].shape[:2]
        base = {"video_id": video_id, "source_path": str(source)}
        store.write("sources", video_id, [{**base, "size_bytes": source.stat().st_size}])
        store.write("raw_videos", video_id, [
            {**base, "status": "ok", "width": width, "height": height, "fps": FACE_FPS}
        ])  # fmt: skip
        store.write("segments", video_id, [
            {"clip_id": clip_id, "video_id": video_id, "start_time": 0.0,
             "end_time": FRAMES / FACE_FPS, "duration_s": FRAMES / FACE_FPS}
        ])  # fmt: skip
        picks.setdefault(dimension, []).append(
            {"clip_id": clip_id, "dimension": dimension, "stratum": stratum,
             "speaker_id": f"spk-{index}"}
        )  # fmt: skip
        shutil.copy(source, perfect / f"{clip_id}.mp4")
        blurred = [cv2.GaussianBlur(frame, (0, 0), 2.5) for frame in frames]
        write_video(
            degraded / f"{clip_id}.mp4", blurred, FACE_FPS, delayed(audio, SHIFT, AUDIO_RATE)
        )
    for dimension, rows in picks.items():
        store.write("bench_strata", dimension, rows)
    return home, perfect, degraded


def evaluate(home, model, folder, *extra):
    done = talkvid_in_process(
        home, "evaluate", model, "--generated", str(folder), "--resamples", "50", *extra
    )
    return done.stdout, pq.read_table(home / "evaluations" / model / "metrics.parquet").to_pylist()


def kept_references(home) -> dict[tuple[str, ...], int]:
    """The reference features kept between evaluations (extractor, video, file): inode."""
    folder = ReferenceCache(home).folder
    return {path.relative_to(folder).parts: path.stat().st_ino for path in folder.rglob("*.npy")}


def test_the_perfect_model_beats_the_degraded_one_on_every_metric_and_stratum(bench):
    home, perfect, degraded = bench
    printed, best = evaluate(home, "perfect", perfect, *TINY)
    kept = kept_references(home)
    extractors = {extractor for extractor, _, _ in kept}
    assert extractors == {"tiny-projection", "tiny-projection-motion", "dlib-resnet"}
    assert len(kept) == 3 * sum(STRATA.values())
    _, worse = evaluate(home, "degraded", degraded, *TINY)
    assert kept_references(home) == kept  # the bench's side measured once, for both models
    for stratum in ("gender/Female", "gender/Male", "age/19-30", "age/60+"):
        line = next(line for line in printed.splitlines() if line.startswith(stratum))
        assert line.count("[") == 6 and "n=2" in line, line  # six metrics, each an interval
    assert "best stratum" in printed and "skipped" not in printed
    if importlib.util.find_spec("matplotlib") is None:
        assert NO_CHART in printed
    else:
        assert (home / "evaluations" / "perfect" / "chart.png").read_bytes().startswith(b"\x89PNG")
    theirs = {(r["dimension"], r["stratum"], r["metric"]): r for r in worse}
    compared = set()
    for row in best:
        other = theirs[(row["dimension"], row["stratum"], row["metric"])]
        assert row["value"] is not None and other["value"] is not None, row
        lower = LOWER_IS_BETTER.get(row["metric"], False)
        better = row["value"] < other["value"] if lower else row["value"] > other["value"]
        assert better, (row, other)
        assert row["low"] <= row["value"] <= row["high"]
        compared.add(row["metric"])
    assert compared == {"FID", "FVD", "Sync-C", "Sync-D", "AV offset", "CSIM"}
    overall = {r["metric"]: r for r in best if r["dimension"] == "all"}
    assert overall["FID"]["value"] == pytest.approx(0.0, abs=1e-6)  # the same frames
    assert overall["CSIM"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert overall["FID"]["extractor"] == "tiny-projection"
    assert overall["CSIM"]["extractor"] == "dlib-resnet"
    with DagsterInstance.from_config(str(instance_dir(home))) as instance:
        records = instance.fetch_materializations(
            AssetRecordsFilter(AssetKey("bench_evaluation"), asset_partitions=["perfect"]), limit=1
        ).records
    metadata = records[0].asset_materialization.metadata  # type: ignore[union-attr]
    assert "gender/Female" in metadata["metrics"].value and "gap" in metadata["gaps"].value


def test_without_published_weights_fid_and_fvd_are_skipped_with_the_fetch_named(bench, tmp_path):
    """A model that made two videos, one of them unreadable: the default extractors run on
    what there is, and every clip left out is named with its reason."""
    home, perfect, _ = bench
    some = tmp_path / "some"
    some.mkdir()
    good, broken, *absent = sorted(path.name for path in perfect.iterdir())
    shutil.copy(perfect / good, some / good)
    (some / broken).write_text("not a video\n")
    printed, rows = evaluate(home, "defaults", some)
    assert "skipped frames metrics: inception-v3 weights are not in" in printed
    assert "run `talkvid models fetch i3d`" in printed
    assert {row["metric"] for row in rows} == {"Sync-C", "Sync-D", "AV offset", "CSIM"}
    assert {row["clips"] for row in rows if row["dimension"] == "all"} == {1}
    assert f"not measured {broken.removesuffix('.mp4')}: cannot read {broken}" in printed
    assert sum(f"no generated video {name}" in printed for name in absent) == len(absent) == 6
    missing = talkvid_in_process(
        home, "evaluate", "nobody", "--generated", str(tmp_path / "none"), check=False
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no folder of generated videos" in missing.stderr
