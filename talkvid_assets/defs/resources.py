"""The one resource every stage needs: the home, whose curation.yaml decides everything else."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource, Failure
from pydantic import Field

from talkvid_assets.core.config import ConfigError, CurationConfig, load_config
from talkvid_assets.core.scoring import ScorerBackend, load_backend
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import Store

DEFAULT_HOME = "data"


def home_from_env() -> Path:
    """``$TALKVID_HOME``, or ``./data``: where metadata, exports and the Dagster instance live."""
    return Path(os.environ.get("TALKVID_HOME") or DEFAULT_HOME).resolve()


class TalkvidResource(ConfigurableResource):
    """Where a run curates. Settings live in the home's curation.yaml, never in run config, so
    a run from the UI, a sensor, a backfill or the CLI judges exactly as the home says."""

    home: str = Field(description="TALKVID_HOME: curation.yaml, metadata, exports, instance")
    config_digest: str = Field(
        default="",
        description="digest of the curation.yaml these definitions were built from; a run "
        "refuses to start when the file has changed since (reload the definitions)",
    )
    profile: str = Field(
        default="",
        description="optional: when set it must equal curation.yaml's profile, or the run is "
        "refused (edit curation.yaml to change the profile)",
    )

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    def store(self) -> Store:
        return Store(self.home)

    def config(self) -> CurationConfig:
        """The home's validated configuration, or a Failure that says what is wrong."""
        path = Path(self.home) / "curation.yaml"
        try:
            config = load_config(Path(self.home))
        except ConfigError as exc:
            raise Failure(str(exc)) from None
        if self.profile and self.profile != config.profile:
            raise Failure(
                f"this run asks for profile {self.profile!r} but {path} says "
                f"{config.profile!r}; a home is curated with one configuration: edit {path}"
            )
        if self.config_digest and self.config_digest != config.digest:
            raise Failure(
                f"{path} changed since these definitions were loaded; reload the code location "
                "(or rerun the command) so code versions and staleness follow the edit"
            )
        return config

    def backends(self, stages: list[str] | None = None) -> dict[str, ScorerBackend]:
        """The configured backend of each stage (of ``stages`` when given)."""
        config = self.config()
        names = [stage.name for stage in STAGES] if stages is None else stages
        runtime = config.runtime(Path(self.home))
        return {name: load_backend(name, config.backends[name], runtime) for name in names}
