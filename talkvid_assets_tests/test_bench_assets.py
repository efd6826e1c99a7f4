"""TalkVid-Bench through Dagster on a real instance and real tables: 2,400 labelled passing
clips (rows written directly, no video) give the released quotas, a training split sharing no
speaker, views, pictures and checks; a short stratum gives a shortfall and a failing check."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from dagster import AssetKey, DagsterInstance

from talkvid_assets.core.bench import AGE_GROUPS, ETHNICITIES, GENDERS, LANGUAGES, QUOTAS
from talkvid_assets.core.store import CORPUS, Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets_tests.conftest import configure, project_instance

pytestmark = pytest.mark.slow

LANGUAGE_CHOICES = (*LANGUAGES, "Vietnamese")


def labelled_corpus(store: Store, videos: int, clips_per_video: int, young: int | None) -> None:
    """Passing clips with labels and speakers: one speaker per video. ``young`` caps how many
    videos are labelled 0-19 (None: no cap)."""
    rng = random.Random(7)
    for index in range(videos):
        video = f"{index:016x}"
        age = rng.choice(AGE_GROUPS)
        if age == "0-19" and young is not None:
            age = "0-19" if young > 0 else "19-30"
            young -= 1 if age == "0-19" else 0
        labels = {
            "age_group": age,
            "gender": rng.choice(GENDERS),
            "ethnicity": rng.choice(ETHNICITIES),
            "language": rng.choice(LANGUAGE_CHOICES),
        }
        clips = [f"{video}-{n:04d}" for n in range(clips_per_video)]
        base = {"video_id": video, "profile": "paper@v1", "config_digest": "test"}
        store.write("filtered_clips", video, [
            {**base, "clip_id": clip, "passed": True, "reject_reasons": []} for clip in clips
        ])  # fmt: skip
        store.write("annotations", video, [
            {"clip_id": clip, "video_id": video, **labels} for clip in clips
        ])  # fmt: skip
    speakers = [
        {"clip_id": row["clip_id"], "video_id": row["video_id"], "labelled": False,
         "speaker_id": f"spk-{row['video_id']}"}
        for row in store.query("SELECT clip_id, video_id FROM annotations")
    ]  # fmt: skip
    store.write("speakers", CORPUS, speakers)


def materialize_bench(store: Store, instance: DagsterInstance):
    defs = build_definitions(store.home)
    job = defs.resolve_implicit_global_asset_job_def()
    results = [
        job.execute_in_process(
            instance=instance, asset_selection=[AssetKey("bench_strata")], raise_on_error=False
        )
    ]
    results.append(
        job.execute_in_process(
            instance=instance, asset_selection=[AssetKey("training_split")], raise_on_error=False
        )
    )
    return results


@pytest.fixture
def home(tmp_path):
    configure(tmp_path / "home", "paper")
    return Store(tmp_path / "home")


def test_the_bench_meets_the_released_quotas_and_the_split_shares_no_speaker(home, tmp_path):
    labelled_corpus(home, videos=800, clips_per_video=3, young=None)
    with project_instance(tmp_path / "dagster") as instance:
        results = materialize_bench(home, instance)
    assert all(result.success for result in results)
    (check,) = results[0].get_asset_check_evaluations()
    assert check.passed, check.metadata
    counts = Counter(
        (row["dimension"], row["stratum"]) for row in home.query("SELECT * FROM bench_strata")
    )
    expected = {(d, s): n for d, strata in QUOTAS["talkvid-v1"].items() for s, n in strata.items()}
    assert dict(counts) == expected
    assert sum(counts.values()) == 500
    shared = home.query(
        "SELECT count(*) AS n FROM training_split t JOIN bench_strata b USING (speaker_id)"
    )
    assert shared == [{"n": 0}]
    assert home.query("SELECT count(*) AS n FROM training_split")[0]["n"] > 0
    assert (home.home / "reports" / "bench_language.png").read_bytes()[:4] == b"\x89PNG"


def test_a_short_stratum_materializes_reports_the_shortfall_and_fails_its_check(home, tmp_path):
    labelled_corpus(home, videos=800, clips_per_video=3, young=1)  # 3 clips of one 0-19 speaker
    with project_instance(tmp_path / "dagster") as instance:
        results = materialize_bench(home, instance)
        bench = results[0]
        assert bench.success, "a shortfall still materializes"
        (check,) = bench.get_asset_check_evaluations()
        assert not check.passed
        assert check.metadata["shortfall"].value.splitlines() == ["age/0-19: 3 of 5 clips"
            " (not enough passing clips with this label and a known speaker)"]  # fmt: skip
        (materialization,) = bench.asset_materializations_for_node("bench_strata")
        assert materialization.metadata["age shortfall"].value == {"0-19": 2}
    strata = home.query("SELECT stratum FROM bench_strata WHERE dimension = 'age'")
    assert Counter(row["stratum"] for row in strata)["0-19"] == 3, "never padded"
