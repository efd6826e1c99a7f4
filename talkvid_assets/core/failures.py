"""Why a source or a clip was turned down, as values: the check, how it failed, the measured
value, the threshold it missed and the backend behind the value.

Verdicts keep their failures as data (a LIST of STRUCTs in Parquet and in the ``videos`` and
``clips`` views), so readers count, filter and explain them by field (``check``, ``kind``) and
SQL can ask for ``[r.check FOR r IN reject_reasons]``; text exists only for people
(:meth:`Failure.text`, :func:`describe`), never to be parsed back.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    """How a check failed: the first three for a value judged against a profile, the others
    for a source as a whole (a video that never had clips, or whose clips miss a part)."""

    THRESHOLD = "threshold"  # the value is on the wrong side of the threshold (see ``rule``)
    MISSING = "missing"  # nothing to judge: a score not computed, no audio track, no face
    UNJUDGED = "unjudged"  # the profile has no threshold for the backend behind the value
    NOT_INGESTED = "not ingested"  # a partition without a registered source
    SOURCE_GONE = "source gone"
    SOURCE_CHANGED = "source changed"  # the file at the registered path is other content
    NOT_A_VIDEO = "not a video"  # the probe refused the file
    DECODE_FAILED = "decode failed"
    TRUNCATED = "truncated"  # the decode stopped short: clips cover only a part


# How a value may have to compare to its threshold: the comparison a profile applies and the
# words a failure records are one entry.
RULES: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "|x| <=": lambda value, limit: abs(value) <= limit,
}


@dataclass(frozen=True)
class Failure:
    """One failed check. ``check`` names what was checked: a column of the ``clips`` view
    (``quality_score``), a fact of the probe (``short_side``), a stage whose scores are missing
    (``head_detail``), or for a source as a whole ``source``, ``probe`` or ``decode``.
    ``detail`` holds what has no field (an error message, a path)."""

    check: str
    kind: FailureKind = FailureKind.THRESHOLD
    value: float | None = None
    rule: str | None = None  # how the value must compare to the threshold: a key of RULES
    threshold: float | None = None
    backend: str | None = None
    detail: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Failure:
        """A failure as stored (a struct read back from Parquet or DuckDB)."""
        return cls(**{**row, "kind": FailureKind(row["kind"])})

    def row(self) -> dict[str, Any]:
        """The failure as stored: a struct of plain values."""
        return {**dataclasses.asdict(self), "kind": str(self.kind)}

    def text(self) -> str:
        """One line for people: ``quality_score=4.5 (needs >= 5 for dover)``."""
        detail = f": {self.detail}" if self.detail else ""
        if self.kind is FailureKind.THRESHOLD:
            needs = f"needs {self.rule} {_number(self.threshold)}"
            backend = f" for {self.backend}" if self.backend else ""
            return f"{self.check}={_number(self.value)} ({needs}{backend}{detail})"
        if self.kind is FailureKind.MISSING:
            backend = f" (backend {self.backend!r})" if self.backend else ""
            return f"{self.check} missing{backend}{detail}"
        if self.kind is FailureKind.UNJUDGED:
            return f"{self.check} unjudged: profile has no threshold for backend {self.backend!r}"
        return f"{self.kind}{detail}"


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def judged(
    check: str,
    value: float,
    rule: str,
    threshold: float,
    backend: str | None = None,
    detail: str | None = None,
) -> list[Failure]:
    """Nothing when ``value`` meets ``rule threshold`` (a key of :data:`RULES`), else the one
    failure saying so: a list, so a profile adds up its checks with ``+=``."""
    if RULES[rule](value, threshold):
        return []
    return [Failure(check, FailureKind.THRESHOLD, value, rule, threshold, backend, detail)]


def describe(failures: Iterable[Failure | Mapping[str, Any]] | None) -> str:
    """Stored or fresh failures as one line for people (empty when there are none)."""
    return "; ".join(
        (failure if isinstance(failure, Failure) else Failure.of(failure)).text()
        for failure in failures or ()
    )
