"""curation.yaml as data Dagster sees: one observable source asset per part of the file.

Each part (the prefilter, the scene detector, each stage's backend, the clip thresholds, the
bench settings; core.config.config_parts) is an observable source asset whose data version is
the part's fingerprint, and each stage depends on the parts that decide it. The config sensor
observes the file every few seconds and records a new observation only when a part changed, so
an edit shows in the UI as "upstream data changed" on exactly the assets it affects, and
automation carries it out with no reload. Every route that curates (the CLI too) observes the
file first, so each materialization records the configuration it was computed under.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DataVersion,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    SourceAsset,
    observable_source_asset,
    sensor,
)

from talkvid_assets.core.config import (
    CONFIG_PARTS,
    LANGUAGE_PART,
    ConfigError,
    backend_tag,
    config_parts,
    fingerprint,
    load_config,
)
from talkvid_assets.core.language import language_tag
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.defs.names import CONFIG_GROUP, config_asset
from talkvid_assets.defs.per_partition import DATA_VERSION_TAG
from talkvid_assets.defs.resources import TalkvidResource

CONFIG_INTERVAL_S = 5


def current_parts(home: Path) -> dict[str, Any]:
    """The home's configuration now, by part (a ConfigError names what is wrong)."""
    config = load_config(home)
    runtime = config.runtime(home)
    tags = {
        name: backend_tag(load_backend(name, backend, runtime))
        for name, backend in config.backends.items()
    }
    tags[LANGUAGE_PART] = language_tag(config.language_id, runtime)
    return config_parts(config, tags)


def config_observations(instance: DagsterInstance, home: Path) -> list[AssetObservation]:
    """An observation of each part whose fingerprint differs from the latest one recorded."""
    observations = []
    for part, value in current_parts(home).items():
        key = AssetKey(config_asset(part))
        version = fingerprint(value)
        records = instance.fetch_observations(key, limit=1).records
        latest = records[0].asset_observation if records else None
        if latest is None or (latest.tags or {}).get(DATA_VERSION_TAG) != version:
            shown = json.loads(json.dumps(value, default=str))
            observations.append(
                AssetObservation(key, tags={DATA_VERSION_TAG: version}, metadata={"value": shown})
            )
    return observations


def observe_config(instance: DagsterInstance, home: Path) -> list[str]:
    """Record the parts that changed (what a route does before planning); returns them."""
    observations = config_observations(instance, home)
    for observation in observations:
        instance.report_runless_asset_event(observation)
    return [observation.asset_key.to_user_string() for observation in observations]


def _config_asset(part: str) -> SourceAsset:
    @observable_source_asset(
        name=config_asset(part),
        group_name=CONFIG_GROUP,
        description=f"The {part!r} part of curation.yaml; its data version is its fingerprint",
    )
    def observe(talkvid: TalkvidResource) -> DataVersion:
        return DataVersion(fingerprint(current_parts(talkvid.home_path)[part]))

    return observe


CONFIG_ASSETS = [_config_asset(part) for part in CONFIG_PARTS]


@sensor(
    minimum_interval_seconds=CONFIG_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description="Observes curation.yaml: records a part's new fingerprint when an edit changed "
    "it, which makes exactly the assets that part decides stale",
)
def config_sensor(context: SensorEvaluationContext, talkvid: TalkvidResource) -> SensorResult:
    try:
        talkvid.current_config()  # a bad file, or one needing a reload: one line
        observations = config_observations(context.instance, talkvid.home_path)
    except (ConfigError, BackendUnavailable) as exc:
        return SensorResult(skip_reason=SkipReason(str(exc)))
    if not observations:
        return SensorResult(skip_reason=SkipReason("curation.yaml unchanged"))
    for observation in observations:
        context.log.info(f"curation.yaml changed: {observation.asset_key.to_user_string()}")
    return SensorResult(asset_events=observations)
