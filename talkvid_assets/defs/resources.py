"""The one resource every stage needs: the home, the profile and the chosen backends."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from talkvid_assets.core.scoring import DEFAULT_BACKENDS, ScorerBackend, load_backend
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import Profile, get_profile

DEFAULT_HOME = "data"


def home_from_env() -> Path:
    """``$TALKVID_HOME``, or ``./data``: where metadata, exports and the Dagster instance live."""
    return Path(os.environ.get("TALKVID_HOME") or DEFAULT_HOME).resolve()


class TalkvidResource(ConfigurableResource):
    """Configuration of a curation: editable per run in the launchpad."""

    home: str = Field(description="TALKVID_HOME: metadata store, exports, Dagster instance")
    profile: str = Field(default="paper", description="curation profile (paper, demo)")
    quality_backend: str = Field(default=DEFAULT_BACKENDS["quality"])
    motion_backend: str = Field(default=DEFAULT_BACKENDS["motion"])
    face_backend: str = Field(default=DEFAULT_BACKENDS["head_detail"])
    scene_detector: str = Field(default="histogram", description="histogram or content")

    def store(self) -> Store:
        return Store(self.home)

    def curation_profile(self) -> Profile:
        return get_profile(self.profile)

    def backends(self) -> dict[str, ScorerBackend]:
        return {
            "quality": load_backend("quality", self.quality_backend),
            "motion": load_backend("motion", self.motion_backend),
            "head_detail": load_backend("head_detail", self.face_backend),
        }


def default_resource(profile: str | None = None) -> TalkvidResource:
    """The resource for this environment: home and profile from the environment variables."""
    return TalkvidResource(
        home=str(home_from_env()), profile=profile or os.environ.get("TALKVID_PROFILE", "paper")
    )
