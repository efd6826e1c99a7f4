"""The evaluation as a table (what the CLI prints and the asset shows) and a chart.

The chart needs matplotlib, which is optional: without it :func:`chart_png` returns None and
the caller says so; the table and the Parquet files do not depend on it.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping, Sequence
from typing import Any

from talkvid_assets.core.evaluate.extractors import METRICS_BY_NAME
from talkvid_assets.core.evaluate.harness import OVERALL

NO_CHART = "no chart: matplotlib is not installed (pip install matplotlib)"


def _cell(row: Mapping[str, Any]) -> str:
    if row["value"] is None:
        return f"- (n={row['clips']})"
    return f"{row['value']:.3f} [{row['low']:.3f}, {row['high']:.3f}] n={row['clips']}"


def metric_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Strata as rows, metrics as columns: value [95% interval] and the clips behind it."""
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    extractors = {row["metric"]: row["extractor"] for row in rows}
    headers = ["dimension/stratum"] + [
        f"{name} ({'↓' if METRICS_BY_NAME[name].lower_is_better else '↑'}, {extractors[name]})"
        for name in metrics
    ]
    by_group: dict[str, dict[str, str]] = {}
    for row in rows:
        group = OVERALL if row["dimension"] == OVERALL else f"{row['dimension']}/{row['stratum']}"
        by_group.setdefault(group, {})[row["metric"]] = _cell(row)
    lines = [
        [group, *(cells.get(name, "") for name in metrics)] for group, cells in by_group.items()
    ]
    return _aligned(headers, lines)


def _aligned(headers: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [headers, *lines]) for i in range(len(headers))]
    render = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              for line in [headers, *lines]]  # fmt: skip
    return "\n".join([render[0], "-" * len(render[0]), *render[1:]])


def gap_table(gaps: Sequence[Mapping[str, Any]]) -> str:
    """Per dimension and metric: best and worst stratum and the gap (the paper's finding)."""
    headers = ["dimension", "metric", "best stratum", "worst stratum", "gap"]
    lines = [
        [
            gap["dimension"],
            gap["metric"],
            f"{gap['best_stratum']} ({gap['best']:.3f})",
            f"{gap['worst_stratum']} ({gap['worst']:.3f})",
            f"{gap['gap']:.3f}",
        ]
        for gap in gaps
    ]
    return _aligned(headers, lines)


def chart_png(rows: Sequence[Mapping[str, Any]], title: str) -> bytes | None:
    """One panel per metric: each stratum's value with its interval, grouped by dimension;
    None when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [name for name in dict.fromkeys(row["metric"] for row in rows)]
    figure, axes = plt.subplots(len(metrics), 1, figsize=(10, 2.6 * len(metrics)), squeeze=False)
    for axis, name in zip(axes[:, 0], metrics, strict=True):
        shown = [row for row in rows if row["metric"] == name and row["value"] is not None]
        labels = [f"{row['dimension']}/{row['stratum']}" for row in shown]
        values = [row["value"] for row in shown]
        errors = [
            [row["value"] - row["low"] for row in shown],
            [row["high"] - row["value"] for row in shown],
        ]
        axis.bar(range(len(shown)), values, yerr=errors, capsize=3)
        axis.set_xticks(range(len(shown)), labels, rotation=45, ha="right", fontsize=7)
        axis.set_ylabel(name)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
