"""One evaluation of a model's videos on the home's bench, written as Parquet for DuckDB.

``$TALKVID_HOME/evaluations/<model>/`` receives ``metrics.parquet`` (per stratum and metric:
value, 95% interval, clips, extractor), ``gaps.parquet`` (per dimension and metric: the best and
worst stratum) and ``chart.png`` when matplotlib is installed; DuckDB reads them directly, e.g.
``SELECT * FROM 'evaluations/*/metrics.parquet'``. ``summary.json`` says which extractor filled
each role, why a role was skipped and why a clip was not measured.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from talkvid_assets.core.evaluate import EVALUATIONS_DIR, EvaluationError
from talkvid_assets.core.evaluate.bootstrap import RESAMPLES
from talkvid_assets.core.evaluate.extractors import DEFAULT_EXTRACTORS, ROLES, load_extractor
from talkvid_assets.core.evaluate.harness import bench_clips, gap_rows, measure_bench, metric_rows
from talkvid_assets.core.evaluate.references import ReferenceCache
from talkvid_assets.core.evaluate.report import chart_png
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.store import Store, write_atomic

GENERATED_DIR = "generated"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Evaluation:
    model: str
    rows: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    extractors: dict[str, str]  # role -> backend name, for the roles that ran
    skipped: dict[str, str]  # role -> why its metrics are missing
    problems: dict[str, str]  # clip id -> why it was not measured
    folder: Path
    chart: bytes | None = field(default=None, repr=False)


def evaluation_folder(home: Path, model: str) -> Path:
    return Path(home) / EVALUATIONS_DIR / model


def check_model_name(model: str) -> str:
    """``model`` when it can name a partition and a folder; else one line saying why not."""
    if not MODEL_NAME.match(model):
        raise EvaluationError(
            f"model name {model!r}: use letters, digits, '.', '_' or '-' (at most 100)"
        )
    return model


def choose_extractors(
    chosen: Mapping[str, str], runtime: Runtime
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ready extractor of each role (the default unless chosen) and, for each role that
    cannot run here, the one line saying why (what to fetch)."""
    unknown = sorted(set(chosen) - set(ROLES))
    if unknown:
        raise EvaluationError(f"unknown extractor role {unknown[0]!r}; roles: {', '.join(ROLES)}")
    ready, skipped = {}, {}
    for role, default in DEFAULT_EXTRACTORS.items():
        try:
            extractor = load_extractor(role, chosen.get(role, default), runtime)
            extractor.ready()
        except BackendUnavailable as error:
            skipped[role] = str(error)
        else:
            ready[role] = extractor
    return ready, skipped


def evaluate_model(
    store: Store,
    model: str,
    generated: Path,
    runtime: Runtime,
    chosen: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    report: Callable[[str], None] = print,
) -> Evaluation:
    """Measure ``generated``'s videos against the bench and write the results."""
    check_model_name(model)
    clips = bench_clips(store)
    if not clips:
        raise EvaluationError(f"no TalkVid-Bench in {store.home}: curate labelled videos first")
    if not generated.is_dir():
        raise EvaluationError(f"no folder of generated videos at {generated}")
    extractors, skipped = choose_extractors(chosen or {}, runtime)
    measures, problems = measure_bench(
        clips, generated, extractors, report, ReferenceCache(store.home)
    )
    names = {role: extractor.name for role, extractor in extractors.items()}
    rows = [{"model": model, **row} for row in metric_rows(measures, names, resamples, seed)]
    gaps = [{"model": model, **gap} for gap in gap_rows(rows)]
    folder = evaluation_folder(store.home, model)
    folder.mkdir(parents=True, exist_ok=True)
    _write_parquet(folder / "metrics.parquet", rows)
    _write_parquet(folder / "gaps.parquet", gaps)
    summary = {"extractors": names, "skipped": skipped, "problems": problems}
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2).encode())
    chart = chart_png(rows, f"{model} on TalkVid-Bench") if rows else None
    if chart is not None:
        write_atomic(folder / "chart.png", chart)
    return Evaluation(model, rows, gaps, names, skipped, problems, folder, chart)


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    write_atomic(path, buffer.getvalue())


def read_evaluation(home: Path, model: str) -> Evaluation:
    """The evaluation last written for ``model`` (without its chart's bytes)."""
    folder = evaluation_folder(home, model)
    summary = json.loads((folder / "summary.json").read_text())
    return Evaluation(
        model,
        pq.read_table(folder / "metrics.parquet").to_pylist(),
        pq.read_table(folder / "gaps.parquet").to_pylist(),
        summary["extractors"],
        summary["skipped"],
        summary["problems"],
        folder,
    )
