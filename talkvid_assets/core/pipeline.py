"""Each curation stage of one source video as a plain function over the store.

These are what the Dagster assets call (and what a library user can call without Dagster). Each
reads its inputs from the store and replaces its own rows for that video, so any stage can be
re-run alone and stays idempotent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av.error
import cv2

from talkvid_assets.core.compaction import file_lock
from talkvid_assets.core.config import CurationConfig, backend_tag, fingerprint
from talkvid_assets.core.decode_pass import DecodePassResult, PassCancelled, decode_pass
from talkvid_assets.core.durable import write_atomic
from talkvid_assets.core.export import EXPORT_SQL, talkvid_record
from talkvid_assets.core.ingest import video_key
from talkvid_assets.core.partition_keys import (
    ALIAS_DIR,
    content_key,
    known_key,
    partition_key,
    remember_key,
)
from talkvid_assets.core.pictures import contact_sheet_png
from talkvid_assets.core.reencoded import score_reencoded
from talkvid_assets.core.runtime import Runtime, usable_cores
from talkvid_assets.core.scoring import ScorerBackend, Scores
from talkvid_assets.core.stages import STORE, Stage, get_stage
from talkvid_assets.core.store import Store
from talkvid_assets.core.subtitles import find_subtitles, has_speech_cue, parse_cues
from talkvid_assets.core.thresholds import Profile
from talkvid_assets.core.video import ProbeError, VideoProbe, probe

# A decode that covers less of the container's duration than this is called truncated.
TRUNCATION_TOLERANCE = 0.95


def register_source(store: Store, path: str | Path, name: str | None = None) -> tuple[str, bool]:
    """Record ``path`` under its partition key (its name, or ``name`` where the file's own is
    not one a person gave it, and its content key); returns (key, newly registered).

    Re-ingesting the same content, under any name, is a no-op, unless the first registered path
    has since disappeared, in which case the source moves to the new path (same key).
    """
    path = Path(path).resolve()
    content = video_key(path)
    # One registration of a content at a time (threads of a URL ingest, the inbox sensor and a
    # CLI ingest alike): the first name given to the content is the one every later name finds.
    with file_lock(store.home / ALIAS_DIR / f".{content}.lock"):
        key = known_key(store, content) or partition_key(name or path, content)
        known = store.rows("sources", key)
        if known and Path(known[0]["source_path"]).exists():
            return key, False
        _record_source(store, key, path)
        remember_key(store, content, key)
    return key, not known


def _record_source(store: Store, key: str, path: Path) -> None:
    stat = path.stat()
    row = {
        "video_id": key,
        "source_path": str(path),
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.write("sources", key, [row])


def source_problem(store: Store, video_id: str) -> str | None:
    """Why the registered source is no longer the content keyed ``video_id``, or None.

    Size and modification time are compared first (cheap); only when they changed is the file
    hashed again. A file touched without a change is re-recorded; a file overwritten with other
    content is refused, so scores are never filed under another video's key. The finding is
    kept in the source's row (``missing_reason``: the ``videos`` view then says ``missing``)
    until a later look finds the content back, or a copy is ingested.
    """
    sources = store.rows("sources", video_id)
    if not sources:
        return NOT_INGESTED
    return _check_source(store, sources[0])


NOT_INGESTED = (
    "no source registered for this partition: partitions come from `talkvid ingest` or the "
    "inbox (remove this one with `talkvid remove KEY` or the remove_videos job)"
)


def _check_source(store: Store, source: Mapping[str, Any]) -> str | None:
    video_id, path = source["video_id"], Path(source["source_path"])
    try:
        stat = path.stat()
    except OSError:
        problem = f"source is gone: {path}"
    else:
        if (stat.st_size, stat.st_mtime_ns) != (source["size_bytes"], source.get("mtime_ns")):
            current = video_key(path)
            if current == content_key(video_id):
                _record_source(store, video_id, path)
                return None
            problem = (
                f"source changed since ingest: {path} now has content key {current}; "
                "ingest it again"
            )
        else:
            problem = None
    if problem != source.get("missing_reason"):
        store.write("sources", video_id, [{**source, "missing_reason": problem}])
    return problem


def missing_sources(store: Store, video_ids: Iterable[str]) -> dict[str, str]:
    """The videos among ``video_ids`` whose source is gone or no longer the content keyed,
    with the reason: one query, then a stat per source (a hash only where it changed)."""
    rows = store.query(
        "SELECT * FROM sources WHERE video_id IN (SELECT unnest(:video_ids))",
        {"video_ids": sorted(set(video_ids))},
    )
    problems = {row["video_id"]: _check_source(store, row) for row in rows}
    return {video_id: problem for video_id, problem in problems.items() if problem}


def prefilter_video(store: Store, video_id: str, profile: Profile) -> dict[str, Any]:
    """Probe the source and apply the profile's prefilter; writes the ``raw_videos`` row."""
    row: dict[str, Any] = {"video_id": video_id, "profile": profile.tag, "status": "rejected"}
    sources = store.rows("sources", video_id)
    if not sources:
        row["reject_reason"] = NOT_INGESTED
    else:
        row["source_path"] = sources[0]["source_path"]
        try:
            probed = _probe_keyed_source(store, video_id, row["source_path"])
        except ProbeError as exc:
            row["reject_reason"] = str(exc)
        else:
            row.update(vars(probed))
            reasons = profile.prefilter.reasons(probed)
            row["status"] = "rejected" if reasons else "ok"
            row["reject_reason"] = "; ".join(reasons) or None
    store.write("raw_videos", video_id, [row])
    return row


def _probe_keyed_source(store: Store, video_id: str, path: str) -> VideoProbe:
    """Probe the source, refusing one whose content is no longer the one keyed ``video_id``."""
    problem = source_problem(store, video_id)
    if problem:
        raise ProbeError(problem)
    return probe(path)


def _video_probe(row: Mapping[str, Any]) -> VideoProbe:
    return VideoProbe(**{field.name: row[field.name] for field in dataclasses.fields(VideoProbe)})


def record_decode_pass(
    store: Store,
    video_id: str,
    backends: Mapping[str, ScorerBackend],
    scene_detector: str = "histogram",
    segments: bool = True,
    runtime: Runtime | None = None,
    integer_downscale: bool = False,
    decoder_threads: int = 0,
    cancel: threading.Event | None = None,
    reencoded: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Segments and the scores of the given stages of a video, from at most one decode.

    ``backends`` holds the stages to score. With ``segments`` the scenes, speech and decode
    report are recomputed too; without, the recorded cuts are replayed, so only the chosen
    scorers run, on frames of the source or, with ``reencoded``, of each clip re-encoded as the
    reference cuts it (``core/reencoded.py``). Scores already computed by the same backend
    version on the same segments and input are taken from the score cache instead, and a decode
    happens only if something is left to compute. Writes the tables it computed (empty ones for
    a rejected video) and returns them.
    """
    video = store.rows("raw_videos", video_id)
    tables: dict[str, list[dict[str, Any]]] = {get_stage(name).table: [] for name in backends}
    if segments:
        tables["segments"] = []
    report: dict[str, Any] = {"video_id": video_id, "scene_detector": scene_detector}
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
            result = _decode_into(
                tables,
                report,
                video[0],
                todo,
                scene_detector,
                known,
                runtime,
                integer_downscale,
                decoder_threads,
                cancel,
            )
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
    workers: int | None = None,
    **options: Any,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`record_decode_pass` for each video, and their tables merged.

    ``workers`` videos decode at once, each on its own thread with FFmpeg and OpenCV
    single-threaded: the cores are shared out by video, which costs less CPU in all than
    splitting every frame's work across threads (`make bench`), and decoding, OpenCV and
    onnxruntime release the GIL. By default that happens when there are at least as many videos
    as usable cores; with fewer, they go one at a time on FFmpeg's and OpenCV's own threads,
    which fill the cores already. One video's error, or an interrupt, stops the other passes at
    their next frame (nothing half-done is written for them) and is raised.
    """
    if workers is None:
        cores = usable_cores()
        workers = cores if cores > 1 and len(video_ids) >= cores else 1
    workers = min(workers, len(video_ids))
    if workers > 1:
        written = _parallel_passes(store, video_ids, backends, workers, options)
    else:
        written = [record_decode_pass(store, key, backends, **options) for key in video_ids]
    tables: dict[str, list[dict[str, Any]]] = {}
    for video_tables in written:
        for table, rows in video_tables.items():
            tables.setdefault(table, []).extend(rows)
    return tables


def _parallel_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    workers: int,
    options: Mapping[str, Any],
) -> list[dict[str, list[dict[str, Any]]]]:
    cancel = threading.Event()

    def one(key: str) -> dict[str, list[dict[str, Any]]]:
        try:
            return record_decode_pass(
                store, key, backends, decoder_threads=1, cancel=cancel, **options
            )
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


def _decode_into(
    tables: dict[str, list[dict[str, Any]]],
    report: dict[str, Any],
    video: Mapping[str, Any],
    backends: Mapping[str, ScorerBackend],
    scene_detector: str,
    known: list[dict[str, Any]] | None,
    runtime: Runtime | None = None,
    integer_downscale: bool = False,
    decoder_threads: int = 0,
    cancel: threading.Event | None = None,
) -> DecodePassResult | None:
    """Run the decode pass and fill ``tables`` (and the decode ``report``) from it; None
    when the decode failed outright (recorded in the report)."""
    probed = _video_probe(video)
    cuts = None if known is None else [row["start_frame"] for row in known if row["start_frame"]]
    try:
        result = decode_pass(
            video["source_path"],
            probed,
            backends,
            scene_detector,
            cuts,
            speech=known is None,
            runtime=runtime,
            integer_downscale=integer_downscale,
            decoder_threads=decoder_threads,
            cancel=cancel,
        )
    except (av.error.FFmpegError, OSError) as exc:
        report["error"] = f"decode failed: {exc}"
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
            note=_decode_note(result, probed),
            **{f"{part}_cpu_s": seconds for part, seconds in result.cpu_s.items()},
        )
    return result


def _reencoded_into(
    tables: dict[str, list[dict[str, Any]]],
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


def _decode_note(result: DecodePassResult, probed: VideoProbe) -> str | None:
    """What a user should know about a decode that did not go cleanly, or None."""
    report = result.report
    notes = []
    decoded_s = report.end_number / probed.fps
    if report.stopped_early or decoded_s < probed.duration_s * TRUNCATION_TOLERANCE:
        notes.append(
            f"truncated: decoded {decoded_s:.1f} of {probed.duration_s:.1f} s "
            f"({report.frames} frames); clips cover the decodable part"
        )
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
) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {"segments": []}
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


CLIP_VERDICT_SQL = (
    "SELECT * FROM clip_scores WHERE video_id IN (SELECT unnest(:video_ids)) ORDER BY clip_id"
)


def judge_clips(
    store: Store, video_ids: Sequence[str], config: CurationConfig
) -> list[dict[str, Any]]:
    """Apply every clip threshold at once and record the full list of failed checks, with the
    configuration that judged them; one query for all ``video_ids``, one file per video."""
    profile = config.judging_profile()
    verdicts: dict[str, list[dict[str, Any]]] = {video_id: [] for video_id in video_ids}
    for clip in store.query(CLIP_VERDICT_SQL, {"video_ids": list(video_ids)}):
        reasons = profile.clip.reasons(clip)
        verdicts[clip["video_id"]].append(
            {
                "clip_id": clip["clip_id"],
                "video_id": clip["video_id"],
                "passed": not reasons,
                "reject_reasons": reasons,
                "profile": profile.tag,
                "config_digest": config.digest,
            }
        )
    for video_id, rows in verdicts.items():
        store.write("filtered_clips", video_id, rows)
    return [row for rows in verdicts.values() for row in rows]


def export_records(
    store: Store, video_ids: Iterable[str] | None = None, speakers: bool = True
) -> list[dict[str, Any]]:
    """TalkVid-format records of passing clips, for some videos or all of them.

    Speaker ids are corpus-wide (assigned after every video's annotations), so a per-video
    export, written before them, leaves them out (``speakers=False``): its Person ID is the
    manifest's only. The merged dataset carries both. A video whose source vanished is left
    out (its link would be dead; ``videos`` says why), which costs a stat per video.
    """
    sql, params = EXPORT_SQL, {"speakers": speakers}
    if video_ids is not None:
        sql += " AND c.video_id IN (SELECT unnest(:video_ids))"
        params["video_ids"] = list(video_ids)
    rows = store.query(sql + " ORDER BY c.video_id, c.start_time", params)
    missing = missing_sources(store, {row["video_id"] for row in rows})
    return [talkvid_record(row) for row in rows if row["video_id"] not in missing]
