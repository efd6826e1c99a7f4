"""`talkvid export`, `cut`, `review` and `evaluate`: what a curated home gives back, as files
in the TalkVid formats, clip files, review sheets and bench evaluations."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from talkvid_assets.cli.curation import open_store
from talkvid_assets.cli.errors import UserError

if TYPE_CHECKING:
    from talkvid_assets.core.store import Store


def export(home: Path, args: argparse.Namespace) -> int:
    """`talkvid export`: write the passing clips of ``--split`` in ``--format``; the merged
    records carry speakers.

    A WebDataset sample carries its clip file (``KEY.mp4``, and ``KEY.m4a`` in the split
    layout) wherever one was cut at the clip's current bounds; ``--with-media`` cuts the
    missing ones into the home's ``clips/`` first.
    """
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.export import export_records
    from talkvid_assets.core.export_formats import CardInfo, write_export
    from talkvid_assets.core.labelling import split_clip_ids
    from talkvid_assets.core.summary import row_count

    format, split, out = args.format, args.split, args.out
    if args.with_media and format != "webdataset":
        raise UserError(f"--with-media needs --format webdataset ({format} holds records only)")
    store = open_store(home)
    judged = row_count(store, "filtered_clips")
    if not judged:
        raise UserError(f"nothing curated yet in {home}: run `talkvid curate` first")
    wanted = split_clip_ids(store, split)
    if wanted is not None and not wanted:
        raise UserError(_empty_split_reason(store, split))
    records = [r for r in export_records(store) if wanted is None or r["id"] in wanted]
    media = (
        _export_media(store, [r["id"] for r in records], args.with_media)
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
    return 0


def _empty_split_reason(store: Store, split: str) -> str:
    """Why ``split`` holds no clip: TalkVid-Bench (and the training split beside it) draws
    only on labelled clips, so a home without manifest labels has none."""
    from talkvid_assets.core.summary import row_count

    if not row_count(store, "labels"):
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


def cut(home: Path, args: argparse.Namespace) -> int:
    """`talkvid cut`: clip files of the passing clips of ``--split`` (or the named clips) into
    ``--out`` (by default the home's ``clips/``); 1 when a clip had to be skipped (each is
    named)."""
    from talkvid_assets.core.clip_files import CLIPS_DIR, cut_passing_clips
    from talkvid_assets.core.labelling import split_clip_ids

    store = open_store(home)
    out = args.out or home / CLIPS_DIR
    wanted = set(args.clip_ids) or split_clip_ids(store, args.split)
    cuts = cut_passing_clips(store, out, wanted, layout=args.layout)
    done = {clip_id for clip_id, _ in cuts.made} | {clip_id for clip_id, _ in cuts.skipped}
    missing = sorted(set(args.clip_ids) - done)
    for clip_id, made in cuts.made:
        print(f"{clip_id}\t{made.mode}\t{made.frames} frames\t{made.files[0]}")
    if missing:
        raise UserError(f"not a passing clip: {', '.join(missing)}")
    _report_skipped(cuts.skipped)
    print(
        f"cut {len(cuts.made)} clip(s) into {out}"
        + (f"; skipped {len(cuts.skipped)}" if cuts.skipped else "")
    )
    return 1 if cuts.skipped else 0


def review(home: Path, args: argparse.Namespace) -> int:
    """`talkvid review`: export clips near each threshold for people to judge, or import
    their verdicts and show each check's precision and recall."""
    from talkvid_assets.cli.rendering import calibration_table
    from talkvid_assets.core.config import load_config
    from talkvid_assets.core.review import calibration, export_review, import_review

    store = open_store(home)
    if args.action == "export":
        written = export_review(store, load_config(home), args.path, args.per_side)
        print(
            f"wrote {written}: fill its `human` column with pass or fail, then "
            f"`talkvid review import {written}`"
        )
        return 0
    print(f"imported {import_review(store, load_config(home), args.path)} verdict(s)")
    print(calibration_table(calibration(store)))
    return 0


def evaluate(home: Path, args: argparse.Namespace) -> int:
    """`talkvid evaluate`: a model's videos on the bench (the `bench_evaluation` asset),
    printed as per-stratum metrics and gaps."""
    from talkvid_assets.core.evaluate.report import NO_CHART, gap_table, metric_table
    from talkvid_assets.core.evaluate.run import check_model_name, read_evaluation
    from talkvid_assets.core.summary import row_count
    from talkvid_assets.defs.evaluation import EvaluationSettings
    from talkvid_assets.launch import home_instance, run_evaluation

    model, generated = args.model, args.generated
    check_model_name(model)
    chosen = dict(pair.split("=", 1) for pair in args.extractor if "=" in pair)
    if len(chosen) != len(args.extractor):
        raise UserError("give each --extractor as ROLE=BACKEND, e.g. identity=dlib-resnet")
    if args.resamples < 1:
        raise UserError(f"--resamples must be at least 1, got {args.resamples}")
    if generated is not None and not generated.is_dir():
        raise UserError(f"no folder of generated videos at {generated}")
    if not row_count(open_store(home), "bench_strata"):
        raise UserError(f"no TalkVid-Bench in {home}: curate labelled videos first")
    settings = EvaluationSettings(
        generated=str(generated.resolve()) if generated else "",
        extractors=chosen,
        resamples=args.resamples,
        seed=args.seed,
    )
    error = run_evaluation(home_instance(home), home, model, settings)
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
    return 0
