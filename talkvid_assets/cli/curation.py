"""`talkvid ingest`, `curate`, `demo`, `remove` and `reap`: sources into the home and through
the Dagster graph. Every data write is core's or a Dagster run's; these commands choose, call
and report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from talkvid_assets.cli.errors import UserError
from talkvid_assets.core.thresholds import DEMO, PAPER

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from talkvid_assets.core.manifest import ManifestRow
    from talkvid_assets.core.store import Store
    from talkvid_assets.launch import RunOutcome

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"


def open_store(home: Path) -> Store:
    """The home's store, its public views published for SQL readers."""
    from talkvid_assets.core.store import Store

    store = Store(home)
    store.publish()
    return store


def ingest(home: Path, args: argparse.Namespace) -> int:
    """`talkvid ingest`: files and folders, a manifest, a URL list; 1 when any was unusable."""
    if not args.paths and not args.manifest and not args.urls:
        raise UserError("give paths, --manifest or --urls")
    ok = True
    if args.paths or args.manifest:
        ok = register(home, args.paths, args.manifest)[1]
    if args.urls:
        ok = ingest_urls(home, args.urls) and ok
    return 0 if ok else 1


def register(home: Path, paths: Sequence[str], manifest: Path | None) -> tuple[list[str], bool]:
    """Register every readable source; returns (keys, whether every path was usable).

    Each good file is registered in the store and as a Dagster partition together, so a bad
    path among good ones never leaves a source the graph does not know. A labelled manifest
    (CSV or JSON Lines) is validated whole before anything is registered, and its labels are
    recorded with each source (core.labelling.record_labels).
    """
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.labelling import record_labels
    from talkvid_assets.core.manifest import is_labelled, read_manifest
    from talkvid_assets.launch import home_instance, register_partitions

    store = open_store(home)
    labelled: list[ManifestRow] = []
    sources = list(paths)
    if manifest and is_labelled(manifest):
        labelled = read_manifest(manifest, load_config(home).source_folders(home))
        sources += [str(row.path) for row in labelled]
    elif manifest:
        sources += _read_path_list(manifest)
    labels = {str(row.path): row for row in labelled}
    keys: list[str] = []
    relabelled: list[str] = []
    ok = True
    for source in sources:
        registered = _register(store, source, keys)
        ok = ok and registered is not None
        changed = registered and source in labels
        if changed and record_labels(store, registered, manifest, labels[source]):
            relabelled.append(registered)
    instance = home_instance(home)
    register_partitions(instance, keys)
    if relabelled:
        ok = _relabel(instance, home, relabelled) and ok
    if keys:  # stdout stays one KEY<TAB>PATH line per file
        print(_profile_note(home), file=sys.stderr)
    return keys, ok


def _read_path_list(path: Path) -> list[str]:
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


def _profile_note(home: Path) -> str:
    """Which profile will judge the sources: a user first meets it here, and a new home's
    default (`paper`) rejects anything under 1080p or without audio."""
    from talkvid_assets.core.config import config_path, load_config

    if config_path(home).exists():
        profile = load_config(home).profile
        return f"profile {profile!r} will judge them ({config_path(home)})"
    return (
        f"profile {PAPER.name!r} (a new home's default) will judge them: {PAPER.description}, "
        f"so 720p and silent files are rejected; `talkvid curate --profile {DEMO.name}` "
        "admits them"
    )


def ingest_urls(home: Path, path: Path) -> bool:
    """Keep the URL list in the home and run ``url_sources`` (downloads, then the ordinary
    ingest); one line per URL: its video key, or why it failed. True when none failed."""
    from talkvid_assets.core.url_sources import INGESTED, keep_list, read_url_list
    from talkvid_assets.launch import home_instance, ingest_url_lists

    entries = read_url_list(path)  # the whole list is checked before anything downloads
    store = open_store(home)
    keep_list(home, path)
    outcome = ingest_url_lists(home_instance(home), home)
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


def _relabel(instance: DagsterInstance, home: Path, keys: Sequence[str]) -> bool:
    """Bring curated videos' annotations, exports and TalkVid-Bench up to their new labels;
    False when a run failed (each is named)."""
    from talkvid_assets.defs.names import ANNOTATIONS
    from talkvid_assets.launch import relabel

    outcomes = relabel(instance, home, keys)
    failed = [outcome for outcome in outcomes if not outcome.success]
    for outcome in failed:
        print(f"relabelling failed (run {outcome.run_id[:8]}): {outcome.error}", file=sys.stderr)
    rerun = {key for outcome in outcomes if outcome.assets == (ANNOTATIONS,)
             for key in outcome.partitions}  # fmt: skip
    if rerun and not failed:
        print(
            f"relabelled {len(rerun)} curated video(s): annotations, exports and bench updated",
            file=sys.stderr,
        )
    return not failed


def check_profile(home: Path, profile: str | None) -> str:
    """The home's profile; a new home is created with ``profile``, and an existing one with
    another profile is refused rather than silently re-judged."""
    from talkvid_assets.core.config import config_path, ensure_config, load_config

    ensure_config(home, profile or PAPER.name)
    config = load_config(home)
    if profile and profile != config.profile:
        raise UserError(
            f"this home is curated with profile {config.profile!r} ({config_path(home)}); "
            f"edit its `profile:` to use {profile!r}, or use another --home"
        )
    return config.profile


def curate(home: Path, args: argparse.Namespace) -> int:
    """`talkvid curate`: 1 when a run failed."""
    return 0 if curate_videos(home, args.partition, args.profile, args.stale) else 1


def curate_videos(home: Path, partitions: Sequence[str], profile: str | None, stale: bool) -> bool:
    """Bring the named videos (by default those not curated yet; with ``stale`` every video)
    up to date, printing a line per video as its run ends; False when a run failed."""
    from dagster import AssetKey

    from talkvid_assets.cli.signals import SignalLatch
    from talkvid_assets.defs.names import TALKVID_EXPORT, VIDEOS
    from talkvid_assets.launch import PoolBusy, curate, home_instance, uncurated

    with SignalLatch() as stop:
        profile = check_profile(home, profile)
        instance = home_instance(home)
        store = open_store(home)
        known = instance.get_dynamic_partitions(VIDEOS)
        unknown = [key for key in partitions if key not in known]
        if unknown:
            raise UserError(f"not ingested: {', '.join(unknown)} (see `talkvid ingest`)")
        if not known:
            print("nothing ingested yet: run `talkvid ingest PATH...` first")
            return True
        if partitions or stale:
            keys = list(partitions) or known
        else:
            done = instance.get_materialized_partitions(AssetKey(TALKVID_EXPORT))
            done -= uncurated(store, known)
            keys = [key for key in known if key not in done]
        print(f"curating with profile {profile!r} into {home}", flush=True)
        done_count = 0

        def progress(outcome: RunOutcome) -> None:
            nonlocal done_count
            for line in progress_lines(store, outcome).values():
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


def progress_lines(store: Store, outcome: RunOutcome) -> dict[str, str]:
    """One progress line per video of a run. The counts are the run's own verdicts where it
    judged the video, not a re-read of the tables that a concurrent curate may be rewriting.
    Two queries per run, not per video."""
    from talkvid_assets.cli.rendering import progress_line
    from talkvid_assets.core.summary import ClipCounts, clip_counts, video_states

    missing = [key for key in outcome.partitions if key not in outcome.verdicts]
    counts = clip_counts(store, missing) if missing else {}
    counts |= {key: ClipCounts(**verdict) for key, verdict in outcome.verdicts.items()}
    states = video_states(store, outcome.partitions)
    return {
        key: progress_line(outcome, key, states.get(key), counts.get(key, ClipCounts()))
        for key in outcome.partitions
    }


def demo(home: Path, _args: argparse.Namespace) -> int:
    """`talkvid demo`: ingest the bundled samples, curate them with the demo profile, and show
    what became of each; 1 when a run failed."""
    from talkvid_assets.cli.rendering import demo_banner, video_table
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.export import DATASET_FILE
    from talkvid_assets.core.summary import clip_counts, video_states

    check_profile(home, DEMO.name)
    config = load_config(home)
    print(demo_banner(config.thresholds))
    for folder in config.inbox_folders(home):  # where `make dev` picks up dropped files
        folder.mkdir(parents=True, exist_ok=True)
    keys, _ = register(home, [str(SAMPLES_DIR)], None)
    ok = curate_videos(home, keys, DEMO.name, stale=False)
    store = open_store(home)
    print("\n" + video_table(video_states(store, keys), clip_counts(store, keys)))
    print(f"\nexported: {home / DATASET_FILE}")
    query = "SELECT clip_id, reject_reasons FROM clips"
    print(f"why clips failed: {sys.argv[0]} --home {home} sql '{query}'")
    return 0 if ok else 1


def remove(home: Path, args: argparse.Namespace) -> int:
    """`talkvid remove`: videos (partition keys or source paths) out of the home and its
    instance."""
    from talkvid_assets.core.removal import UnknownVideo
    from talkvid_assets.defs.removal import remove_videos_from
    from talkvid_assets.launch import home_instance

    try:
        removed = remove_videos_from(home_instance(home), open_store(home), args.videos)
    except UnknownVideo as exc:
        raise UserError(str(exc)) from None
    for key, files in removed.items():
        print(f"removed {key}: its rows, Dagster partition and {files} file(s)")
    return 0


def reap(home: Path, args: argparse.Namespace) -> int:
    """`talkvid reap`: fail runs that died elsewhere and give back their decode slots."""
    from talkvid_assets.launch import PoolBusy, home_instance
    from talkvid_assets.launch import reap as reap_runs

    try:
        reap_runs(home_instance(home), args.run_ids)
    except PoolBusy as exc:
        raise UserError(str(exc)) from None
    print(f"reaped {len(args.run_ids)} run(s); their slots are free")
    return 0
