"""TalkVid-Bench selection on synthetic labelled clips: quotas, reproducibility, eligibility."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import talkvid_assets
from talkvid_assets.core.bench import (
    AGE_GROUPS,
    ETHNICITIES,
    GENDERS,
    LANGUAGES,
    OTHER_LANGUAGE,
    QUOTAS,
    resolve_quotas,
    select_bench,
    shortfall,
    training_split,
)

RELEASED = QUOTAS["talkvid-v1"]


def labelled_clips(speakers: int = 800, per_speaker: int = 3, seed: int = 7) -> list[dict]:
    """Clip rows like a curated manifest: speaker-level demographics, a few missing labels."""
    rng = random.Random(seed)
    spoken = [*LANGUAGES, "Dutch", "Swahili"]
    rows = []
    for speaker in range(speakers):
        person = {
            "age_group": rng.choice(AGE_GROUPS),
            "gender": rng.choice(GENDERS),
            "ethnicity": rng.choice(ETHNICITIES),
            "language": rng.choice(spoken),
        }
        for index in range(per_speaker):
            row = {"clip_id": f"s{speaker:04d}_c{index}", "speaker_id": f"s{speaker:04d}"}
            row |= {key: None if rng.random() < 0.05 else value for key, value in person.items()}
            rows.append(row)
    return rows


def counts(bench: list[dict]) -> dict[str, dict[str, int]]:
    """Bench rows per dimension and stratum, shaped like a quota table."""
    table: dict[str, dict[str, int]] = {}
    for (dimension, stratum), count in Counter(
        (pick["dimension"], pick["stratum"]) for pick in bench
    ).items():
        table.setdefault(dimension, {})[stratum] = count
    return table


@pytest.fixture(scope="module")
def clips() -> list[dict]:
    return labelled_clips()


@pytest.fixture(scope="module")
def bench(clips) -> list[dict]:
    return select_bench(clips)


def test_released_quota_totals():
    totals = {dimension: sum(strata.values()) for dimension, strata in RELEASED.items()}
    assert totals == {"age": 105, "gender": 100, "ethnicity": 100, "language": 195}
    assert sum(totals.values()) == 500
    assert tuple(RELEASED["age"]) == AGE_GROUPS
    assert tuple(RELEASED["gender"]) == GENDERS
    assert tuple(RELEASED["ethnicity"]) == ETHNICITIES
    assert tuple(RELEASED["language"]) == (*LANGUAGES, OTHER_LANGUAGE)


def test_enough_clips_give_exactly_the_released_quotas(clips, bench):
    assert len(clips) >= 2000
    assert talkvid_assets.select_bench is select_bench
    assert counts(bench) == RELEASED
    assert shortfall(bench) == {}


def test_each_clip_once_and_in_a_stratum_it_is_labelled_with(clips, bench):
    assert len({pick["clip_id"] for pick in bench}) == len(bench) == 500
    rows = {row["clip_id"]: row for row in clips}
    label_key = {"age": "age_group", "gender": "gender", "ethnicity": "ethnicity"}
    for pick in bench:
        row = rows[pick["clip_id"]]
        assert pick["speaker_id"] == row["speaker_id"]
        if pick["dimension"] in label_key:
            assert row[label_key[pick["dimension"]]] == pick["stratum"]
        elif pick["stratum"] == OTHER_LANGUAGE:
            assert row["language"] in ("Dutch", "Swahili")
        else:
            assert row["language"] == pick["stratum"]


def test_same_seed_any_order_same_bench_other_seed_differs(clips, bench):
    shuffled = clips[::-1]
    random.Random(1).shuffle(shuffled)
    assert select_bench(shuffled, seed=0) == bench
    assert select_bench(iter(clips), seed=5) == select_bench(shuffled, seed=5)
    assert select_bench(clips, seed=1) != bench


def test_speakers_spread_and_disjoint_from_training(clips, bench):
    speakers = Counter(pick["speaker_id"] for pick in bench)
    assert max(speakers.values()) == 1  # 800 speakers: no one needs to appear twice
    training = training_split(clips, bench)
    assert len(training) == len(clips) - 3 * len(speakers)
    rows = {row["clip_id"]: row for row in clips}
    assert not {rows[clip_id]["speaker_id"] for clip_id in training} & set(speakers)


def test_one_prolific_speaker_does_not_fill_a_stratum():
    rows = [
        {"clip_id": f"a{index}", "speaker_id": "a", "gender": "Female"} for index in range(10)
    ] + [{"clip_id": f"{name}0", "speaker_id": name, "gender": "Female"} for name in "bc"]
    for seed in range(5):
        bench = select_bench(rows, seed=seed, quotas={"gender": {"Female": 4}})
        assert Counter(pick["speaker_id"] for pick in bench) == {"a": 2, "b": 1, "c": 1}


def test_equal_split(clips):
    equal = resolve_quotas("equal")
    assert equal["age"] == dict.fromkeys(AGE_GROUPS, 21)
    assert equal["gender"] == {"Female": 50, "Male": 50}
    assert equal["ethnicity"] == {"Black": 34, "Asian": 33, "White": 33}  # remainder goes first
    assert equal["language"] == dict.fromkeys((*LANGUAGES, OTHER_LANGUAGE), 13)
    assert counts(select_bench(clips, quotas="equal")) == equal


def test_short_stratum_is_reported_never_padded(clips):
    young = [index for index, row in enumerate(clips) if row["age_group"] == "0-19"]
    short = [dict(row) for row in clips]
    for index in young[3:]:
        short[index]["age_group"] = None
    bench = select_bench(short)
    assert counts(bench)["age"] == {**RELEASED["age"], "0-19": 3}
    assert shortfall(bench) == {"age": {"0-19": 2}}


def test_scarce_clips_go_where_they_are_scarcer():
    # Both young clips also speak English; only they can fill 0-19, while English has 3 others.
    young = [
        {"clip_id": f"y{n}", "speaker_id": f"y{n}", "age_group": "0-19", "language": "English"}
        for n in range(2)
    ]
    english = [{"clip_id": f"e{n}", "speaker_id": f"e{n}", "language": "English"} for n in range(3)]
    quotas = {"language": {"English": 3}, "age": {"0-19": 2}}
    for seed in range(10):
        bench = select_bench(young + english, seed=seed, quotas=quotas)
        assert counts(bench) == quotas, seed


def test_african_counts_as_black():
    rows = [
        {"clip_id": f"c{index}", "speaker_id": f"s{index}", "ethnicity": "African"}
        for index in range(40)
    ]
    bench = select_bench(rows)
    assert counts(bench) == {"ethnicity": {"Black": 34}}
    assert shortfall(bench)["ethnicity"] == {"Asian": 33, "White": 33}


def test_unknown_language_counts_as_other():
    rows = [
        {"clip_id": f"c{index}", "speaker_id": f"s{index}", "language": "Tagalog"}
        for index in range(12)
    ]
    assert counts(select_bench(rows)) == {"language": {OTHER_LANGUAGE: 10}}


def test_missing_or_unknown_labels_and_speakers_are_ineligible():
    rows = [
        {"clip_id": "missing", "speaker_id": "s1"},
        {
            "clip_id": "none",
            "speaker_id": "s2",
            "age_group": None,
            "gender": None,
            "language": None,
        },
        {"clip_id": "empty", "speaker_id": "s3", "gender": "", "language": ""},
        {"clip_id": "unknown", "speaker_id": "s4", "age_group": "20-30", "gender": "female"},
        {"clip_id": "anonymous", "speaker_id": None, "gender": "Male", "language": "Thai"},
    ]
    bench = select_bench(rows)
    assert bench == []
    assert shortfall(bench) == RELEASED
    assert training_split(rows, bench) == ["empty", "missing", "none", "unknown"]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="unknown quota table"):
        select_bench([], quotas="talkvid-v0")
    with pytest.raises(ValueError, match="unknown bench dimensions"):
        select_bench([], quotas={"accent": {"British": 3}})
    with pytest.raises(ValueError, match=">= 0"):
        select_bench([], quotas={"gender": {"Male": -1}})
    with pytest.raises(ValueError, match="more than once"):
        select_bench([{"clip_id": "c", "speaker_id": "s"}] * 2)
