import numpy as np
import pytest
from scenedetect import ContentDetector, HistogramDetector, detect

from talkvid_assets.core.decode_pass import DecodeOptions, decode_pass
from talkvid_assets.core.scenes import Scene
from talkvid_assets.core.video import probe
from talkvid_assets_tests.media import AUDIO_RATE, SAMPLES, read_sample, write_video

CONTENT = DecodeOptions(scene_detector="content")


def test_megamind_yields_a_segment_per_scene_with_cuts_where_scenes_change(analyses):
    clips = analyses["Megamind.avi"].clips
    cuts = [clip.scene.scene_start_s for clip in clips[1:]]
    assert cuts == pytest.approx([4.1, 6.4, 8.3], abs=0.1)
    assert clips[-1].scene.end_frame == 270


@pytest.mark.parametrize(
    "name", ["Megamind.avi", "bikes.mp4", "carphone_distorted.mp4", "talk_demo.mp4"]
)
def test_streamed_detection_finds_the_cuts_scenemanager_finds(analyses, name):
    """Fed from our one decode, the reference's detector cuts where PySceneDetect's own
    SceneManager (with its own decode, BGR frames and downscale) does."""
    reference = detect(str(SAMPLES / name), HistogramDetector(threshold=0.085))
    ours = [clip.scene.start_frame for clip in analyses[name].clips[1:]]
    assert ours == [start.frame_num for start, _ in reference[1:]]


def test_content_detector_streams_megamind_cuts():
    video = probe(SAMPLES / "Megamind.avi")
    clips = decode_pass(SAMPLES / "Megamind.avi", video, {}, options=CONTENT).clips
    reference = detect(str(SAMPLES / "Megamind.avi"), ContentDetector(threshold=10.0))
    assert [clip.scene.start_frame for clip in clips[1:]] == [s.frame_num for s, _ in reference[1:]]


def test_content_detector_keeps_pyscenedetects_merge_flash_filter(tmp_path):
    """Shots of 40, 10, 10 and 40 frames: PySceneDetect's default flash filter (MERGE) merges
    the two cuts closer than 15 frames, so it cuts at frame 40 only (SUPPRESS: 40 and 60)."""
    shots = [(40, 1), (10, 2), (10, 3), (40, 4)]
    still = {seed: np.random.default_rng(seed).integers(0, 255, (144, 176, 3), np.uint8)
             for _, seed in shots}  # fmt: skip
    path = write_video(tmp_path / "shots.mp4", (still[s] for n, s in shots for _ in range(n)), 25.0)
    clips = decode_pass(path, probe(path), {}, options=CONTENT).clips
    reference = detect(str(path), ContentDetector(threshold=10.0))
    assert [clip.scene.start_frame for clip in clips] == [s.frame_num for s, _ in reference]
    assert [s.frame_num for s, _ in reference] == [0, 40]


def test_clip_bounds_and_recorded_duration_follow_the_reference():
    scene = Scene(index=0, start_frame=30, end_frame=210, fps=30.0)
    assert scene.clip_start_s == pytest.approx(1.3)
    assert scene.clip_end_s == pytest.approx(6.9)
    assert scene.duration_s == 5.6
    assert Scene(0, 0, 9, 30.0).duration_s == 0.0  # shorter than the trims: empty, not negative
    # the reference's float order: 20/60 + 0.4 - 0.1 vs 347/60 - 0.1 rounds to 5.0, not 5.1
    assert Scene(0, 20, 347, 60.0).duration_s == 5.0


def test_a_single_shot_is_one_scene_spanning_the_file(analyses):
    (clip,) = analyses["talk_demo.mp4"].clips
    assert (clip.scene.start_frame, clip.scene.end_frame) == (0, 480)
    assert clip.scene.duration_s == 15.6
    assert clip.frame_count == 468  # frames 9 .. 476: t in [0.3, 15.9)


def test_speech_ratio_comes_from_the_audio(analyses, backends, tmp_path):
    assert analyses["talk_demo.mp4"].clips[0].speech_ratio > 0.7
    assert analyses["bikes.mp4"].clips[0].speech_ratio is None  # no audio track at all
    frames, _, fps = read_sample("carphone_pristine.mp4")
    silent = write_video(
        tmp_path / "hush.mp4", frames + frames[::-1], fps, np.zeros(8 * AUDIO_RATE)
    )
    (clip,) = decode_pass(silent, probe(silent), backends).clips
    assert clip.speech_ratio == 0.0


def test_every_segment_gets_every_score_even_when_too_short(analyses):
    for clip in analyses["Megamind.avi"].clips:
        assert clip.scene.duration_s < 5.0
        assert clip.scores["quality"]["quality_score"] is not None
        assert clip.scores["motion"]["motion_ratio"] is not None
        assert clip.scores["head_detail"]["sampled_frames"] > 0


def _audio(path) -> np.ndarray:
    from talkvid_assets.core.video import decode

    chunks = []
    for _ in decode(path, probe(path).fps, chunks.append):
        pass
    return np.concatenate(chunks)


@pytest.mark.parametrize("name", ["talk_demo.mp4", "Megamind.avi"])
def test_speech_segments_are_silero_vads_own(name):
    """The torch-free sequence model, fed in pieces of any size, gives the probabilities of
    silero's one-window-per-call model bit for bit, and our segment rules give its timestamps."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    from talkvid_assets.core.voice import WINDOW, SpeechDetector

    audio = _audio(SAMPLES / name)
    detector = SpeechDetector()
    for piece in np.array_split(audio, 37):  # pieces that straddle windows and blocks
        detector.feed(piece)
    streaming = load_silero_vad(onnx=True)
    usable = len(audio) - len(audio) % WINDOW
    expected = [
        float(streaming(window, 16000))
        for window in torch.from_numpy(audio[:usable]).reshape(-1, 1, WINDOW)
    ]
    assert detector.probabilities().tolist() == pytest.approx(expected, abs=0)
    # Whole windows only: get_speech_timestamps would pad a last partial window and score it.
    reference = get_speech_timestamps(audio[:usable], load_silero_vad(onnx=True))
    whole = SpeechDetector()
    whole.feed(audio[:usable])
    ours = [(round(start * 16000), round(end * 16000)) for start, end in whole.segments()]
    assert ours == [(t["start"], t["end"]) for t in reference]


def test_speech_segment_rules_match_silero_on_random_probabilities():
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    from talkvid_assets.core.voice import speech_segments

    rng = np.random.default_rng(0)
    for trial in range(200):
        # runs of speech and silence of random lengths, with noise around the thresholds
        levels = rng.choice([0.05, 0.4, 0.45, 0.6, 0.95], size=rng.integers(1, 40))
        probs = np.repeat(levels, rng.integers(1, 30, size=len(levels)))
        probs = np.clip(probs + rng.normal(0, 0.08, len(probs)), 0, 1)
        samples = len(probs) * 512 + int(rng.integers(0, 512))
        expected = get_speech_timestamps_from_probs(
            probs.tolist(), sampling_rate=16000, audio_length_samples=samples
        )
        assert speech_segments(probs, samples) == [(t["start"], t["end"]) for t in expected], trial
