"""The `talkvid` command line: each subcommand's arguments and, as ``run``, the function that
carries it out (``run(home, args) -> exit status``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from talkvid_assets.cli import curation, home, outputs, sql
from talkvid_assets.core.home import DEFAULT_HOME, HOME_ENV
from talkvid_assets.core.splits import FORMATS, SPLITS
from talkvid_assets.core.thresholds import PROFILES

PUBLIC_VIEWS = "videos, clips (and the per-asset tables: sources, raw_videos, segments, ...)"
DESCRIPTION = "ingest sources, curate them through Dagster, export, demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkvid",
        description=f"The `talkvid` command: {DESCRIPTION}.",
        epilog=f"SQL views: {PUBLIC_VIEWS}. Settings: ${HOME_ENV}/curation.yaml.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"{HOME_ENV} (default: ${HOME_ENV} or ./{DEFAULT_HOME})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="register source videos as partitions")
    ingest.set_defaults(run=curation.ingest)
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

    curate = commands.add_parser(
        "curate", help="materialize what is missing (or stale) for ingested videos"
    )
    curate.set_defaults(run=curation.curate)
    curate.add_argument("--partition", action="append", default=[], help="partition key")
    curate.add_argument(
        "--stale",
        action="store_true",
        help="bring every video up to date with curation.yaml: recompute only what changed",
    )
    curate.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="profile of a new home; on an existing home it must match curation.yaml",
    )

    export = commands.add_parser("export", help="write passing clips as TalkVid records")
    export.set_defaults(run=outputs.export)
    export.add_argument("--format", choices=list(FORMATS), default="talkvid-json")
    export.add_argument("--split", choices=list(SPLITS), default="all")
    export.add_argument("--out", type=Path, required=True, help="a file (json, parquet) or folder")
    export.add_argument(
        "--with-media",
        action="store_true",
        help="webdataset: cut the clip files not cut yet, so every sample carries KEY.mp4",
    )

    cut = commands.add_parser("cut", help="write clip files (H.264 + AAC) of passing clips")
    cut.set_defaults(run=outputs.cut)
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
    remove.set_defaults(run=curation.remove)
    remove.add_argument("videos", nargs="+", metavar="KEY|PATH", help="partition key or source")

    demo = commands.add_parser("demo", help="ingest the bundled samples, curate, export, summarise")
    demo.set_defaults(run=curation.demo)

    query = commands.add_parser("sql", help=f"read-only SQL over the DuckDB views: {PUBLIC_VIEWS}")
    query.set_defaults(run=sql.sql)
    query.add_argument("query")

    settings = commands.add_parser("config", help="show and validate the home's curation.yaml")
    settings.set_defaults(run=home.config)

    reap = commands.add_parser(
        "reap", help="fail dead runs (e.g. of a restarted container) and free their slots"
    )
    reap.set_defaults(run=curation.reap)
    reap.add_argument("run_ids", nargs="+", metavar="RUN_ID")

    review = commands.add_parser("review", help="human review of clips near each threshold")
    review.set_defaults(run=outputs.review)
    review.add_argument("action", choices=["export", "import"])
    review.add_argument("path", type=Path, help="export: a folder; import: the filled CSV")
    review.add_argument("--per-side", type=int, default=5, help="clips each side of a threshold")

    models = commands.add_parser("models", help="list model weights, or fetch one (verified)")
    models.set_defaults(run=home.models)
    models.add_argument("action", choices=["list", "fetch"])
    models.add_argument("name", nargs="?", help="model to fetch (see `talkvid models list`)")
    models.add_argument("--from", dest="mirror", help="fetch the same file names from this URL")

    evaluate = commands.add_parser(
        "evaluate", help="per-stratum FID, FVD, Sync-C/D, CSIM of a model's videos on the bench"
    )
    evaluate.set_defaults(run=outputs.evaluate)
    evaluate.add_argument("model", help="the evaluated model's name (its partition)")
    evaluate.add_argument(
        "--generated",
        type=Path,
        help=f"folder of <clip_id>.mp4 videos (default: ${HOME_ENV}/generated/MODEL)",
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
    dev.set_defaults(run=home.dev)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    return parser
