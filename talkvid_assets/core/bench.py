"""TalkVid-Bench selection (spec, "TalkVid-Bench"), as pure functions over labelled clips.

The released bench holds 500 clips, each in exactly one of four dimensions (age, gender,
ethnicity, language), with per-stratum counts read from the project page's charts. How clips were
chosen inside a stratum is not published, so the rules here are this project's choices:

- **Eligibility.** A clip serves a dimension only when its label there is one of the vocabulary's
  spellings (ASCII hyphens, as in the spec); a None, empty or unknown label makes it ineligible for
  that dimension alone. The dataset statistics spell Black as "African", so "African" is read as
  ``Black``. Any language outside the fourteen named ones counts as ``Other``. Labels are matched
  exactly; reporting misspellings is the manifest validator's job, not a silent fix here.
- **Known speakers only.** A clip without ``speaker_id`` is never benched and never trained on:
  nothing proves its speaker is absent from the other side, and speaker-disjointness is the point
  of holding a bench out.
- **Reproducible.** Clips are sorted by ``clip_id`` and shuffled once with ``random.Random(seed)``;
  that shuffled position (the rank) breaks every tie, so the same seed and clips in any order give
  the same bench.
- **Scarce strata first.** Clips are picked one at a time, always for the stratum with the lowest
  ratio of still-unused eligible clips to clips still needed (ties in table order). A clip that
  could serve two dimensions is therefore spent where it is scarcer, and ratios are recomputed
  after every pick because each pick drains every stratum the clip belongs to. This is greedy, not
  an optimal assignment; with the dataset's sizes the quotas are far from tight.
- **Speakers spread.** Within a stratum the next clip is the one whose speaker has the fewest clips
  in the bench so far (any dimension), then the lowest rank: a round-robin over speakers, so one
  prolific speaker cannot fill a stratum and bench speakers stay few clips each.
- **Never padded.** A stratum without enough eligible clips is filled as far as it goes; the gap
  is reported by :func:`shortfall`, never filled with another label.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, TypedDict

AGE_GROUPS = ("0-19", "19-30", "31-45", "46-60", "60+")
GENDERS = ("Female", "Male")
ETHNICITIES = ("Black", "Asian", "White")
# The fourteen named languages; every other language is benched as OTHER_LANGUAGE.
LANGUAGES = (
    "English",
    "Arabic",
    "Korean",
    "Portuguese",
    "Spanish",
    "Russian",
    "Chinese",
    "Polish",
    "Thai",
    "French",
    "Japanese",
    "German",
    "Hindi",
    "Italian",
)
OTHER_LANGUAGE = "Other"
# Spellings found in the dataset statistics for a bench stratum.
ETHNICITY_ALIASES = {"African": "Black"}

# Bench dimension -> the clip key holding its label.
DIMENSIONS = {
    "age": "age_group",
    "gender": "gender",
    "ethnicity": "ethnicity",
    "language": "language",
}

Quotas = Mapping[str, Mapping[str, int]]

# Versioned per-stratum counts; add a version rather than edit a released one.
QUOTAS: dict[str, dict[str, dict[str, int]]] = {
    "talkvid-v1": {
        # From the chart's percentages, so each count may be off by one.
        "age": {"0-19": 5, "19-30": 26, "31-45": 24, "46-60": 25, "60+": 25},
        "gender": {"Female": 52, "Male": 48},
        "ethnicity": {"Black": 34, "Asian": 33, "White": 33},
        "language": {
            "English": 15,
            "Arabic": 15,
            "Korean": 14,
            "Portuguese": 14,
            "Spanish": 14,
            "Russian": 14,
            "Chinese": 13,
            "Polish": 13,
            "Thai": 13,
            "French": 12,
            "Japanese": 12,
            "German": 12,
            "Hindi": 12,
            "Italian": 12,
            OTHER_LANGUAGE: 10,
        },
    }
}
DEFAULT_QUOTAS = "talkvid-v1"
EQUAL = "equal"


class BenchPick(TypedDict):
    """One benched clip and the single (dimension, stratum) it was chosen for."""

    clip_id: str
    dimension: str
    stratum: str
    speaker_id: str


def equal_quotas(base: Quotas) -> dict[str, dict[str, int]]:
    """Each dimension's total of ``base`` split evenly over its strata.

    The remainder goes one each to the first strata in table order, so the split is deterministic
    and no two strata differ by more than one (ethnicity 100 -> Black 34, Asian 33, White 33).
    """
    split = {}
    for dimension, strata in base.items():
        share, remainder = divmod(sum(strata.values()), len(strata))
        split[dimension] = {
            stratum: share + (index < remainder) for index, stratum in enumerate(strata)
        }
    return split


def resolve_quotas(quotas: str | Quotas) -> dict[str, dict[str, int]]:
    """The quota table meant by a version name, ``"equal"``, or a dimension->stratum->count map.

    A copy is returned so callers can count down without touching the versioned tables; unknown
    dimensions and negative counts are rejected early rather than silently producing no bench.
    """
    if isinstance(quotas, str):
        if quotas == EQUAL:
            return equal_quotas(QUOTAS[DEFAULT_QUOTAS])
        if quotas not in QUOTAS:
            known = ", ".join([*QUOTAS, EQUAL])
            raise ValueError(f"unknown quota table {quotas!r} (known: {known})")
        quotas = QUOTAS[quotas]
    unknown = set(quotas) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown bench dimensions {sorted(unknown)} (known: {list(DIMENSIONS)})")
    table = {dimension: dict(strata) for dimension, strata in quotas.items()}
    if any(count < 0 for strata in table.values() for count in strata.values()):
        raise ValueError("quota counts must be >= 0")
    return table


def stratum_of(dimension: str, label: Any) -> str | None:
    """The bench stratum a raw label falls in for ``dimension``, or None when it is ineligible."""
    if not isinstance(label, str) or not label:
        return None
    if dimension == "language":
        return label if label in LANGUAGES else OTHER_LANGUAGE
    if dimension == "ethnicity":
        label = ETHNICITY_ALIASES.get(label, label)
    vocabulary = {"age": AGE_GROUPS, "gender": GENDERS, "ethnicity": ETHNICITIES}[dimension]
    return label if label in vocabulary else None


def clip_strata(clip: Mapping[str, Any]) -> dict[str, str]:
    """Every dimension a clip is eligible for, with its stratum there."""
    strata = {}
    for dimension, key in DIMENSIONS.items():
        stratum = stratum_of(dimension, clip.get(key))
        if stratum is not None:
            strata[dimension] = stratum
    return strata


def _key(pick: Mapping[str, Any]) -> tuple[str, str]:
    """A bench row's (dimension, stratum), the key quotas are counted under."""
    return pick["dimension"], pick["stratum"]


def _ranked(clips: Iterable[Mapping[str, Any]], seed: int) -> list[Mapping[str, Any]]:
    """Bench-eligible clips in the seed's order, independent of the order they were given in."""
    ordered = sorted(clips, key=lambda clip: clip["clip_id"])
    for first, second in itertools.pairwise(ordered):
        if first["clip_id"] == second["clip_id"]:
            raise ValueError(f"clip_id {first['clip_id']!r} appears more than once")
    random.Random(seed).shuffle(ordered)
    return [clip for clip in ordered if clip.get("speaker_id") is not None]


class _Selection:
    """Counting state of one greedy selection: pools, what is left, what each speaker gave."""

    def __init__(self, ranked: list[Mapping[str, Any]], table: dict[str, dict[str, int]]):
        self.clips = ranked
        self.need = {
            (dimension, stratum): count
            for dimension, strata in table.items()
            for stratum, count in strata.items()
            if count > 0
        }
        self.order = {key: index for index, key in enumerate(self.need)}
        self.strata = [clip_strata(clip) for clip in ranked]
        # Heap entries: (speaker's bench count when pushed, rank); ranks index ``ranked``.
        self.pools: dict[tuple[str, str], list[tuple[int, int]]] = {key: [] for key in self.need}
        for rank, strata in enumerate(self.strata):
            for key in strata.items():
                if key in self.pools:
                    self.pools[key].append((0, rank))  # ascending rank: already a heap
        self.available = {key: len(pool) for key, pool in self.pools.items()}
        self.used: set[int] = set()
        self.speaker_use: Counter[str] = Counter()

    def scarcest(self) -> tuple[str, str] | None:
        """The open stratum with the fewest unused eligible clips per clip still needed."""
        open_strata = [key for key, need in self.need.items() if need and self.available[key]]
        if not open_strata:
            return None
        return min(
            open_strata,
            key=lambda key: (Fraction(self.available[key], self.need[key]), self.order[key]),
        )

    def next_in(self, key: tuple[str, str]) -> int:
        """Rank of the stratum's unused clip whose speaker is least benched, lowest rank first.

        Speaker counts only grow, so a popped entry with an outdated count is pushed back with the
        current one (a lazy heap) instead of re-sorting the pool after every pick.
        """
        pool = self.pools[key]
        while True:
            count, rank = heapq.heappop(pool)
            if rank in self.used:
                continue
            current = self.speaker_use[self.clips[rank]["speaker_id"]]
            if current == count:
                return rank
            heapq.heappush(pool, (current, rank))

    def take(self, key: tuple[str, str], rank: int) -> BenchPick:
        """Bench the clip for ``key`` and drain it from every stratum it could have served."""
        clip = self.clips[rank]
        self.used.add(rank)
        self.speaker_use[clip["speaker_id"]] += 1
        for other in self.strata[rank].items():
            if other in self.available:
                self.available[other] -= 1
        self.need[key] -= 1
        dimension, stratum = key
        return BenchPick(
            clip_id=clip["clip_id"],
            dimension=dimension,
            stratum=stratum,
            speaker_id=clip["speaker_id"],
        )


def select_bench(
    clips: Iterable[Mapping[str, Any]], seed: int = 0, quotas: str | Quotas = DEFAULT_QUOTAS
) -> list[BenchPick]:
    """A TalkVid-Bench: each clip at most once, in one dimension, every quota met where possible.

    ``clips`` are dicts with ``clip_id``, ``speaker_id``, ``age_group``, ``gender``, ``ethnicity``
    and ``language`` (other keys ignored). ``quotas`` is a version of :data:`QUOTAS`, ``"equal"``
    or a dimension->stratum->count mapping. The module docstring states the selection rules; the
    result is sorted by dimension and stratum in table order, then by ``clip_id``.
    """
    table = resolve_quotas(quotas)
    selection = _Selection(_ranked(clips, seed), table)
    picks = []
    while (key := selection.scarcest()) is not None:
        picks.append(selection.take(key, selection.next_in(key)))
    return sorted(picks, key=lambda pick: (selection.order[_key(pick)], pick["clip_id"]))


def shortfall(
    selected: Iterable[Mapping[str, Any]], quotas: str | Quotas = DEFAULT_QUOTAS
) -> dict[str, dict[str, int]]:
    """Clips missing per dimension and stratum against ``quotas``; only nonzero entries appear.

    An empty result means the bench met every quota, so callers can assert on it or record it.
    """
    counts = Counter(_key(pick) for pick in selected)
    missing: dict[str, dict[str, int]] = {}
    for dimension, strata in resolve_quotas(quotas).items():
        for stratum, count in strata.items():
            gap = count - counts[(dimension, stratum)]
            if gap > 0:
                missing.setdefault(dimension, {})[stratum] = gap
    return missing


def training_split(
    clips: Iterable[Mapping[str, Any]], bench: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Sorted ids of the clips whose speaker is known and absent from the bench.

    Holding out whole speakers keeps evaluation honest (a model never sees a benched face). A clip
    without ``speaker_id`` is left out: its speaker cannot be proven absent from the bench.
    """
    bench_speakers = {pick["speaker_id"] for pick in bench}
    return sorted(
        clip["clip_id"]
        for clip in clips
        if clip.get("speaker_id") is not None and clip["speaker_id"] not in bench_speakers
    )
