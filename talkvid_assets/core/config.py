"""One curation configuration per home: ``$TALKVID_HOME/curation.yaml``.

Every route that curates (``talkvid curate``, the Dagster UI, sensors, backfills, ``dagster
asset materialize``) reads this one file, so results of two configurations never mix in a home.
It is validated when loaded, and a mistake is reported as one :class:`ConfigError` line naming
the key and the value. The file is read when a stage runs, never frozen at import: its parts
(:func:`config_parts`) are data that Dagster observes, so a threshold edit makes exactly the
verdicts stale and a backend change that stage's scores, with no reload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from talkvid_assets.core.bench import DEFAULT_QUOTAS, EQUAL, QUOTAS
from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS
from talkvid_assets.core.runtime import DEVICES, Runtime
from talkvid_assets.core.stages import STAGES, STAGES_BY_NAME, Stage
from talkvid_assets.core.thresholds import PROFILES, Profile

if TYPE_CHECKING:
    from talkvid_assets.core.scoring import ScorerBackend

CONFIG_FILE = "curation.yaml"
MAX_CONFIG_BYTES = 1 << 20  # a hand-written settings file is a few KB
MAX_GPU_SLOTS = 1000  # Dagster's own limit on a concurrency pool
# The folders a home writes its own files into (tables, exports, clip files, previews, model
# weights, score cache, the Dagster instance): an inbox there would ingest the home's output.
HOME_OUTPUT_FOLDERS = ("tables", "exports", "clips", "previews", "models", "score_cache", "dagster")
SCENE_DETECTORS = ("histogram", "content", "transnetv2")
MODEL_INPUTS = ("source", "clip")
NO_LANGUAGE_ID = "none"  # no language-ID backend: labels from manifests only
LANGUAGE_BACKENDS = (NO_LANGUAGE_ID, "whisper-base")  # core.language
# The code version of each asset: what its code computes beyond its settings (those are the
# config parts it depends on, see config_parts). Bump one when that asset's output changes.
CODE_VERSIONS: dict[str, str] = {
    "raw_videos": "probe-3",  # reasons as structured failures
    "segments": "segments-4",  # decode failures structured (the reference's subtitle rule: 3)
    **{stage.table: "scores-2" for stage in STAGES},
    "filtered_clips": "verdict-4",  # reasons as structured failures (3: two-sided motion)
    "annotations": "annotations-2-language-id",
    "talkvid_export": "talkvid-json-3",  # stand-ins under their own names, full-precision times
    "talkvid_dataset": "talkvid-json-3",
    "speakers": "speakers-1",
    "bench_strata": "bench-2",  # one asset over every dimension
    "training_split": "bench-1",
    "clip_files": "clips-h264-aac-1",
    "fixed_frame_records": "fixed-frames-1",
    "url_sources": "yt-dlp-1",
}
# Threshold overrides are keyed by the `clips` view's columns; each with its valid range.
THRESHOLD_RANGES: dict[str, tuple[float, float]] = {
    "duration_s": (0.0, 3600.0),
    "speech_ratio": (0.0, 1.0),
    **{
        column.name: (column.low, column.high)
        for stage in STAGES
        for column in stage.score_columns
        if column.name in ("quality_score", "motion_ratio", "sync_confidence", *HEAD_DETAIL_KEYS)
    },
    # The largest |offset| in 25 fps frames a clip may have; SyncNet searches +-15.
    "sync_offset": (0.0, 15.0),
}
TEMPLATE = """\
# Curation configuration of this talkvid home. Every route reads it: `talkvid curate`, the
# Dagster UI and its sensors, backfills and `dagster asset materialize`. After an edit run
# `talkvid curate --stale`, or let `talkvid dev` notice it within seconds (no reload): only what
# the edit changes is recomputed, e.g. a threshold edit re-judges clips without decoding again.

# {profiles} (see the README's "Profiles")
profile: {profile}

# Overrides of the profile's clip thresholds, keyed by the `clips` view's columns (a clip
# passes when its value is >= the threshold; duration_s must be exceeded; sync_offset is the
# largest |offset| allowed). The sync keys need `backends: {{sync: syncnet}}`. Known keys:
# {threshold_keys}
thresholds: {{}}

# The backend computing each scoring stage ({stage_choices}).
backends:
{backends}

# Scene cuts: PySceneDetect's histogram (the reference's) or content detector, or TransNetV2
# (a shot-boundary network, weights in its pip package; on the GPU when `device` allows).
scene_detector: histogram

# What the paper's models (dover, cotracker3, the torch RetinaFace and insightface backends)
# score: source (frames decoded from the source) or clip (each clip re-encoded with libx264
# preset medium first, as the reference scores its clip files; slower, and DOVER reacts to it).
model_input: source

# Where model backends run: auto (a GPU when torch/onnxruntime see one), cuda or cpu. Their
# weights live under this home's models/ folder (`talkvid models list`, `talkvid models fetch`).
device: auto

# How many model steps may run at once on this instance (the "gpu" concurrency pool).
gpu_slots: 1

# Folders watched by the inbox sensor (relative to this home or absolute). A new file whose size
# has stopped changing is ingested and curated while `talkvid dev` runs.
inbox: [inbox]

# Folders a labelled manifest (CSV or JSON Lines, see README) may name sources in, besides its
# own folder (relative to this home or absolute).
source_roots: []

# TalkVid-Bench: the quota table (talkvid-v1: the released bench's 500 clips; equal: each
# dimension split evenly) and the seed that picks clips inside a stratum.
bench_quotas: talkvid-v1
bench_seed: 0

# Sources from URLs (`talkvid ingest --urls FILE`, or a `.urls` file dropped in an inbox), through
# yt-dlp: downloads at once, the largest file and longest video taken, a rate limit per download
# (KiB/s, null: none), the formats preferred (yt-dlp's syntax; the release used 1080p with
# separate audio), how long a download may wait for a byte and take in all (past either it fails
# with reason "timeout").
downloads:
  concurrency: 2
  max_size_mb: 4096
  max_duration_s: 3600
  rate_limit_kbps: null
  format: "bv*[height<=1080]+ba/b[height<=1080]/b"
  timeout_s: 30
  max_time_s: 3600

# Spoken-language identification of passing clips without a manifest language: a language-ID
# backend (none, or whisper-base after `talkvid models fetch whisper-base`) and the confidence
# below which the label stays NULL with its reason. A manifest's language always wins.
language_id: whisper-base
language_min_confidence: 0.6
"""


class ConfigError(ValueError):
    """A curation.yaml that cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class DownloadLimits:
    """What a home allows URL downloads (core.url_sources): they never decide a result, so
    they are left out of the configuration's digest."""

    concurrency: int = 2
    max_size_mb: int = 4096
    max_duration_s: int = 3600
    rate_limit_kbps: int | None = None
    format: str = "bv*[height<=1080]+ba/b[height<=1080]/b"
    timeout_s: int = 30
    max_time_s: int = 3600


@dataclass(frozen=True)
class CurationConfig:
    """The validated content of a home's curation.yaml."""

    profile: str = "paper"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    backends: Mapping[str, str] = field(
        default_factory=lambda: {stage.name: stage.default_backend for stage in STAGES}
    )
    scene_detector: str = "histogram"
    # What the paper's models score: frames of the source, or each clip re-encoded as the
    # reference cuts it (core/reencoded.py).
    model_input: str = "source"
    device: str = "auto"
    gpu_slots: int = 1
    inbox: tuple[str, ...] = ("inbox",)
    source_roots: tuple[str, ...] = ()
    bench_quotas: str = DEFAULT_QUOTAS
    bench_seed: int = 0
    downloads: DownloadLimits = field(default_factory=DownloadLimits)
    language_id: str = "whisper-base"
    language_min_confidence: float = 0.6

    def runtime(self, home: Path) -> Runtime:
        """Where this home's model backends find weights and which device they use."""
        return Runtime(Path(home) / "models", self.device)

    def judging_profile(self) -> Profile:
        """The profile with this config's threshold overrides applied."""
        profile = PROFILES[self.profile]
        clip = profile.clip
        per_backend = {"quality_score": "min_quality", "motion_ratio": "min_motion"}
        scalar = {
            "duration_s": "min_duration_s",
            "speech_ratio": "min_speech_ratio",
            "sync_offset": "max_sync_offset",
            "sync_confidence": "min_sync_confidence",
        }
        changes: dict[str, Any] = {}
        for key, value in self.thresholds.items():
            if key == "sync_offset":
                changes[scalar[key]] = int(value)
            elif key in scalar:
                changes[scalar[key]] = value
            elif key in per_backend:
                changes[per_backend[key]] = dict.fromkeys(getattr(clip, per_backend[key]), value)
            else:
                # An override is the user's number for every backend.
                changes.setdefault("head_detail", dict(clip.head_detail))[key] = value
                changes["head_detail_backends"] = {
                    backend: {k: v for k, v in keys.items() if k not in self.thresholds}
                    for backend, keys in clip.head_detail_backends.items()
                }
        return dataclasses.replace(profile, clip=dataclasses.replace(clip, **changes))

    @property
    def digest(self) -> str:
        """A short fingerprint of everything that decides results; recorded with each verdict."""
        decisive = {
            "profile": PROFILES[self.profile].tag,
            "thresholds": dict(sorted(self.thresholds.items())),
            "backends": dict(sorted(self.backends.items())),
            "scene_detector": self.scene_detector,
        }  # the device is left out: a GPU and a CPU run of one backend give the same scores
        return fingerprint(decisive)

    def inbox_folders(self, home: Path) -> list[Path]:
        """The inbox folders as absolute paths (relative ones are under the home)."""
        return [(home / folder).resolve() for folder in self.inbox]

    def source_folders(self, home: Path) -> list[Path]:
        """The extra folders labelled manifests may name sources in, as absolute paths."""
        return [(home / folder).resolve() for folder in self.source_roots]


def fingerprint(value: Any) -> str:
    """A short, stable hash of a JSON-able value: what code versions and cache keys are made of."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def backend_tag(backend: ScorerBackend) -> str:
    """What identifies a backend's scores: its name and build (later with its weights)."""
    return f"{backend.name}@{backend.version}"


def config_path(home: Path) -> Path:
    return Path(home) / CONFIG_FILE


def default_text(profile: str = "paper") -> str:
    """The documented curation.yaml a new home starts with."""
    backends = "\n".join(f"  {stage.name}: {stage.default_backend}" for stage in STAGES)
    choices = "; ".join(f"{stage.name}: {', '.join(stage.backends)}" for stage in STAGES)
    keys = ", ".join(THRESHOLD_RANGES)
    return TEMPLATE.format(
        profile=profile,
        profiles=" | ".join(PROFILES),
        threshold_keys=keys,
        stage_choices=choices,
        backends=backends,
    )


def ensure_config(home: Path, profile: str = "paper") -> Path:
    """Create the home's curation.yaml from the documented defaults unless it exists."""
    path = config_path(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_text(profile))
    return path


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases: settings never need them, and nested
    aliases (a "billion laughs") make a few lines stand for more values than memory holds."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in curation.yaml", mark
            )
        return super().compose_node(parent, index)


def load_config(home: Path) -> CurationConfig:
    """Read and validate the home's curation.yaml, creating it from the defaults if missing.

    Every mistake is one ConfigError line: a file over ``MAX_CONFIG_BYTES``, bytes that are not
    UTF-8, YAML that does not parse or uses aliases, a value of the wrong kind, an inbox that
    would ingest the home's own files.
    """
    home = Path(home)
    path = ensure_config(home)
    data = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start + 1:,})") from None
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader) or {}  # a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f": {problem}" if problem else ""
        raise ConfigError(f"{path}: not valid YAML{where}{detail}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deep") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        config = parse_config(raw)
        _check_inbox(config, home)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def _check_inbox(config: CurationConfig, home: Path) -> None:
    """Refuse an inbox that holds the home (``.``, ``/``) or lies in a folder the home writes
    into: the inbox sensor would ingest the home's own tables, exports and clips."""
    home = home.resolve()
    for given, folder in zip(config.inbox, config.inbox_folders(home), strict=True):
        if home.is_relative_to(folder):
            raise ConfigError(f"inbox {given!r} holds this home itself ({home})")
        if folder.is_relative_to(home):
            top = folder.relative_to(home).parts[0]
            if top in HOME_OUTPUT_FOLDERS:
                raise ConfigError(
                    f"inbox {given!r} is inside the home's own {top}/ folder; "
                    "choose a folder the home does not write into"
                )


def parse_config(raw: Mapping[str, Any]) -> CurationConfig:
    """Validate a mapping of settings; unknown keys and values are errors, never ignored."""
    known = {f.name for f in dataclasses.fields(CurationConfig)}
    unknown = sorted(repr(key) for key in raw if key not in known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}; settings: {', '.join(sorted(known))}")
    defaults = CurationConfig()
    profile = raw.get("profile", defaults.profile)
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    detector = raw.get("scene_detector", defaults.scene_detector)
    if not isinstance(detector, str) or detector not in SCENE_DETECTORS:
        known_detectors = ", ".join(SCENE_DETECTORS)
        raise ConfigError(f"unknown scene_detector {detector!r}; known: {known_detectors}")
    return CurationConfig(
        profile=profile,
        thresholds=_thresholds(raw.get("thresholds") or {}),
        backends={**defaults.backends, **_backends(raw.get("backends") or {})},
        scene_detector=detector,
        model_input=_choice(
            raw.get("model_input", defaults.model_input), "model_input", MODEL_INPUTS
        ),
        device=_choice(raw.get("device", defaults.device), "device", DEVICES),
        gpu_slots=_count(raw.get("gpu_slots", defaults.gpu_slots), "gpu_slots", MAX_GPU_SLOTS),
        inbox=_folders(raw.get("inbox", list(defaults.inbox)), "inbox"),
        source_roots=_folders(raw.get("source_roots") or [], "source_roots"),
        bench_quotas=_choice(
            raw.get("bench_quotas", defaults.bench_quotas), "bench_quotas", (*QUOTAS, EQUAL)
        ),
        bench_seed=_seed(raw.get("bench_seed", defaults.bench_seed)),
        downloads=_downloads(raw.get("downloads") or {}),
        language_id=_choice(
            raw.get("language_id", defaults.language_id), "language_id", LANGUAGE_BACKENDS
        ),
        language_min_confidence=_fraction(
            raw.get("language_min_confidence", defaults.language_min_confidence),
            "language_min_confidence",
        ),
    )


# The largest value each downloads setting takes: far past any real use, small enough that a
# typo (an extra digit or ten) is refused rather than obeyed.
DOWNLOAD_LIMITS_MOST = {
    "concurrency": 64,
    "max_size_mb": 10**7,
    "max_duration_s": 10**7,
    "timeout_s": 10**5,
    "max_time_s": 10**7,
    "rate_limit_kbps": 10**8,
}


def _downloads(raw: Any) -> DownloadLimits:
    """The ``downloads`` mapping; every key optional, every value checked."""
    given = dict(_mapping(raw, "downloads"))
    known = {f.name for f in dataclasses.fields(DownloadLimits)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"unknown downloads setting {unknown[0]!r}; known: {', '.join(known)}")
    for name, most in DOWNLOAD_LIMITS_MOST.items():
        if given.get(name) is not None or (name in given and name != "rate_limit_kbps"):
            _count(given[name], f"downloads.{name}", most)
    if "format" in given and not (isinstance(given["format"], str) and given["format"].strip()):
        raise ConfigError(f"downloads.format must be a yt-dlp format text, got {given['format']!r}")
    return DownloadLimits(**given)


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number in 0..1, got {value!r}")
    return float(value)


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, got {value!r}")
    return value


def _thresholds(raw: Any) -> dict[str, float]:
    thresholds = {}
    for key, value in _mapping(raw, "thresholds").items():
        if key not in THRESHOLD_RANGES:
            raise ConfigError(
                f"unknown threshold {key!r}; thresholds: {', '.join(THRESHOLD_RANGES)}"
            )
        low, high = THRESHOLD_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"threshold {key} must be a number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"threshold {key}={value} is outside {low:.4g}..{high:.4g}")
        if key == "sync_offset" and value != int(value):
            raise ConfigError(f"threshold sync_offset must be whole frames, got {value}")
        thresholds[key] = float(value)
    return thresholds


def _backends(raw: Any) -> dict[str, str]:
    chosen = {}
    for name, backend in _mapping(raw, "backends").items():
        stage = STAGES_BY_NAME.get(name)
        if stage is None:
            raise ConfigError(f"unknown stage {name!r} in backends; stages: {_stage_names()}")
        if not isinstance(backend, str) or backend not in stage.backends:
            available = ", ".join(stage.backends)
            raise ConfigError(f"unknown {name} backend {backend!r}; available: {available}")
        chosen[name] = backend
    return chosen


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _count(value: Any, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ConfigError(f"{name} must be a whole number from 1 to {most}, got {value!r}")
    return value


def _stage_names() -> str:
    return ", ".join(STAGES_BY_NAME)


def _folders(raw: Any, name: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise ConfigError(f"{name} must be a list of folder paths, got {raw!r}")
    return tuple(raw)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"bench_seed must be a whole number >= 0, got {value!r}")
    return value


# The parts of curation.yaml that decide one stage each (see config_parts).
LANGUAGE_PART = "language"
CONFIG_PARTS = (
    "prefilter",
    "scenes",
    *(stage.name for stage in STAGES),
    "thresholds",
    LANGUAGE_PART,
    "bench",
)


def config_parts(config: CurationConfig, backend_tags: Mapping[str, str]) -> dict[str, Any]:
    """The parts of a configuration that decide one stage each, by part name.

    Each part is a Dagster observable source asset (``config_<part>``, see defs.config_assets)
    whose data version is the part's :func:`fingerprint`, and each stage depends on the parts
    that decide it: a threshold edit changes only ``thresholds``, so only the verdicts (and what
    follows them) become stale. ``backend_tags`` maps each stage to its backend's
    ``name@version`` (:func:`backend_tag`), which names the weights' checksum, and the language
    part to the language-ID backend's tag (core.language.language_tag).
    """
    profile = config.judging_profile()
    return {
        "prefilter": dataclasses.asdict(profile.prefilter),
        "scenes": {
            "scene_detector": config.scene_detector,
            "integer_downscale": profile.integer_downscale,
        },
        **{stage.name: _stage_part(config, stage, backend_tags[stage.name]) for stage in STAGES},
        # The verdicts record the whole configuration's digest, so they follow any edit of it.
        "thresholds": {"clip": dataclasses.asdict(profile.clip), "config_digest": config.digest},
        LANGUAGE_PART: {
            "backend": backend_tags[LANGUAGE_PART],
            "min_confidence": config.language_min_confidence,
        },
        "bench": {"quotas": config.bench_quotas, "seed": config.bench_seed},
    }


def _stage_part(config: CurationConfig, stage: Stage, tag: str) -> str:
    """A stage's part: its backend build, and for a model stage what it scores."""
    if config.model_input == "source" or config.backends[stage.name] not in stage.model_backends:
        return tag
    return f"{tag} on {config.model_input}"


def model_stages(config: CurationConfig) -> tuple[str, ...]:
    """The stages whose configured backend runs one of the paper's models: each is an asset of
    its own in the GPU pool, so switching a stage between an embedded and a model backend
    changes the graph's shape (a reload of the definitions), unlike any other edit."""
    return tuple(
        stage.name for stage in STAGES if config.backends[stage.name] in stage.model_backends
    )
