"""The one resource every stage needs: the home, whose curation.yaml decides everything else."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, Failure
from pydantic import Field

from talkvid_assets.core.config import ConfigError, CurationConfig, load_config, model_stages
from talkvid_assets.core.language import LanguageID
from talkvid_assets.core.scoring import ScorerBackend, load_backend, require_ready
from talkvid_assets.core.stages import STAGES, BackendUnavailable
from talkvid_assets.core.store import Store


class TalkvidResource(ConfigurableResource):
    """Where a run curates. Settings live in the home's curation.yaml, never in run config, so
    a run from the UI, a sensor, a backfill or the CLI judges exactly as the home says."""

    home: str = Field(description="TALKVID_HOME: curation.yaml, metadata, exports, instance")
    model_stages: list[str] | None = Field(
        default=None,
        description="the stages whose backend was a model (an asset of its own in the GPU "
        "pool) when these definitions were built; a run refuses to start when curation.yaml "
        "moved a stage between an embedded and a model backend since (reload the definitions). "
        "Every other edit is seen without a reload.",
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
        try:
            return self.current_config()
        except (ConfigError, BackendUnavailable) as exc:
            raise Failure(str(exc)) from None

    def current_config(self) -> CurationConfig:
        """The home's configuration as it is now; a ConfigError or BackendUnavailable (one
        line) when it cannot be used with these definitions, or a backend cannot run here."""
        path = Path(self.home) / "curation.yaml"
        config = load_config(Path(self.home))
        if self.profile and self.profile != config.profile:
            raise ConfigError(
                f"this run asks for profile {self.profile!r} but {path} says "
                f"{config.profile!r}; a home is curated with one configuration: edit {path}"
            )
        require_ready(config.backends, config.runtime(Path(self.home)))
        if self.model_stages is not None and list(model_stages(config)) != self.model_stages:
            raise ConfigError(
                f"{path} moved a stage between an embedded and a model backend, which changes "
                "the graph: reload the code location (or rerun the command)"
            )
        return config

    def language_id(self) -> LanguageID:
        """The home's language ID (core.language): its backend, or the reason none runs."""
        config = self.config()
        runtime = config.runtime(Path(self.home))
        return LanguageID.configured(config.language_id, runtime, config.language_min_confidence)

    def backends(self, stages: list[str] | None = None) -> dict[str, ScorerBackend]:
        """The configured backend of each stage (of ``stages`` when given)."""
        config = self.config()
        names = [stage.name for stage in STAGES] if stages is None else stages
        runtime = config.runtime(Path(self.home))
        return {name: load_backend(name, config.backends[name], runtime) for name in names}
