"""Export formats read back exactly what was written; clip files cut from real samples hold the
source's frames and sound, in sync, by stream copy where that is exact."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import yaml

from talkvid_assets.core.clip_files import AUDIO_SUFFIX, ClipCut, cut_clip
from talkvid_assets.core.export import talkvid_record
from talkvid_assets.core.export_formats import (
    FORMATS,
    CardInfo,
    read_export,
    write_export,
    write_webdataset,
)
from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.video import decode, probe
from talkvid_assets_tests.media import SAMPLES, read_sample, write_video

TALK = SAMPLES / "talk_demo.mp4"  # 16 s, 30 fps, AAC audio, keyframes at 0 and 8.333 s
SILENT = SAMPLES / "carphone_pristine.mp4"  # 4 s, no audio


def _row(index: int, **changes: Any) -> dict[str, Any]:
    """A row as EXPORT_SQL returns it, for clip ``index`` of one video."""
    row = {
        "clip_id": f"0123456789abcdef-{index:04d}",
        "source_path": "/data/vidéos/話す人 \u2013 ñandú.mp4",
        "height": 1080,
        "width": 1920,
        "fps": 29.97,
        "start_time": 1.2345 + index,
        "start_frame": 28 + index,
        "end_time": 9.8765 + index,
        "end_frame": 296 + index,
        "duration_s": 8.642,
        "quality_score": 8.456,
        "motion_ratio": 0.9312,
        **{key: 50.0 + 0.125 * number for number, key in enumerate(HEAD_DETAIL_KEYS)},
        **{stage.backend_column: stage.default_backend for stage in STAGES},
        "profile": "paper",
        "config_digest": "abc123def456",
    }
    return {**row, **changes}


def _records() -> list[dict[str, Any]]:
    """Three records: annotated (unicode labels and caption), unscored (nulls everywhere a
    record allows them) and plain."""
    annotated = talkvid_record(
        _row(
            1,
            person_id="p-0042",
            speaker_id="speaker-7",
            language="日本語",
            age_group="31-45",
            gender="Female",
            description='Une femme parle — "calmement", 話しています 🙂',
        )
    )
    unscored = talkvid_record(
        _row(2, quality_score=None, motion_ratio=None, **dict.fromkeys(HEAD_DETAIL_KEYS))
    )
    unscored["info"]["Video Link"] = None
    return [annotated, unscored, talkvid_record(_row(3))]


@pytest.mark.parametrize("records", [_records(), []], ids=["records", "empty"])
@pytest.mark.parametrize("format", FORMATS)
def test_every_format_reads_back_what_was_written(
    tmp_path: Path, format: str, records: list[dict[str, Any]]
) -> None:
    out = tmp_path / "export"
    write_export(format, records, out, "all")
    assert read_export(format, out, "all") == records


def test_unknown_fields_and_unsafe_keys_are_refused(tmp_path: Path) -> None:
    extra = _records()[0]
    extra["head_detail"]["scores"]["face_consistency"] = 90.0
    with pytest.raises(ValueError, match="face_consistency"):
        write_export("parquet", [extra], tmp_path / "x.parquet", "all")
    for unsafe in ("../etc/passwd", "clip.0001", ""):
        record = {**_records()[2], "id": unsafe}
        with pytest.raises(ValueError, match="not a safe WebDataset key"):
            write_export("webdataset", [record], tmp_path / "wds", "all")
    with pytest.raises(ValueError, match="duplicate"):
        write_export("webdataset", [_records()[2]] * 2, tmp_path / "wds", "all")


def test_webdataset_shards_carry_clip_files_and_replace_old_shards(tmp_path: Path) -> None:
    records = _records()
    clip = tmp_path / "clips" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"not really a video")
    clip.with_suffix(AUDIO_SUFFIX).write_bytes(b"sound")
    folder = tmp_path / "wds" / "train"
    shards = write_webdataset(records, folder, {records[1]["id"]: clip}, max_records=2)
    assert [shard.name for shard in shards] == ["records-000000.tar", "records-000001.tar"]
    with tarfile.open(shards[0]) as archive:
        names = archive.getnames()
        key = records[1]["id"]
        assert names == [f"{records[0]['id']}.json", f"{key}.json", f"{key}.mp4", f"{key}.m4a"]
        assert archive.extractfile(f"{key}.mp4").read() == clip.read_bytes()
        assert json.loads(archive.extractfile(f"{key}.json").read()) == records[1]
    write_webdataset(records[:1], folder)
    assert sorted(path.name for path in folder.iterdir()) == ["records-000000.tar"]
    assert read_export("webdataset", folder.parent, "train") == records[:1]
    assert [path.name for path in folder.parent.iterdir()] == ["train"]  # no temporary left


def test_hf_folder_loads_with_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip(
        "datasets", reason="Hugging Face `datasets` is not installed (a dev dependency)"
    )
    records = _records()
    out = tmp_path / "hf"
    card = CardInfo("paper", "abc123def456", {"thresholds": {"quality_score": 5.0}})
    write_export("hf", records, out, "all", card_info=card)
    write_export("hf", records[:1], out, "bench", card_info=card)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded) == ["bench", "full"]
    assert loaded["full"].to_list() == records
    assert loaded["bench"].to_list() == records[:1]
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "other"
    assert [entry["split"] for entry in front["configs"][0]["data_files"]] == ["bench", "full"]
    for expected in ("`abc123def456`", "`paper`", "quality_score: 5.0", "source video's licence"):
        assert expected in text


def _first_image(path: Path, at_s: float = 0.0) -> np.ndarray:
    """The upright RGB frame shown at ``at_s`` (the first at or after it)."""
    return next(f for f in decode(path, probe(path).fps) if f.time >= at_s - 1e-6).image()


def _played(cut: ClipCut) -> tuple[float, float | None]:
    """Seconds of video (frames / fps) and of audio (decoded samples) in the clip's files."""
    video_s, audio_s = 0.0, None
    for path in cut.files:
        with av.open(str(path)) as container:
            if container.streams.video:
                stream = container.streams.video[0]
                frames = sum(1 for _ in container.decode(stream))
                video_s = frames / float(stream.average_rate)
                container.seek(0)
            if container.streams.audio:
                stream = container.streams.audio[0]
                samples = sum(frame.samples for frame in container.decode(stream))
                audio_s = samples / stream.rate
    return video_s, audio_s


@pytest.mark.parametrize("layout", ["mp4", "split"])
def test_cut_off_a_keyframe_encodes_the_source_frames_with_their_sound(
    tmp_path: Path, layout: str
) -> None:
    cut = cut_clip(TALK, 2.0, 7.0, tmp_path / "clip.mp4", layout)
    assert (cut.mode, cut.frames) == ("encode", 150)
    expected = [tmp_path / "clip.mp4"] + ([tmp_path / "clip.m4a"] if layout == "split" else [])
    assert list(cut.files) == expected
    assert sorted(tmp_path.iterdir()) == sorted(expected)  # no temporary file left
    with av.open(str(cut.files[0])) as container:
        assert len(container.streams.audio) == (1 if layout == "mp4" else 0)
    video_s, audio_s = _played(cut)
    frame_s = 1 / 30
    assert video_s == pytest.approx(5.0, abs=frame_s)
    assert audio_s == pytest.approx(video_s, abs=frame_s)
    assert (cut.video_s, cut.audio_s) == pytest.approx((video_s, video_s), abs=frame_s)
    difference = np.abs(_first_image(cut.files[0]).astype(int) - _first_image(TALK, 2.0))
    assert difference.mean() < 3


def test_cut_on_a_keyframe_copies_the_stream(tmp_path: Path) -> None:
    with av.open(str(TALK)) as container:
        stream = container.streams.video[0]
        keys = [p.pts * stream.time_base for p in container.demux(stream) if p.is_keyframe]
    start = float(keys[1])
    # Through the end of the source, no frame after the clip is needed to decode one inside it.
    cut = cut_clip(TALK, start, 60.0, tmp_path / "clip.mp4", "split")
    assert cut.mode == "copy"
    assert cut.frames == round((16.0 - start) * 30)
    video_s, audio_s = _played(cut)
    assert audio_s == pytest.approx(video_s, abs=1 / 30)
    assert np.array_equal(_first_image(cut.files[0]), _first_image(TALK, start))


@pytest.mark.parametrize("layout", ["mp4", "split"])
def test_a_source_without_audio_gives_a_clip_without_audio(tmp_path: Path, layout: str) -> None:
    cut = cut_clip(SILENT, 1.0, 3.0, tmp_path / "clip.mp4", layout)
    assert cut.audio_s is None
    assert cut.files == (tmp_path / "clip.mp4",)
    assert not probe(cut.files[0]).has_audio
    assert cut.frames == 60
    with pytest.raises(ValueError, match="no frame"):
        cut_clip(SILENT, 10.0, 12.0, tmp_path / "late.mp4", layout)
    assert sorted(tmp_path.iterdir()) == [tmp_path / "clip.mp4"]


def test_rotated_sources_keep_their_display_matrix(tmp_path: Path) -> None:
    frames, _, fps = read_sample(SILENT.name)
    source = write_video(tmp_path / "portrait.mp4", frames, fps, display_rotation=90)
    encoded = cut_clip(source, 1.0, 3.0, tmp_path / "encoded.mp4")
    copied = cut_clip(source, 0.0, 10.0, tmp_path / "copied.mp4")
    assert (encoded.mode, copied.mode) == ("encode", "copy")
    for cut, start in ((encoded, 1.0), (copied, 0.0)):
        clip = probe(cut.files[0])
        assert (clip.rotation, clip.width, clip.height) == (90, 144, 176)
        difference = np.abs(_first_image(cut.files[0]).astype(int) - _first_image(source, start))
        assert difference.mean() < 3
