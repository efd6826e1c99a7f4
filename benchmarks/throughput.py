"""Where the time of a curation goes, against a plain decode of the same 1080p videos.

Run with `make bench`. It makes (once, under benchmarks/media) 1920x1080 H.264 talk videos from
the bundled talk_demo.mp4 (its face upscaled onto a 1080p canvas, its speech as AAC; the second
video of the batch is the mirror image, so it is a different source), then prints one table and
writes it, with the machine and the versions, to benchmarks/results.md:

- plain decode: PyAV with frame threads, every frame converted to RGB at native size (what a
  training loader or a naive curation script pays at least);
- the core pass (decode_pass: scenes, voice and every embedded scorer) on each video;
- `talkvid curate` on the batch: one process, start-up and the corpus-wide runs included;
- the Dagster backfill route: a backfill launched over GraphQL under `talkvid dev`, from its
  first run's start to its last run's end;
- CPU seconds per minute of video for each stage, as the curation recorded them in
  ``decode_reports``; "other" is the rest of the curate process (start-up, Dagster, annotations,
  the corpus-wide assets);
- process start-up, and peak RSS of the core pass as the video length doubles.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import av
import cv2
import numpy as np

from talkvid_assets.core.stages import CPU_PARTS
from talkvid_assets_tests.media import read_sample, write_video

MEDIA = Path(__file__).resolve().parent / "media"
RESULTS = Path(__file__).resolve().parent / "results.md"
WIDTH, HEIGHT = 1920, 1080
BATCH_SECONDS = 60
RSS_SECONDS = (30, 60, 120)
TARGET = 0.85  # issue 11: curation at >= 0.85x the plain-decode throughput
TALKVID = Path(sys.executable).with_name("talkvid")


def talk_video(seconds: int, mirrored: bool = False) -> Path:
    """A ``seconds`` long 1080p talk video, made on first use and kept under benchmarks/media."""
    path = MEDIA / f"talk_1080p_{seconds}s{'_mirrored' if mirrored else ''}.mp4"
    if path.exists():
        return path
    MEDIA.mkdir(exist_ok=True)
    frames, audio, fps = read_sample("talk_demo.mp4")
    face_width = round(HEIGHT * frames[0].shape[1] / frames[0].shape[0])
    left = (WIDTH - face_width) // 2
    count = int(seconds * fps)

    def canvas(index: int) -> np.ndarray:
        image = np.full((HEIGHT, WIDTH, 3), 96, np.uint8)
        frame = frames[index % len(frames)]
        image[:, left : left + face_width] = cv2.resize(
            frame, (face_width, HEIGHT), interpolation=cv2.INTER_CUBIC
        )
        return image[:, ::-1] if mirrored else image

    sound = np.resize(audio, int(seconds * len(audio) / (len(frames) / fps)))
    print(f"making {path.name} ({count} frames)...", flush=True)
    write_video(path, (canvas(i) for i in range(count)), fps, sound, preset="veryfast")
    return path


def plain_decode(path: Path) -> float:
    """Seconds to decode every frame with PyAV's frame threads and convert it to RGB."""
    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
    return time.perf_counter() - started


def core_pass(path: Path) -> dict:
    """The core decode pass (embedded defaults) in a new interpreter: wall and CPU seconds,
    CPU by stage and peak RSS (VmHWM: ru_maxrss would report the parent's peak after exec)."""
    code = f"""
import json, re, time
from pathlib import Path
from talkvid_assets.core.decode_pass import decode_pass
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.video import probe
backends = {{s.name: load_backend(s.name, s.default_backend) for s in STAGES}}
video = probe({str(path)!r})
started, cpu = time.perf_counter(), time.process_time()
result = decode_pass({str(path)!r}, video, backends)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
status = Path("/proc/self/status").read_text()
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
print(json.dumps({{"seconds": seconds, "cpu_s": cpu, "stages": result.cpu_s,
                   "peak_rss_mb": peak_kb / 1024}}))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def curate_batch(videos: list[Path], home: Path) -> dict:
    """`talkvid curate` (paper profile) on the ingested batch in one process: wall and CPU
    seconds of that process, and the stage CPU the decode passes recorded."""
    subprocess.run([str(TALKVID), "--home", str(home), "ingest", *map(str, videos)],
                   check=True, capture_output=True)  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([str(TALKVID), "--home", str(home), "curate"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    from talkvid_assets.core.store import Store

    columns = ", ".join(f"sum({part}_cpu_s) AS {part}" for part in CPU_PARTS)
    (stages,) = Store(home).query(f"SELECT {columns} FROM decode_reports")
    verdicts = Store(home).query(
        "SELECT count(*) FILTER (passed) AS passed, count(*) AS clips FROM clips"
    )[0]
    return {"seconds": seconds, "cpu_s": cpu, "stages": stages, **verdicts, **wall_split(home)}


def wall_split(home: Path) -> dict[str, float]:
    """Wall seconds of the curate's runs from its Dagster instance: the decode_pass step, the
    other steps of the video runs, and the corpus-wide runs (whole runs)."""
    from dagster import DagsterInstance

    from talkvid_assets.launch import instance_dir

    instance = DagsterInstance.from_config(str(instance_dir(home)))
    split = {"decode_step_s": 0.0, "video_run_rest_s": 0.0, "corpus_runs_s": 0.0}
    for run in instance.get_runs():
        stats = instance.get_run_stats(run.run_id)
        span = stats.end_time - stats.start_time
        steps = {
            s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(run.run_id)
        }
        if "decode_pass" in steps:
            split["decode_step_s"] += steps["decode_pass"]
            split["video_run_rest_s"] += span - steps["decode_pass"]
        else:
            split["corpus_runs_s"] += span
    return split


def backfill_route(videos: list[Path], root: Path) -> tuple[float, int]:
    """The batch as a Dagster backfill launched over GraphQL under `talkvid dev` (paper
    profile): seconds from the first run's start to the last run's end, and the run count.
    The daemon's backfill tick (up to 30 s before the first run) is left out."""
    from talkvid_assets_tests.devserver import (
        PARTITIONED,
        dev_server,
        launch_backfill,
        run_span,
        runs,
        stop_sensor_before_start,
        talkvid,
        wait_for_backfill,
    )

    home = root / "backfill"
    home.mkdir()
    lines = talkvid(home, "ingest", *map(str, videos)).stdout.splitlines()
    keys = sorted({line.split("\t")[0] for line in lines})
    stop_sensor_before_start(home, "automation")
    with dev_server(home, root / "dev.log") as port:
        backfill_id = launch_backfill(port, keys, PARTITIONED)
        wait_for_backfill(port, backfill_id, root / "dev.log")
        backfill_runs = runs(port, {"dagster/backfill": backfill_id})
    return run_span(backfill_runs), len(backfill_runs)


def start_up() -> float:
    """Wall seconds of `talkvid sql 'select 1'` in a fresh process (best of three)."""
    times = []
    with tempfile.TemporaryDirectory() as home:
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([str(TALKVID), "--home", home, "sql", "select 1"], check=True,
                           capture_output=True)  # fmt: skip
            times.append(time.perf_counter() - started)
    return min(times)


def probe_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / av.time_base


def machine() -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )  # fmt: skip
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = ("av", "opencv-python", "onnxruntime", "dagster", "duckdb", "numpy")
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, {memory_kb / 2**20:.0f} GiB, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, FFmpeg {av.library_versions['libavcodec']} "
        "(libavcodec), " + ", ".join(f"{name} {version(name)}" for name in packages),
    ]


def table(rows: list[tuple[str, str, str]]) -> list[str]:
    return [
        "| measure | value | against plain decode |",
        "|---|---|---|",
        *(f"| {measure} | {value} | {ratio} |" for measure, value, ratio in rows),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=BATCH_SECONDS,
                        help="length of each batch video (default 60)")  # fmt: skip
    parser.add_argument("--no-backfill", action="store_true",
                        help="skip the `talkvid dev` backfill route")  # fmt: skip
    args = parser.parse_args()
    batch = [talk_video(args.seconds), talk_video(args.seconds, mirrored=True)]
    minutes = sum(probe_seconds(path) for path in batch) / 60
    decode_s = sum(min(plain_decode(path) for _ in range(2)) for path in batch)
    passes = [core_pass(path) for path in batch]
    pass_s = sum(p["seconds"] for p in passes)
    with tempfile.TemporaryDirectory() as root:
        curated = curate_batch(batch, Path(root) / "curate")
        backfill = None if args.no_backfill else backfill_route(batch, Path(root))
    startup_s = start_up()
    rss = {seconds: core_pass(talk_video(seconds))["peak_rss_mb"] for seconds in RSS_SECONDS}

    def ratio(seconds: float) -> str:
        return f"{decode_s / seconds:.2f}x"

    recorded = {part: curated["stages"][part] or 0.0 for part in CPU_PARTS}
    other = curated["cpu_s"] - sum(recorded.values())
    per_minute = {**recorded, "other": other}
    rows = [
        (f"plain decode of the batch (2 x {args.seconds} s 1080p, {minutes:.1f} min)",
         f"{decode_s:.2f} s", "1.00x"),
        ("core pass on each video (fresh process)", f"{pass_s:.2f} s", ratio(pass_s)),
        ("`talkvid curate` on the batch (one process, start-up included)",
         f"{curated['seconds']:.2f} s", f"{ratio(curated['seconds'])} (target {TARGET}x)"),
    ]  # fmt: skip
    if backfill is not None:
        rows.append((f"Dagster backfill route ({backfill[1]} runs, first start to last end)",
                     f"{backfill[0]:.2f} s", ratio(backfill[0])))  # fmt: skip
    outside = curated["seconds"] - sum(
        curated[part] for part in ("decode_step_s", "video_run_rest_s", "corpus_runs_s")
    )
    rows += [
        ("... of which the decode_pass step (both videos at once)",
         f"{curated['decode_step_s']:.2f} s", ratio(curated["decode_step_s"])),
        ("... the video run's other steps (prefilter, verdicts, annotations, export, checks)",
         f"{curated['video_run_rest_s']:.2f} s", ""),
        ("... the corpus-wide runs (dataset, speakers, TalkVid-Bench, training split)",
         f"{curated['corpus_runs_s']:.2f} s", ""),
        ("... outside runs (interpreter, imports, instance, planning)", f"{outside:.2f} s", ""),
    ]  # fmt: skip
    rows += [
        (f"CPU per minute of video: {stage}", f"{seconds / minutes:.2f} s", "")
        for stage, seconds in per_minute.items()
    ]
    rows += [
        ("CPU of the curate process, all stages", f"{curated['cpu_s']:.2f} s", ""),
        ("process start-up (`talkvid sql 'select 1'`)", f"{startup_s:.2f} s", ""),
        *((f"peak RSS of the core pass, {seconds} s video", f"{mb:.0f} MiB", "")
          for seconds, mb in rss.items()),
        ("clips passing in the batch", f"{curated['passed']} of {curated['clips']}", ""),
    ]  # fmt: skip
    lines = table(rows)
    print("\n" + "\n".join(lines))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.write_text(
        "\n".join(
            [
                "# `make bench` results",
                "",
                f"Written by benchmarks/throughput.py on {stamp}.",
                "",
                *machine(),
                "",
                *lines,
                "",
            ]
        )
    )
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
