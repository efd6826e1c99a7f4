"""Decode runs: the decode pass of each video of a run, written to the store.

One video's pass (:func:`record_decode_pass`) reads its registered source, skips the scorers
whose scores the score cache holds, decodes once for the rest and writes the segments, the scores,
the decode report and a contact sheet. A run's videos (:func:`record_decode_passes`) share the
cores out on a thread pool, with OpenCV single-threaded while it runs (a process-wide setting,
put back after). How a video is decoded travels as one :class:`DecodeOptions`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import av.error
import cv2

from talkvid_assets.core.config import backend_tag, fingerprint
from talkvid_assets.core.decode_pass import (
    DecodeOptions,
    DecodePassResult,
    PassCancelled,
    decode_pass,
)
from talkvid_assets.core.durable import write_atomic
from talkvid_assets.core.failures import Failure, FailureKind
from talkvid_assets.core.pictures import contact_sheet_png
from talkvid_assets.core.reencoded import score_reencoded
from talkvid_assets.core.runtime import usable_cores
from talkvid_assets.core.scoring import ScorerBackend, Scores
from talkvid_assets.core.stages import STORE, Stage, get_stage
from talkvid_assets.core.store import Store
from talkvid_assets.core.subtitles import find_subtitles, has_speech_cue, parse_cues
from talkvid_assets.core.video import VideoProbe

# A decode that covers less of the container's duration than this is called truncated.
TRUNCATION_TOLERANCE = 0.95
Tables = dict[str, list[dict[str, Any]]]


def record_decode_pass(
    store: Store,
    video_id: str,
    backends: Mapping[str, ScorerBackend],
    options: DecodeOptions | None = None,
    *,
    segments: bool = True,
    reencoded: bool = False,
) -> Tables:
    """Segments and the scores of the given stages of a video, from at most one decode.

    ``backends`` holds the stages to score. With ``segments`` the scenes, speech and decode
    report are recomputed too; without, the recorded cuts are replayed, so only the chosen
    scorers run, on frames of the source or, with ``reencoded``, of each clip re-encoded as the
    reference cuts it (``core/reencoded.py``). Scores already computed by the same backend
    version on the same segments and input are taken from the score cache instead, and a decode
    happens only if something is left to compute. Writes the tables it computed (empty ones for
    a rejected video) and returns them.
    """
    options = options or DecodeOptions()
    video = store.rows("raw_videos", video_id)
    tables: Tables = {get_stage(name).table: [] for name in backends}
    if segments:
        tables["segments"] = []
    report: dict[str, Any] = {"video_id": video_id, "scene_detector": options.scene_detector}
    writing = time.thread_time()  # restarted after the decode: the writes' CPU is recorded
    if video and video[0]["status"] == "ok":
        # Decode whatever path the source has now: a re-ingested copy replaces a deleted one.
        source = store.rows("sources", video_id)
        if source:
            video[0]["source_path"] = source[0]["source_path"]
        known = None if segments else store.rows("segments", video_id)
        todo = dict(backends)
        for name, backend in backends.items():
            table = get_stage(name).table
            cached = (
                None
                if not known
                else store.cached_scores(table, video_id, _cache_key(backend, known, reencoded))
            )
            if cached is not None:
                tables[table] = cached
                del todo[name]
        result: DecodePassResult | bool | None = None
        if not segments and reencoded and todo and known:
            result = _reencoded_into(tables, video[0], todo, known)
        elif segments or (todo and known):
            result = _decode_into(tables, report, video[0], todo, known, options)
        writing = time.thread_time()
        if result:
            if isinstance(result, DecodePassResult) and segments:
                _write_contact_sheet(store, video_id, result)
            clips = tables["segments"] if segments else known
            for name in todo:
                table = get_stage(name).table
                key = _cache_key(backends[name], clips, reencoded and not segments)
                store.cache_scores(table, video_id, key, tables[table])
    for table, rows in tables.items():
        store.write(table, video_id, rows)
    if segments:
        report[f"{STORE}_cpu_s"] = time.thread_time() - writing
        store.write("decode_reports", video_id, [report])
    return tables


def record_decode_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    options: DecodeOptions | None = None,
    *,
    segments: bool = True,
    reencoded: bool = False,
    workers: int | None = None,
) -> Tables:
    """:func:`record_decode_pass` for each video, and their tables merged.

    ``workers`` videos decode at once, each on its own thread with FFmpeg and OpenCV
    single-threaded: the cores are shared out by video, which costs less CPU in all than
    splitting every frame's work across threads (`make bench`), and decoding, OpenCV and
    onnxruntime release the GIL. By default that happens when there are at least as many videos
    as usable cores; with fewer, they go one at a time on FFmpeg's and OpenCV's own threads,
    which fill the cores already. One video's error, or an interrupt, stops the other passes at
    their next frame (nothing half-done is written for them) and is raised.
    """
    options = options or DecodeOptions()
    if workers is None:
        cores = usable_cores()
        workers = cores if cores > 1 and len(video_ids) >= cores else 1
    workers = min(workers, len(video_ids))
    what = {"segments": segments, "reencoded": reencoded}
    if workers > 1:
        written = _parallel_passes(store, video_ids, backends, workers, options, what)
    else:
        written = [record_decode_pass(store, key, backends, options, **what) for key in video_ids]
    tables: Tables = {}
    for video_tables in written:
        for table, rows in video_tables.items():
            tables.setdefault(table, []).extend(rows)
    return tables


def _parallel_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    workers: int,
    options: DecodeOptions,
    what: Mapping[str, bool],
) -> list[Tables]:
    cancel = threading.Event()
    one_core = dataclasses.replace(options, decoder_threads=1, cancel=cancel)

    def one(key: str) -> Tables:
        try:
            return record_decode_pass(store, key, backends, one_core, **what)
        except BaseException:
            cancel.set()  # whichever video fails first, the others stop
            raise

    with single_threaded_opencv(), ThreadPoolExecutor(workers, "talkvid-decode") as pool:
        futures = [pool.submit(one, key) for key in video_ids]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # an interrupt while waiting
            cancel.set()
            raise
        if any(future.done() and future.exception() for future in futures):
            cancel.set()
            wait(futures)
            errors = [future.exception() for future in futures if future.exception()]
            raise next((e for e in errors if not isinstance(e, PassCancelled)), errors[0])
        return [future.result() for future in futures]


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_threads = 0


@contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """OpenCV on one thread while any parallel decode in this process runs (the setting is
    process-wide), then back to what it was."""
    global _opencv_users, _opencv_threads
    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_threads)


def _video_probe(row: Mapping[str, Any]) -> VideoProbe:
    return VideoProbe(**{field.name: row[field.name] for field in dataclasses.fields(VideoProbe)})


def _decode_into(
    tables: Tables,
    report: dict[str, Any],
    video: Mapping[str, Any],
    backends: Mapping[str, ScorerBackend],
    known: list[dict[str, Any]] | None,
    options: DecodeOptions,
) -> DecodePassResult | None:
    """Run the decode pass and fill ``tables`` (and the decode ``report``) from it; None
    when the decode failed outright (recorded in the report's failures)."""
    probed = _video_probe(video)
    cuts = None if known is None else [row["start_frame"] for row in known if row["start_frame"]]
    try:
        result = decode_pass(
            video["source_path"], probed, backends, cuts, speech=known is None, options=options
        )
    except (av.error.FFmpegError, OSError) as exc:
        report["failures"] = [Failure("decode", FailureKind.DECODE_FAILED, detail=str(exc)).row()]
        return None
    rows = _decode_pass_rows(video["video_id"], result, backends)
    for table in tables:
        tables[table] = rows.get(table, tables[table])
    if known is None:
        _mark_subtitle_speech(tables["segments"], video["source_path"])
        report.update(
            frames_decoded=result.report.frames,
            video_packet_errors=result.report.video_packet_errors,
            audio_packet_errors=result.report.audio_packet_errors,
            stopped_early=result.report.stopped_early,
            audio_s=result.audio_s,
            failures=[failure.row() for failure in _truncation(result, probed)],
            note=_decode_note(result, probed),
            **{f"{part}_cpu_s": seconds for part, seconds in result.cpu_s.items()},
        )
    return result


def _reencoded_into(
    tables: Tables,
    video: Mapping[str, Any],
    backends: Mapping[str, ScorerBackend],
    known: list[dict[str, Any]],
) -> bool:
    """Fill ``tables`` with the recorded clips' scores from their re-encoded files; False when
    the source could not be decoded (the tables stay empty, as after a failed decode pass)."""
    try:
        scored = score_reencoded(video["source_path"], _video_probe(video), known, backends)
    except (av.error.FFmpegError, OSError):
        return False
    for row, scores in zip(known, scored, strict=True):
        for name, backend in backends.items():
            stage = get_stage(name)
            values = scores[name] if scores else dict.fromkeys(c.name for c in stage.score_columns)
            tables[stage.table].append(
                _score_row(row["video_id"], row["clip_id"], stage, backend, values)
            )
    return True


def _score_row(
    video_id: str, clip_id: str, stage: Stage, backend: ScorerBackend, scores: Scores
) -> dict[str, Any]:
    """A row of ``stage``'s table: the clip's scores and the backend build behind them."""
    return {
        "clip_id": clip_id,
        "video_id": video_id,
        **scores,
        stage.backend_column: backend.name,
        "backend_version": backend.version,
    }


def _write_contact_sheet(store: Store, video_id: str, result: DecodePassResult) -> None:
    """The first frame of each clip (at most 24), for people browsing a curation."""
    shown = [clip for clip in result.clips if clip.thumbnail is not None][:24]
    path = store.preview_path(video_id)
    if not shown:
        path.unlink(missing_ok=True)
        return
    labels = [f"#{clip.scene.index} {clip.scene.clip_start_s:.1f}s" for clip in shown]
    write_atomic(path, contact_sheet_png([clip.thumbnail for clip in shown], labels))


def _cache_key(
    backend: ScorerBackend, segments: list[dict[str, Any]], reencoded: bool = False
) -> str:
    """Scores are reusable for the same backend build on the same clips and input."""
    bounds = [(row["clip_id"], row["start_frame"], row["end_frame"]) for row in segments]
    return fingerprint([backend_tag(backend), bounds, *(["reencoded"] if reencoded else [])])


def _mark_subtitle_speech(segments: list[dict[str, Any]], source_path: str) -> None:
    """Apply the reference's subtitle rule to each segment when the source has subtitles."""
    subtitles = find_subtitles(source_path)
    cues = parse_cues(subtitles) if subtitles else None
    for segment in segments:
        segment["subtitle_speech"] = (
            None
            if cues is None
            else has_speech_cue(cues, segment["start_time"], segment["end_time"])
        )


def _truncation(result: DecodePassResult, probed: VideoProbe) -> list[Failure]:
    """The failure of a decode that stopped short of the container's duration (the clips cover
    only the decodable part), or none."""
    report = result.report
    decoded_s = report.end_number / probed.fps
    if not report.stopped_early and decoded_s >= probed.duration_s * TRUNCATION_TOLERANCE:
        return []
    detail = (
        f"decoded {decoded_s:.1f} of {probed.duration_s:.1f} s ({report.frames} frames); "
        "clips cover the decodable part"
    )
    truncated = FailureKind.TRUNCATED
    return [
        Failure("decode", truncated, value=decoded_s, threshold=probed.duration_s, detail=detail)
    ]


def _decode_note(result: DecodePassResult, probed: VideoProbe) -> str | None:
    """What else a user should know about a decode that did not go cleanly, or None."""
    report = result.report
    notes = []
    if probed.video_streams > 1:
        notes.append(
            f"{probed.video_streams} video streams: the first ({probed.video_codec} "
            f"{probed.width}x{probed.height}) was curated, the others ignored"
        )
    if report.video_packet_errors:
        notes.append(f"{report.video_packet_errors} undecodable video packet(s) skipped")
    if report.audio_unusable:
        notes.append(
            f"speech not measured: {report.audio_packet_errors} of {report.audio_packets} "
            "audio packets undecodable"
        )
    elif report.audio_packet_errors:
        notes.append(f"{report.audio_packet_errors} undecodable audio packet(s) skipped")
    return "; ".join(notes) or None


def _decode_pass_rows(
    video_id: str, result: DecodePassResult, backends: Mapping[str, ScorerBackend]
) -> Tables:
    tables: Tables = {"segments": []}
    tables.update({get_stage(name).table: [] for name in backends})
    for clip in result.clips:
        scene = clip.scene
        keys = {"clip_id": f"{video_id}-{scene.index:04d}", "video_id": video_id}
        tables["segments"].append(
            {
                **keys,
                "scene_index": scene.index,
                "start_frame": scene.start_frame,
                "end_frame": scene.end_frame,
                "scene_start_s": scene.scene_start_s,
                "scene_end_s": scene.scene_end_s,
                "start_time": scene.clip_start_s,
                "end_time": scene.clip_end_s,
                "duration_s": scene.duration_s,
                "frame_count": clip.frame_count,
                "speech_ratio": clip.speech_ratio,
            }
        )
        for name, scores in clip.scores.items():
            stage = get_stage(name)
            tables[stage.table].append(
                _score_row(video_id, keys["clip_id"], stage, backends[name], scores)
            )
    return tables
