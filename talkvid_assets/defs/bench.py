"""Stage 6: labels and TalkVid-Bench. Per video, the passing clips' annotations (manifest
labels, face descriptor); over the corpus, speaker ids; per bench dimension, the strata; and the
training split that shares no speaker with the bench.

The corpus-wide assets are unpartitioned, so automation updates them together in one run after
the videos' runs (defs.automation.CORPUS_AUTOMATION), and the CLI does the same after curating.
"""

from collections import Counter
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    DataVersion,
    MaterializeResult,
    asset,
    asset_check,
)

from talkvid_assets.core.bench import DIMENSIONS, resolve_quotas, shortfall
from talkvid_assets.core.config import fingerprint
from talkvid_assets.core.labelling import (
    annotate,
    assign_speakers,
    corpus_bench,
    write_training_split,
)
from talkvid_assets.core.pictures import quota_bars_png
from talkvid_assets.core.store import CORPUS
from talkvid_assets.defs.automation import CORPUS_AUTOMATION, VIDEO_AUTOMATION
from talkvid_assets.defs.metadata import picture
from talkvid_assets.defs.names import (
    ANNOTATIONS,
    BENCH_GROUP,
    BENCH_STRATA,
    FILTERED_CLIPS,
    SPEAKERS,
    TRAINING_SPLIT,
    config_asset,
)
from talkvid_assets.defs.partitions import backfill_policy, video_partitions
from talkvid_assets.defs.per_partition import record_partitions
from talkvid_assets.defs.resources import TalkvidResource

REPORTS_DIR = "reports"


def build_bench() -> list[AssetsDefinition]:
    @asset(
        partitions_def=video_partitions,
        backfill_policy=backfill_policy,
        group_name=BENCH_GROUP,
        deps=[FILTERED_CLIPS, config_asset("language")],
        kinds={"duckdb", "dlib"},
        code_version="annotations-2-language-id",
        automation_condition=VIDEO_AUTOMATION,
    )
    def annotations(context: AssetExecutionContext, talkvid: TalkvidResource) -> MaterializeResult:
        """Each passing clip's labels (the source's manifest row, else the language its audio
        says), and its face descriptor."""
        store = talkvid.store()
        language = talkvid.language_id()
        metadata = {}
        for key, rows in annotate(store, context.partition_keys, language).items():
            metadata[key] = {
                "clips": len(rows),
                "with_face": sum(row["face_descriptor"] is not None for row in rows),
                "with_language": sum(row["language"] is not None for row in rows),
                "language_from_audio": sum(row["language_source"] == "audio" for row in rows),
                "language_backend": language.tag,
            }
        digests = {key: store.digest("annotations", key) for key in context.partition_keys}
        return MaterializeResult(
            data_version=record_partitions(context, store, ANNOTATIONS, digests, metadata)
        )

    @asset(
        group_name=BENCH_GROUP,
        deps=[ANNOTATIONS],
        kinds={"duckdb"},
        code_version="speakers-1",
        automation_condition=CORPUS_AUTOMATION,
    )
    def speakers(talkvid: TalkvidResource) -> MaterializeResult:
        """A speaker id per annotated clip, clustered across the corpus (incrementally)."""
        store = talkvid.store()
        store.compact()  # the corpus-wide run merges the videos' small files (core.compaction)
        counts = assign_speakers(store)
        return MaterializeResult(
            metadata=counts, data_version=DataVersion(store.digest("speakers", CORPUS))
        )

    @asset(
        group_name=BENCH_GROUP,
        deps=[SPEAKERS, config_asset("bench")],
        kinds={"duckdb"},
        code_version="bench-2",  # one asset over every dimension
        automation_condition=CORPUS_AUTOMATION,
    )
    def bench_strata(talkvid: TalkvidResource) -> MaterializeResult:
        """TalkVid-Bench: the clips of each dimension, per stratum, to the configured quotas."""
        store, config = talkvid.store(), talkvid.config()
        picks = corpus_bench(store, config)
        quotas = resolve_quotas(config.bench_quotas)
        metadata: dict[str, Any] = {"quotas": config.bench_quotas, "seed": config.bench_seed}
        for dimension in DIMENSIONS:
            mine = [pick for pick in picks if pick["dimension"] == dimension]
            store.write("bench_strata", dimension, mine)
            chosen = Counter(pick["stratum"] for pick in mine)
            bars = quota_bars_png(chosen, quotas[dimension], f"TalkVid-Bench: {dimension}")
            report = store.home / REPORTS_DIR / f"bench_{dimension}.png"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_bytes(bars)
            missing = shortfall(mine, {dimension: quotas[dimension]}).get(dimension, {})
            metadata |= {
                f"{dimension} clips": len(mine),
                f"{dimension} speakers": len({pick["speaker_id"] for pick in mine}),
                f"{dimension} shortfall": missing or "none",
                f"{dimension} balance": picture(bars, f"{dimension}: clips against the quota"),
                f"{dimension} report": str(report),
            }
        version = fingerprint([store.digest("bench_strata", dimension) for dimension in DIMENSIONS])
        return MaterializeResult(metadata=metadata, data_version=DataVersion(version))

    @asset(
        group_name=BENCH_GROUP,
        deps=[BENCH_STRATA],
        kinds={"duckdb"},
        code_version="bench-1",
        automation_condition=CORPUS_AUTOMATION,
    )
    def training_split(talkvid: TalkvidResource) -> MaterializeResult:
        """Passing clips whose speaker is known and in no bench dimension."""
        store = talkvid.store()
        rows = write_training_split(store)
        return MaterializeResult(
            metadata={"clips": len(rows), "speakers": len({row["speaker_id"] for row in rows})},
            data_version=DataVersion(store.digest("training_split", CORPUS)),
        )

    return [annotations, speakers, bench_strata, training_split]


@asset_check(
    asset=BENCH_STRATA,
    name="quotas_met",
    blocking=False,
    description="every stratum of every dimension holds its quota; a shortfall names the strata",
)
def quotas_met(talkvid: TalkvidResource) -> AssetCheckResult:
    store, config = talkvid.store(), talkvid.config()
    quotas = resolve_quotas(config.bench_quotas)
    problems = []
    for dimension in DIMENSIONS:
        rows = store.rows("bench_strata", dimension)
        chosen = Counter(row["stratum"] for row in rows)
        problems += [
            f"{dimension}/{stratum}: {chosen.get(stratum, 0)} of {quota} clips "
            "(not enough passing clips with this label and a known speaker)"
            for stratum, quota in quotas[dimension].items()
            if chosen.get(stratum, 0) < quota
        ]
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"short_strata": len(problems), "shortfall": "\n".join(problems) or "none"},
    )


@asset_check(
    asset=TRAINING_SPLIT,
    name="shares_no_speaker_with_the_bench",
    blocking=True,
    description="no training clip's speaker is in the bench, and every clip is a passing one",
)
def speaker_disjoint(talkvid: TalkvidResource) -> AssetCheckResult:
    store = talkvid.store()
    shared = store.query(
        "SELECT DISTINCT t.speaker_id FROM training_split t "
        "JOIN bench_strata b ON b.speaker_id = t.speaker_id"
    )
    failing = store.query(
        "SELECT t.clip_id FROM training_split t LEFT JOIN filtered_clips f USING (clip_id) "
        "WHERE f.passed IS NOT TRUE"
    )
    problems = [f"speaker {row['speaker_id']} is in both" for row in shared] + [
        f"clip {row['clip_id']} did not pass curation" for row in failing
    ]
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"problems": len(problems), "first_problems": "\n".join(problems[:20]) or "none"},
    )


BENCH_CHECKS = [quotas_met, speaker_disjoint]
