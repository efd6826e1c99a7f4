"""The sync stage: a tiny SyncNet trained here recovers known offsets; without the published
weights the stage names its fetch and the default curation judges as before.

What the trained network checks is our code (network layout and loading, MFCCs, windows, the
offset search, the decode pass's audio hand-over), not the published weights' numbers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from talkvid_assets.core.config import config_path, default_text, parse_config
from talkvid_assets.core.decode_pass import decode_pass
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.sync.network import load_syncnet, save_syncnet
from talkvid_assets.core.sync.scorer import MODEL_NAME, WEIGHT_FILE, SyncEmbedder
from talkvid_assets.core.video import probe
from talkvid_assets_tests.commands import talkvid_in_process
from talkvid_assets_tests.http_server import url
from talkvid_assets_tests.media import AUDIO_RATE as MEDIA_RATE
from talkvid_assets_tests.media import SAMPLES, write_video
from talkvid_assets_tests.synthetic_sync import (
    delayed,
    envelope,
    face_still,
    talking_clip,
    talking_face,
    tone,
    train_tiny_syncnet,
)

SHIFTS = (-9, -4, 0, 3, 8)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny SyncNet trained on synthetic clips, written as the syncnet model's weight file."""
    models = tmp_path_factory.mktemp("home") / "models"
    (models / MODEL_NAME).mkdir(parents=True)
    save_syncnet(train_tiny_syncnet(), models / MODEL_NAME / WEIGHT_FILE)
    return models


@pytest.mark.parametrize("shift", SHIFTS)
def test_tiny_syncnet_recovers_known_offsets(tiny_weights, shift):
    network = load_syncnet(tiny_weights / MODEL_NAME / WEIGHT_FILE)
    crops, audio = talking_clip(150, seed=100 + shift)  # clips it was not trained on
    embedder = SyncEmbedder(network)
    for crop in crops:
        embedder.add(crop)
    result = embedder.result(delayed(audio, shift))
    assert result is not None
    assert result.offset == -shift  # audio played later: the mouth leads, a negative offset
    assert result.confidence > 0.2


def test_sync_backend_runs_in_the_decode_pass_on_real_media(tiny_weights):
    """The real backend on a real talking head: faces found, crops embedded, the clip's audio
    handed over when decoded, and scores inside the stage's ranges."""
    backend = load_backend("sync", "syncnet", Runtime(tiny_weights, "cpu"))
    backend.ready()
    path = SAMPLES / "talk_demo.mp4"
    result = decode_pass(path, probe(path), {"sync": backend})
    scored = [clip.scores["sync"] for clip in result.clips if clip.scene.duration_s > 1.0]
    assert scored and all(s["sync_offset"] is not None for s in scored), scored
    for scores in scored:
        assert -15 <= scores["sync_offset"] <= 15
        assert scores["sync_confidence"] >= 0 and scores["sync_distance"] >= 0


def test_each_clip_of_the_decode_pass_gets_its_own_audio(tmp_path, face_syncnet_models):
    """A talking face whose audio lags by 4 frames, cut in two clips by a known cut: the sync
    stage, fed by the decode pass (faces detected, crops, the clip's audio handed over at its
    bounds), finds the lag in both clips with a tiny SyncNet trained on that face."""
    still, _, mouth = face_still()
    models = shutil.copytree(face_syncnet_models, tmp_path / "models")
    rng = np.random.default_rng(5)
    levels = envelope(150, rng)
    audio = delayed(tone(levels, rng, MEDIA_RATE), 4, MEDIA_RATE)
    path = write_video(tmp_path / "face.mp4", talking_face(levels, still, mouth), 25, audio)
    backend = load_backend("sync", "syncnet", Runtime(models, "cpu"))
    result = decode_pass(path, probe(path), {"sync": backend}, known_cuts=[60], speech=False)
    assert [clip.scene.start_frame for clip in result.clips] == [0, 60]
    assert [clip.scores["sync"]["sync_offset"] for clip in result.clips] == [-4, -4]


def test_without_weights_the_stage_names_its_fetch_in_one_line(tmp_path):
    with pytest.raises(BackendUnavailable) as raised:
        load_backend("sync", "syncnet", Runtime(tmp_path / "models")).ready()
    assert "talkvid models fetch syncnet" in str(raised.value)
    home = tmp_path / "home"
    home.mkdir()
    settings = yaml.safe_load(default_text())
    settings["backends"]["sync"] = "syncnet"
    config_path(home).write_text(yaml.safe_dump(settings))
    shown = talkvid_in_process(home, "config", check=False)
    assert shown.returncode == 1
    assert shown.stderr.count("\n") == 1, shown.stderr
    assert "run `talkvid models fetch syncnet`" in shown.stderr


def test_fetched_weights_make_the_stage_ready(tiny_weights, tmp_path, server):
    """`talkvid models fetch syncnet` from a mirror on 127.0.0.1 (the publisher's server is out
    of reach here): the file lands verified by its recorded sha256 and the stage can run."""
    server.files[WEIGHT_FILE] = (tiny_weights / MODEL_NAME / WEIGHT_FILE).read_bytes()
    home = tmp_path / "home"
    home.mkdir()
    settings = yaml.safe_load(default_text())
    settings["backends"]["sync"] = "syncnet"
    config_path(home).write_text(yaml.safe_dump(settings))
    mirror = url(server, "").rstrip("/")
    fetched = talkvid_in_process(home, "models", "fetch", MODEL_NAME, "--from", mirror)
    assert "unpinned, recorded sha256" in fetched.stdout
    shown = talkvid_in_process(home, "config")
    assert "sync=syncnet" in shown.stdout


def test_default_curation_leaves_sync_unjudged_until_a_threshold_is_set():
    clip = {
        "duration_s": 9.0,
        "speech_ratio": 0.9,
        "quality_score": 8.0,
        "quality_backend": "dover",
        "motion_ratio": 0.95,
        "motion_backend": "cotracker3",
        **dict.fromkeys(
            ("avg_movement", "min_movement", "avg_orientation", "min_orientation"), 100.0
        ),
        **dict.fromkeys(("avg_completeness", "min_completeness", "face_consistency"), 100.0),
        **dict.fromkeys(("avg_resolution", "min_resolution"), 100.0),
        **dict.fromkeys(("avg_rotation", "min_rotation"), 100.0),
        "head_detail_backend": "retinaface",
        "sync_offset": None,
        "sync_confidence": None,
        "sync_backend": "none",
    }
    default = parse_config({})
    assert default.backends["sync"] == "none"
    assert default.judging_profile().clip.reasons(clip) == []
    judged = parse_config({"thresholds": {"sync_offset": 2, "sync_confidence": 3.0}})
    assert judged.judging_profile().clip.reasons(clip) == [
        Failure("sync", FailureKind.MISSING, backend="none", detail="a sync threshold is set")
    ]
    scored = {**clip, "sync_offset": -4, "sync_confidence": 2.5, "sync_backend": "syncnet"}
    assert judged.judging_profile().clip.reasons(scored) == [
        Failure("sync_offset", value=-4, rule="|x| <=", threshold=2, backend="syncnet"),
        Failure("sync_confidence", value=2.5, rule=">=", threshold=3.0, backend="syncnet"),
    ]
