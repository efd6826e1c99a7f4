"""How the `talkvid` command shows things: progress lines, tables, cells. Values in, text out:
the queries are core's (core.summary), and nothing here reads or writes the home."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talkvid_assets.core.failures import describe

if TYPE_CHECKING:
    from talkvid_assets.core.models import Model
    from talkvid_assets.core.summary import ClipCounts, VideoState
    from talkvid_assets.launch import RunOutcome


def progress_line(
    outcome: RunOutcome, key: str, state: VideoState | None, counts: ClipCounts
) -> str:
    """A video's line once its run ended: its state, clips judged and passed, the run."""
    status = state.status if state else "missing"
    name = Path(state.source_path or "?").name if state else "?"
    result = "ok" if outcome.success else f"RUN FAILED: {outcome.error}"
    return (
        f"{key} {status:8s} clips={counts.clips} passed={counts.passed} "
        f"{outcome.seconds:.1f}s run={outcome.run_id[:8]} {result}  {name}"
    )


def video_table(states: Mapping[str, VideoState], counts: Mapping[str, ClipCounts]) -> str:
    """The demo's closing table: each video's state, clips judged and passed (none where
    ``counts`` has no entry), and why it was rejected."""
    lines = [f"{'video':24s} {'status':8s} {'clips':>5s} {'passed':>6s}  reason"]
    for key, video in states.items():
        name = Path(video.source_path or key).name
        count = counts.get(key)
        clips, passed = (count.clips, count.passed) if count else (0, 0)
        reasons = describe(video.reject_reasons)
        lines.append(f"{name[:24]:24s} {video.status:8s} {clips:5d} {passed:6d}  {reasons}")
    return "\n".join(lines)


def demo_banner(overrides: Mapping[str, float]) -> str:
    """What the demo judges with: the paper's clip thresholds, unless curation.yaml overrides
    some (then named), on sources the demo profile admits."""
    thresholds = "paper clip thresholds"
    if overrides:
        shown = ", ".join(f"{key} {value}" for key, value in sorted(overrides.items()))
        thresholds = f"paper clip thresholds except {shown} (curation.yaml)"
    return f"demo profile: {thresholds}; sources down to 128 px and without audio admitted"


def model_table(models: Iterable[Model], models_dir: Path) -> str:
    """Each model with its stage, whether its weights are in ``models_dir``, size and source."""
    lines = [f"{'name':22s} {'stage':12s} {'state':8s} {'size':>10s}  licence; source"]
    for model in models:
        state = "present" if model.present(models_dir) else "missing"
        size = model.size(models_dir)
        shown = "in package" if model.package else "?" if size is None else f"{size / 1e6:.1f} MB"
        lines.append(
            f"{model.name:22s} {model.stage:12s} {state:8s} {shown:>10s}  {model.licence}; "
            f"{model.source}" + (f" [{model.note}]" if model.note else "")
        )
    return "\n".join(lines)


def calibration_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Each check's precision and recall against people's verdicts, tab-separated."""
    lines = ["check\tlabels\tprecision\trecall"]
    for row in rows:
        shown = ["-" if row[k] is None else f"{row[k]:.2f}" for k in ("precision", "recall")]
        lines.append(f"{row['check']}\t{row['labels']}\t" + "\t".join(shown))
    return "\n".join(lines)


def cell(value: object) -> str:
    """A value as text; a float with 15 significant digits, the most a double always keeps,
    so a sum like 0.1 + 0.2 prints as 0.3 rather than 0.30000000000000004."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".15g")
    return str(value)
