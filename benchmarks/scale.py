"""`make bench-scale`: what a corpus of N videos costs per video and per tick, N up to 100,000.

Run with ``.venv/bin/python benchmarks/scale.py [--real 1000] [--sizes 1000 10000 100000]``.

1. **Real curations** (``--real``, default 1,000): that many distinct 2 s 640x360 talk videos
   (talk_demo with a drawn number, made once under benchmarks/media/short) are ingested and
   curated by `talkvid curate` (demo profile: the paper profile rejects anything under 1080p).
   The *fixed cost per video* is the curate's wall time less the wall time of the core decode
   pass over the same files on the same cores (a process per core, no Dagster, no store), per
   video: Dagster's runs, events and checks, the store's writes, the corpus-wide run and the
   process start-up. A threshold edit then re-judges the corpus (`curate --stale`).
2. **Homes of N videos** (``--sizes``): the real home with N - real more videos SYNTHESISED:
   their rows in every per-video table (benchmarks/store_scale.py's generator, then compacted
   as the corpus run compacts) and their Dagster history copied, row by row, from one real
   video's history in the instance's SQLite index (every materialization, planned
   materialization, data-version tag and check execution, under the new partition key), so
   Dagster sees N curated, up-to-date partitions. Each synthetic source is a small file in the
   home's inbox, registered in ``sources`` with its size and mtime, so the inbox sensor sees N
   settled files. Measured in fresh processes: the automation sensor's evaluation (Dagster's
   ``evaluate_automation_conditions``, the second one, with the first one's cursor, as the
   daemon ticks), the inbox and config sensor ticks, `curate --stale` planning, the UI's
   partition query (GraphQL against a code server), ``count(*)`` over ``clips`` and a one-video
   query, and the bytes per video in the home and in the instance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import store_scale

from talkvid_assets.core.config import ensure_config
from talkvid_assets.core.runtime import usable_cores
from talkvid_assets.core.store import Store
from talkvid_assets_tests.synthetic_tables import synthetic_rows, video_ids

ROOT = Path(__file__).resolve().parents[1]
SHORT = ROOT / "benchmarks" / "media" / "short"
RESULTS = ROOT / "benchmarks" / "results.md"
SAMPLE = ROOT.parent / "shared" / "media" / "talk_demo.mp4"
TALKVID = Path(sys.executable).with_name("talkvid")
INDEX_DB = Path("history") / "runs" / "index.db"  # Dagster's SQLite index under DAGSTER_HOME
THRESHOLD_EDIT = "thresholds: {duration_s: 1.5}"
CHILD_TIMEOUT_S = 1_800


def short_videos(count: int, first: int = 0) -> list[Path]:
    """``count`` distinct 2 s talk videos (made once): distinct bytes, so distinct partitions."""
    SHORT.mkdir(parents=True, exist_ok=True)
    paths = [SHORT / f"v{index:06d}.mp4" for index in range(first, first + count)]
    missing = [path for path in paths if not path.exists()]
    if missing:
        print(f"making {len(missing)} short videos in {SHORT}...", flush=True)
    for path in missing:
        number = path.stem[1:]
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-t", "2", "-vf",
             f"scale=640:360,drawtext=text={number}:x=10:y=10:fontsize=20:fontcolor=white",
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path) + ".tmp.mp4"],
            check=True,
        )  # fmt: skip
        os.replace(str(path) + ".tmp.mp4", path)
    return paths


def _core_pass(paths: Sequence[str]) -> None:
    from talkvid_assets.core.decode_pass import decode_pass
    from talkvid_assets.core.scoring import load_backend
    from talkvid_assets.core.stages import STAGES
    from talkvid_assets.core.video import probe

    backends = {stage.name: load_backend(stage.name, stage.default_backend) for stage in STAGES}
    for path in paths:
        decode_pass(path, probe(path), backends)


def core_seconds(paths: Sequence[Path]) -> float:
    """Wall seconds of the core decode pass over ``paths``: a process per usable core, each
    taking every n-th file (as `curate` runs a video per core)."""
    cores = usable_cores()
    started = time.perf_counter()
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_core_pass, [[str(p) for p in paths[i::cores]] for i in range(cores)]))
    return time.perf_counter() - started


def talkvid(home: Path, *args: str) -> float:
    """Wall seconds of one `talkvid` command (which must succeed)."""
    started = time.perf_counter()
    subprocess.run(
        [str(TALKVID), "--home", str(home), *args], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    return sum(
        os.stat(os.path.join(parent, name)).st_size
        for parent, _, names in os.walk(folder)
        for name in names
    )


def real_curations(home: Path, count: int) -> dict:
    """Ingest and curate ``count`` short videos; then a threshold edit re-judges them."""
    paths = short_videos(count)
    batch = home.parent / "batch"
    batch.mkdir()
    for path in paths:
        (batch / path.name).symlink_to(path)
    ensure_config(home, "demo")
    core = core_seconds(paths)
    ingest = talkvid(home, "ingest", str(batch))
    curate = talkvid(home, "curate")
    config = home / "curation.yaml"
    config.write_text(config.read_text().replace("thresholds: {}", THRESHOLD_EDIT))
    rejudge = talkvid(home, "curate", "--stale")
    dagster = folder_bytes(home / "dagster")
    return {
        "load_average": os.getloadavg()[1],  # over the last 5 minutes: other work on the cores
        "videos": count,
        "core_s": core,
        "ingest_s": ingest,
        "curate_s": curate,
        "fixed_per_video_s": (curate - core) / count,
        "rejudge_s": rejudge,
        "home_bytes_per_video": (folder_bytes(home) - dagster) / count,
        "instance_bytes_per_video": dagster / count,
    }


def replicate_history(dagster_home: Path, template: str, keys: Sequence[str]) -> None:
    """Give each of ``keys`` a copy of partition ``template``'s history in Dagster's SQLite
    index: its events (materializations, planned ones), their tags (data versions) and its
    check executions, each pointing at the copies, and register the keys as partitions."""
    db = sqlite3.connect(dagster_home / INDEX_DB)
    columns = "run_id, event, dagster_event_type, timestamp, step_key, asset_key, partition"
    events = db.execute(
        f"SELECT id, {columns} FROM event_logs WHERE partition = ? ORDER BY id", (template,)
    ).fetchall()
    ids = [row[0] for row in events]
    marks = ",".join("?" * len(ids))
    tags = db.execute(
        "SELECT event_id, asset_key, key, value, event_timestamp FROM asset_event_tags "
        f"WHERE event_id IN ({marks})",
        ids,
    ).fetchall()
    check_columns = (
        "asset_key, check_name, partition, run_id, execution_status, evaluation_event, "
        "evaluation_event_timestamp, evaluation_event_storage_id, "
        "materialization_event_storage_id, create_timestamp"
    )
    checks = db.execute(
        f"SELECT {check_columns} FROM asset_check_executions WHERE partition = ?", (template,)
    ).fetchall()
    (next_id,) = db.execute("SELECT max(id) + 1 FROM event_logs").fetchone()
    for start in range(0, len(keys), 2_000):
        event_rows, tag_rows, check_rows, partition_rows = [], [], [], []
        for key in keys[start : start + 2_000]:
            moved = {}
            for old, run_id, event, kind, stamp, step, asset, _ in events:
                moved[old] = next_id
                event_rows.append(
                    (next_id, run_id, event.replace(template, key), kind, stamp, step, asset, key)
                )
                next_id += 1
            tag_rows += [(moved[event_id], *rest) for event_id, *rest in tags]
            for row in checks:
                (asset, name, _, run_id, status, event, stamp, evaluated, target, created) = row
                event = event.replace(template, key)
                if target is not None:
                    event = event.replace(
                        f'"storage_id": {target}', f'"storage_id": {moved[target]}'
                    )
                check_rows.append(
                    (asset, name, key, run_id, status, event, stamp,
                     moved.get(evaluated), moved.get(target), created)
                )  # fmt: skip
            partition_rows.append(("videos", key))
        db.executemany(
            f"INSERT INTO event_logs (id, {columns}) VALUES (?,?,?,?,?,?,?,?)", event_rows
        )
        db.executemany(
            "INSERT INTO asset_event_tags (event_id, asset_key, key, value, event_timestamp) "
            "VALUES (?,?,?,?,?)",
            tag_rows,
        )
        db.executemany(
            f"INSERT INTO asset_check_executions ({check_columns}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            check_rows,
        )
        db.executemany(
            "INSERT INTO dynamic_partitions (partitions_def_name, partition) VALUES (?, ?)",
            partition_rows,
        )
        db.commit()
    db.close()


def synthesise_store(home: Path, keys: Sequence[str]) -> None:
    """Rows for ``keys`` in every per-video table, written as partition files; each source is a
    small file in the home's inbox, registered with its real size and mtime."""
    inbox = home / "inbox"
    inbox.mkdir(exist_ok=True)
    paths, sizes, stamps = [], [], []
    for key in keys:
        path = inbox / f"{key}.mp4"
        path.write_bytes(key.encode())
        stat = path.stat()
        paths.append(str(path))
        sizes.append(stat.st_size)
        stamps.append(stat.st_mtime_ns)
    sources = synthetic_rows("sources", list(keys))
    for name, values, kind in (
        ("source_path", paths, pa.string()),
        ("size_bytes", sizes, pa.int64()),
        ("mtime_ns", stamps, pa.int64()),
    ):
        sources = sources.set_column(
            sources.schema.get_field_index(name), name, pa.array(values, kind)
        )
    folder = home / "tables" / "sources"
    for index, key in enumerate(keys):
        pq.write_table(sources.slice(index, 1), folder / f"{key}.parquet")
    # Spawned, not forked: this process has DuckDB open, which a forked child must not inherit.
    with ProcessPoolExecutor(usable_cores(), mp_context=get_context("spawn")) as pool:
        tasks = [
            pool.submit(store_scale._write_chunk, str(home), table, list(keys[i : i + 2_000]))
            for table in store_scale.ROWS_PER_VIDEO
            if table != "sources"
            for i in range(0, len(keys), 2_000)
        ]
        for task in tasks:
            task.result()
    Store(home).compact()


def grow(real: Path, home: Path, count: int) -> None:
    """``home``: the real home with videos added up to ``count`` (see the module docstring)."""
    shutil.copytree(real, home, symlinks=True)
    template = Store(home).query("SELECT video_id FROM clips WHERE passed LIMIT 1")
    template = template or Store(home).query("SELECT video_id FROM videos LIMIT 1")
    have = len(Store(home).query("SELECT video_id FROM videos"))
    keys = video_ids(count - have, salt="scale")
    synthesise_store(home, keys)
    replicate_history(home / "dagster", template[0]["video_id"], keys)


PARTITION_PAGE = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      }
    }
  }
}
"""


def measure(home: Path) -> dict:
    """In this process (a fresh one per home): every tick and query named in the docstring."""
    from dagster import DagsterInstance, build_sensor_context

    from talkvid_assets.defs.build import build_definitions
    from talkvid_assets.defs.config_assets import config_sensor
    from talkvid_assets.defs.resources import TalkvidResource
    from talkvid_assets.defs.sensors import inbox_sensor
    from talkvid_assets.launch import corpus_plan, instance_dir, plan

    found: dict[str, float] = {}
    instance = DagsterInstance.from_config(str(instance_dir(home)))
    defs = build_definitions(home)
    keys = instance.get_dynamic_partitions("videos")
    found["partitions"] = len(keys)

    def timed(name: str, call):
        started = time.perf_counter()
        value = call()
        found[name] = time.perf_counter() - started
        return value

    todo = timed("stale_plan_s", lambda: plan(instance, defs, keys) + corpus_plan(instance, defs))
    found["stale_runs"] = len(todo)
    first, _ = timed("automation_first_s", lambda: automation_tick(instance, defs, None))
    cursor, requested = timed("automation_tick_s", lambda: automation_tick(instance, defs, first))
    found["automation_requested"] = requested
    resource = TalkvidResource(home=str(home))
    cursor = None
    for tick in range(3):  # the first ticks load the registered sources on a thread
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"talkvid": resource}
        )
        result = timed("inbox_tick_s", lambda context=context: inbox_sensor(context))
        cursor = result.cursor
        found["inbox_new"] = len(result.dynamic_partitions_requests)
        time.sleep(1 if tick == 0 else 0)
    context = build_sensor_context(instance=instance, resources={"talkvid": resource})
    timed("config_tick_s", lambda: config_sensor(context))
    store = Store(home)
    store.query("SELECT 1")
    found["clips"] = timed("count_s", lambda: store.query("SELECT count(*) AS n FROM clips"))[0][
        "n"
    ]
    timed(
        "video_query_s",
        lambda: store.query("SELECT * FROM clips WHERE video_id = :v", {"v": keys[-1]}),
    )
    found["graphql_s"] = graphql_page(instance, home)
    found["instance_bytes_per_video"] = folder_bytes(home / "dagster") / len(keys)
    found["home_bytes_per_video"] = (folder_bytes(home) - folder_bytes(home / "dagster")) / len(
        keys
    )
    found["one_more_s"] = talkvid(home, "ingest", str(short_videos(1, first=999_999)[0]))
    found["one_more_s"] += talkvid(home, "curate")
    return found


def automation_tick(instance, defs, cursor):
    """One tick of the `automation` sensor as the daemon evaluates it: the new cursor and the
    number of runs requested. Dagster's public ``evaluate_automation_conditions`` is a testing
    aid that reloads every partition key once per condition node when it writes its cursor
    (about 19 s at 3,000 partitions here), where the daemon's tick context caches them; the
    daemon's class is internal (dagster._core), so this benchmark uses it as the daemon does."""
    from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
    from dagster._core.definitions.automation_tick_evaluation_context import (
        AutomationTickEvaluationContext,
    )

    from talkvid_assets.defs.automation import automation_sensor

    cursor = cursor or AssetDaemonCursor.empty()
    context = AutomationTickEvaluationContext(
        evaluation_id=cursor.evaluation_id + 1,
        instance=instance,
        asset_graph=defs.resolve_asset_graph(),
        cursor=cursor,
        materialize_run_tags={},
        observe_run_tags={},
        auto_observe_asset_keys=set(),
        asset_selection=automation_sensor.asset_selection,
        emit_backfills=False,
        logger=logging.getLogger("bench-scale"),
    )
    requests, new_cursor, _ = context.evaluate()
    return new_cursor, len(requests)


def graphql_page(instance, home: Path) -> float:
    """Seconds of the UI's partition query for `filtered_clips` (second of two), against a code
    server that loads the home's definitions, as `talkvid dev` does."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    definitions = ROOT / "talkvid_assets" / "defs" / "definitions.py"
    os.environ["TALKVID_HOME"] = str(home)
    with define_out_of_process_context(str(definitions), "defs", instance) as context:
        variables = {"key": {"path": ["filtered_clips"]}}
        execute_dagster_graphql(context, PARTITION_PAGE, variables)
        started = time.perf_counter()
        result = execute_dagster_graphql(context, PARTITION_PAGE, variables)
        seconds = time.perf_counter() - started
    stats = result.data["assetNodeOrError"]["partitionStats"]
    assert stats["numPartitions"] == len(instance.get_dynamic_partitions("videos")), stats
    return seconds


def _child(home: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(home)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=ROOT,
    )  # fmt: skip
    if output.returncode:
        raise RuntimeError(f"measuring {home} failed:\n{output.stderr[-3000:]}")
    (line,) = [line for line in output.stdout.splitlines() if line.startswith("{")]
    return json.loads(line)


def render(real: dict, rows: list[dict]) -> str:
    lines = [
        f"Real curations: {real['videos']:,} distinct 2 s 640x360 videos, demo profile "
        f"(load average {real['load_average']:.1f} at the end).",
        "",
        "| core decode pass | ingest | curate | **fixed cost per video** | threshold edit "
        "(`curate --stale`) | home bytes/video | instance bytes/video |",
        "|---|---|---|---|---|---|---|",
        f"| {real['core_s']:.1f} s | {real['ingest_s']:.1f} s | {real['curate_s']:.1f} s | "
        f"**{real['fixed_per_video_s']:.3f} s** | {real['rejudge_s']:.1f} s "
        f"({real['rejudge_s'] / real['videos']:.3f} s/video) | "
        f"{real['home_bytes_per_video']:,.0f} | {real['instance_bytes_per_video']:,.0f} |",
        "",
        "| videos | automation tick | inbox tick | config tick | `--stale` planning | "
        "UI partition query | count(*) clips | one video's clips | one new video (ingest + "
        "curate, corpus run included) | instance bytes/video |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['partitions']:,} | {row['automation_tick_s']:.2f} s "
            f"(first {row['automation_first_s']:.1f} s) | {row['inbox_tick_s']:.3f} s | "
            f"{row['config_tick_s']:.3f} s | {row['stale_plan_s']:.2f} s | "
            f"{row['graphql_s']:.2f} s | {row['count_s']:.3f} s | {row['video_query_s']:.3f} s | "
            f"{row['one_more_s']:.1f} s | "
            f"{row['instance_bytes_per_video']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=1_000, help="videos curated for real")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--root", type=Path, default=None, help="where the homes are built")
    arguments = parser.parse_args()
    root = arguments.root or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        real_home = root / "real" / "home"
        real_home.parent.mkdir(parents=True)
        real = real_curations(real_home, arguments.real)
        print(json.dumps(real), flush=True)
        rows = []
        for count in arguments.sizes:
            home = root / f"home_{count}"
            started = time.perf_counter()
            if count > arguments.real:
                grow(real_home, home, count)
            else:
                shutil.copytree(real_home, home, symlinks=True)
            built = time.perf_counter() - started
            rows.append(_child(home))
            print(json.dumps(rows[-1]), f"(built in {built:.0f} s)", flush=True)
            shutil.rmtree(home)
    finally:
        if arguments.root is None:
            shutil.rmtree(root, ignore_errors=True)
    table = render(real, rows)
    print(table)
    RESULTS.write_text(
        RESULTS.read_text().split("\n## Scale")[0].rstrip()
        + "\n\n## Scale (`make bench-scale`)\n\n"
        + f"{time.strftime('%Y-%m-%d')}, {usable_cores()} cores. {table}\n"
    )


if __name__ == "__main__":
    main()
