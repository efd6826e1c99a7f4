"""The `talkvid` command: ingest sources, curate them through Dagster, export, demo.

Curation always goes through the Dagster instance of the home (runs, materializations and
partitions are visible in `dagster dev` afterwards); this module never re-implements a stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
from dagster import DagsterInstance

from talkvid_assets.core.export import write_records
from talkvid_assets.core.ingest import discover
from talkvid_assets.core.pipeline import export_records, register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.resources import TalkvidResource, home_from_env
from talkvid_assets.defs.runs import (
    RunOutcome,
    curate,
    instance_dir,
    pending_partitions,
    register_partitions,
)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"

SUMMARY_SQL = """
    SELECT v.video_id, v.source_path, v.status, v.reject_reason,
           count(c.clip_id) AS clips, count(c.clip_id) FILTER (WHERE c.passed) AS passed
    FROM videos v LEFT JOIN clips c USING (video_id)
    WHERE v.video_id IN (SELECT unnest(:keys))
    GROUP BY ALL ORDER BY v.source_path
"""


def _instance(home: Path) -> DagsterInstance:
    os.environ["DAGSTER_HOME"] = str(instance_dir(home))
    return DagsterInstance.get()


def _read_manifest(path: Path) -> list[str]:
    """One source path per line; blank lines and `#` comments are ignored."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def cmd_ingest(home: Path, paths: Sequence[str], manifest: Path | None) -> list[str]:
    store = Store(home)
    store.publish()
    sources = list(paths) + (_read_manifest(manifest) if manifest else [])
    keys = []
    for path in discover(sources):
        key, _ = register_source(store, path)
        keys.append(key)
        print(f"{key}\t{path}")
    register_partitions(_instance(home), keys)
    return keys


def _summarise(store: Store, outcome: RunOutcome) -> str:
    counts = store.query(
        "SELECT count(*) AS clips, count(*) FILTER (WHERE passed) AS passed "
        "FROM clips WHERE video_id = :video_id",
        {"video_id": outcome.partition},
    )[0]
    video = store.query(
        "SELECT status FROM videos WHERE video_id = :video_id", {"video_id": outcome.partition}
    )
    status = video[0]["status"] if video else "missing"
    state = "ok" if outcome.success else f"RUN FAILED: {outcome.error}"
    return (
        f"{outcome.partition} {status:8s} clips={counts['clips']} passed={counts['passed']} "
        f"{outcome.seconds:.1f}s run={outcome.run_id[:8]} {state}"
    )


def cmd_curate(home: Path, partitions: Sequence[str], profile: str) -> bool:
    instance = _instance(home)
    store = Store(home)
    store.publish()
    keys = list(partitions) or pending_partitions(instance)
    known = set(instance.get_dynamic_partitions("videos"))
    unknown = [key for key in keys if key not in known]
    if unknown:
        print(f"not ingested: {', '.join(unknown)}", file=sys.stderr)
        return False
    if not keys:
        print("nothing to curate: every ingested video has been curated")
        return True
    print(f"curating {len(keys)} video(s) with profile {profile!r} into {home}", flush=True)
    resource = TalkvidResource(home=str(home), profile=profile)
    done = 0

    def progress(outcome: RunOutcome) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{len(keys)}] {_summarise(store, outcome)}", flush=True)

    outcomes = curate(instance, keys, resource, on_done=progress)
    return all(outcome.success for outcome in outcomes)


def cmd_export(home: Path, out: Path) -> int:
    records = export_records(Store(home))
    write_records(out, records)
    print(f"wrote {len(records)} TalkVid records to {out}")
    return len(records)


def cmd_demo(home: Path) -> bool:
    print("demo profile: paper clip thresholds; sources down to 128 px and without audio admitted")
    keys = cmd_ingest(home, [str(SAMPLES_DIR)], None)
    ok = cmd_curate(home, keys, "demo")
    cmd_export(home, home / "exports" / "talkvid.json")
    rows = Store(home).query(SUMMARY_SQL, {"keys": keys})
    print(f"\n{'video':24s} {'status':8s} {'clips':>5s} {'passed':>6s}  reason")
    for row in rows:
        name = Path(row["source_path"] or row["video_id"]).name
        print(
            f"{name[:24]:24s} {row['status']:8s} {row['clips']:5d} {row['passed']:6d}  "
            f"{row['reject_reason'] or ''}"
        )
    query = "SELECT clip_id, reject_reasons FROM clips"
    print(f"\nwhy clips failed: {sys.argv[0]} --home {home} sql '{query}'")
    return ok


def cmd_sql(home: Path, query: str) -> None:
    """Print the rows of a read-only query over the home's views, tab-separated with a header."""
    with Store(home).engine().connect() as connection:
        result = connection.execute(sa.text(query))
        print("\t".join(result.keys()))
        for row in result:
            print("\t".join("" if value is None else str(value) for value in row))


def cmd_dev(home: Path, host: str, port: int) -> NoReturn:
    """Replace this process with `dagster dev` on the home's instance and the project workspace."""
    os.environ["DAGSTER_HOME"] = str(instance_dir(home))
    Store(home).publish()
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    argv = [str(dagster), "dev", "-h", host, "-p", str(port), "-w", str(workspace)]
    os.execv(argv[0], argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkvid", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, default=None, help="TALKVID_HOME (default: $TALKVID_HOME or ./data)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="register source videos as partitions")
    ingest.add_argument("paths", nargs="*", help="video files or folders")
    ingest.add_argument("--manifest", type=Path, help="file with one source path per line")
    curate_cmd = commands.add_parser("curate", help="materialize the graph for videos")
    curate_cmd.add_argument("--partition", action="append", default=[], help="partition key")
    curate_cmd.add_argument("--profile", default=os.environ.get("TALKVID_PROFILE", "paper"))
    export = commands.add_parser("export", help="write passing clips as TalkVid records")
    export.add_argument("--format", choices=["talkvid-json"], default="talkvid-json")
    export.add_argument("--out", type=Path, required=True)
    commands.add_parser("demo", help="ingest the bundled samples, curate, export, summarise")
    sql = commands.add_parser("sql", help="run a read-only SQL query over the DuckDB views")
    sql.add_argument("query")
    dev = commands.add_parser("dev", help="start `dagster dev` on this home's instance")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    home = (args.home or home_from_env()).resolve()
    os.environ["TALKVID_HOME"] = str(home)
    if args.command == "ingest":
        if not args.paths and not args.manifest:
            print("talkvid ingest: give paths or --manifest", file=sys.stderr)
            return 2
        cmd_ingest(home, args.paths, args.manifest)
        return 0
    if args.command == "curate":
        return 0 if cmd_curate(home, args.partition, args.profile) else 1
    if args.command == "export":
        cmd_export(home, args.out)
        return 0
    if args.command == "sql":
        cmd_sql(home, args.query)
        return 0
    if args.command == "dev":
        cmd_dev(home, args.host, args.port)
    return 0 if cmd_demo(home) else 1


if __name__ == "__main__":
    sys.exit(main())
