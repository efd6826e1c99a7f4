"""The one declaration of each scoring stage of the decode pass, and of every backend registry.

A stage (quality, motion, head detail, sync) is named once here: its table, its score columns
(which ones a threshold judges, which ones the release carries), the column that names the
backend behind a score, the TalkVid record field it fills and which backends' numbers that field
may carry, its backends, what each backend's score is (range, head, fusion) and the thresholds
of each stand-in on a scale of its own. The store's tables and views, the decode multi-asset's
specs, the curation config, the profiles' per-backend thresholds, the review and the export are
all derived from this, so a new stage or backend is one edit. Backends, scene detectors and
language-ID backends are named by import path and imported only when a run asks for one
(core.scoring.load_backend, :func:`load_entry`), so commands that only read metadata never
import OpenCV, dlib or torch. This module imports nothing of the project but the head-detail
score names: everything else reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import Any, NamedTuple

from talkvid_assets.core.head_detail import HEAD_DETAIL_KEYS


class BackendUnavailable(RuntimeError):
    """A backend was asked for that cannot run here; the message says why and what to do."""


class ScoreScale(NamedTuple):
    """What one backend's summary score is: the range its formula allows and how it is made.

    Documentation (README, dataset card, module docstrings) states these ranges; a test holds
    the README to them."""

    low: float
    high: float
    meaning: str


class ScoreColumn(NamedTuple):
    """A score column and the range its formula allows (a value outside is a bug).

    A ``judged`` column is one a threshold may judge: a public column of the store's ``clips``
    view and a key of curation.yaml's ``thresholds``. A ``released`` one is in the TalkVid
    release's record, under the stage's ``export_field``."""

    name: str
    kind: str  # "float64" or "int64"
    low: float
    high: float
    judged: bool = False
    released: bool = False


# The reference's head-detail formulas (spec, stage 3) bound each score: movement and rotation
# are 100 minus a mean displacement (key points stay inside the frame; angles below 360 deg on
# each axis), orientation 100 minus an angle norm of at most sqrt(3) * 100, resolution 30 x a
# percentage of the frame.
HEAD_DETAIL_RANGES = {
    "avg_movement": (-100.0, 100.0),
    "min_movement": (-100.0, 100.0),
    "avg_rotation": (100.0 - 360.0 * 3**0.5, 100.0),
    "min_rotation": (100.0 - 360.0 * 3**0.5, 100.0),
    "avg_completeness": (0.0, 100.0),
    "min_completeness": (0.0, 100.0),
    "avg_resolution": (0.0, 3000.0),
    "min_resolution": (0.0, 3000.0),
    "avg_orientation": (100.0 - 100.0 * 3**0.5, 100.0),
    "min_orientation": (100.0 - 100.0 * 3**0.5, 100.0),
    "face_consistency": (0.0, 100.0),
}
COUNT = (0.0, float("inf"))
# dlib-hog's face boxes against retinaface's, by area (benchmarks/head_detail_agreement.py).
DLIB_HOG_BOX_AREA_RATIO = 0.72
FACES = "talkvid_assets.core.faces"


@dataclass(frozen=True)
class Stage:
    """One scoring stage: what it writes and which backends can compute it."""

    name: str
    table: str
    score_columns: tuple[ScoreColumn, ...]
    summary_column: str  # the score a person looks at first (asset metadata, histograms)
    # The TalkVid release's record field the stage fills (None: the release has none) and what
    # the dataset card says of it.
    export_field: str | None
    export_note: str
    backends: dict[str, str]  # backend name -> "module:factory", the factory taking a Runtime
    default_backend: str
    description: str
    # Backends that run one of the paper's models: their step runs apart from the decode pass,
    # in the GPU pool (defs.model_stages).
    model_backends: frozenset[str] = frozenset()
    # Backends whose numbers ``export_field`` may carry: a release field named after a model
    # (``dover_scores``) holds that model's numbers only. Any other backend is a stand-in: its
    # summary score travels under :meth:`own_field` and the release field is null.
    release_backends: frozenset[str] = frozenset()
    # Per backend, what its summary score is (a backend absent here: the columns' ranges).
    scales: Mapping[str, ScoreScale] = field(default_factory=dict)
    # Per stand-in whose scale is its own, the minimum each of its scores must reach in every
    # profile (column -> minimum), in place of the profile's number, which is on the scale of
    # the release's backends: an embedded score is never judged by a model's threshold.
    calibrations: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def stand_ins(self) -> tuple[str, ...]:
        """The backends whose numbers never go under the release's field."""
        return tuple(name for name in self.backends if name not in self.release_backends)

    @property
    def released_columns(self) -> tuple[str, ...]:
        """The columns the release's record carries under ``export_field``."""
        return tuple(column.name for column in self.score_columns if column.released)

    def score_field(self, backend: str) -> str:
        """Where a record carries ``backend``'s summary score: the release's field, or the
        stand-in's own under ``talkvid_assets``."""
        if backend in self.release_backends and self.export_field is not None:
            return self.export_field
        return f"talkvid_assets.{self.own_field(backend)}"

    def own_field(self, backend: str) -> str:
        """The record field of a stand-in's summary score, named after the backend and the
        score (``frame_stats_quality_score``, ``lk_motion_ratio``), never after a model."""
        return f"{backend.replace('-', '_')}_{self.summary_column}"

    def scale(self, backend: str | None, column: str) -> tuple[float, float]:
        """The range ``column`` may take when ``backend`` computed it."""
        declared = self.scales.get(backend or "")
        if declared is not None and column == self.summary_column:
            return declared.low, declared.high
        found = self.column(column)
        return found.low, found.high

    # False when the stage's thresholds are unset by default, so a missing score fails no clip
    # and needs no reason (lip sync, until SyncNet's weights are fetched and a threshold set).
    always_judged: bool = True

    @property
    def backend_column(self) -> str:
        """The column naming the backend behind each score, e.g. ``quality_backend``."""
        return f"{self.name}_backend"

    def column(self, name: str) -> ScoreColumn:
        return next(column for column in self.score_columns if column.name == name)


STAGES: tuple[Stage, ...] = (
    Stage(
        name="quality",
        table="quality_scores",
        # The widest of the backends' scales below.
        score_columns=(
            ScoreColumn("quality_score", "float64", -50.0, 50.0, judged=True, released=True),
        ),
        summary_column="quality_score",
        export_field="dover_scores",
        export_note="DOVER's fused quality score (see below); null unless DOVER made it",
        backends={
            "frame-stats": "talkvid_assets.core.quality.frame_stats:FrameStatisticsQuality",
            "dover": "talkvid_assets.core.quality.dover:quality_backend",
        },
        default_backend="frame-stats",
        description="video quality: DOVER's fused score, or a stand-in on its own scale",
        model_backends=frozenset({"dover"}),
        release_backends=frozenset({"dover"}),
        # Calibrated on the bundled samples (see core/quality/frame_stats.py).
        calibrations={"frame-stats": {"quality_score": 4.0}},
        scales={
            # Spec, stage 2a: unbounded in principle (the release averages 8.55, its histogram
            # ends near 11.5); +-50 is far outside anything a video reaches.
            "dover": ScoreScale(
                -50.0,
                50.0,
                "DOVER's fused score: the mean over DOVER's five reference prediction sets of "
                "the z-score of ONNX output 0 (the aesthetic head in DOVER's export order) "
                "against each set's `fragments` predictions, rounded to 2 decimals; an "
                "unbounded mean of z-scores, not a 0-10 scale",
            ),
            "frame-stats": ScoreScale(
                0.0,
                10.0,
                "embedded stand-in, not DOVER: 10 x sharpness (blur of Crete-Roffet et al. on "
                "native-resolution fragments) x a blockiness penalty, mean of one frame per "
                "second; 0-10, on no scale of DOVER's",
            ),
        },
    ),
    Stage(
        name="motion",
        table="motion_scores",
        score_columns=(
            ScoreColumn("motion_ratio", "float64", 0.0, 1.0, judged=True, released=True),
        ),
        summary_column="motion_ratio",
        export_field="cotracker_ratio",
        export_note="CoTracker3's visible-point share (below); null unless CoTracker3 made it",
        backends={
            "lk": "talkvid_assets.core.motion.lk:LucasKanadeMotion",
            "cotracker3": "talkvid_assets.core.motion.cotracker3:motion_backend",
        },
        default_backend="lk",
        description="camera motion: share of a tracked point grid still visible",
        model_backends=frozenset({"cotracker3"}),
        release_backends=frozenset({"cotracker3"}),
        # LK loses points CoTracker keeps, so its scale is lower: handheld talking heads measure
        # about 0.6, street pans about 0.1.
        calibrations={"lk": {"motion_ratio": 0.5}},
        scales={
            "cotracker3": ScoreScale(
                0.0,
                1.0,
                "CoTracker3 offline: share of a 100x100 query grid visible (sigmoid > 0.9) "
                "over each window's 2 fps frames, minimum over up to three 6 s windows",
            ),
            "lk": ScoreScale(
                0.0,
                1.0,
                "embedded stand-in, not CoTracker3: share of a 50x50 grid that pyramidal "
                "Lucas-Kanade keeps tracking with a forward-backward check, minimum over the "
                "same windows; lower than CoTracker3's on the same clip",
            ),
        },
    ),
    Stage(
        name="head_detail",
        table="head_detail_scores",
        score_columns=(
            # The release lists ten scores; face consistency is a filter input only.
            *(
                ScoreColumn(
                    key,
                    "float64",
                    *HEAD_DETAIL_RANGES[key],
                    judged=True,
                    released=key != "face_consistency",
                )
                for key in HEAD_DETAIL_KEYS
            ),
            ScoreColumn("sampled_frames", "int64", *COUNT),
            ScoreColumn("single_face_frames", "int64", *COUNT),
        ),
        summary_column="min_rotation",
        export_field="head_detail",
        export_note="head movement, rotation, completeness, resolution and orientation scores",
        backends={
            "retinaface": f"{FACES}.retinaface:head_detail_backend",
            "dlib-hog": f"{FACES}.dlib_hog:head_detail_backend",
            "retinaface-torch": f"{FACES}.retinaface_torch:head_detail_backend",
            "retinaface-torch-r50": f"{FACES}.retinaface_torch:head_detail_backend_r50",
            "insightface": f"{FACES}.insightface:head_detail_backend",
        },
        # Measured against dlib-hog (README, benchmarks/faces.py): finds faces HOG misses
        # (small, turned, compressed) and costs a third of its CPU time at 1080p.
        default_backend="retinaface",
        description="the reference's eleven head-detail scores on one frame per second",
        model_backends=frozenset({"retinaface-torch", "retinaface-torch-r50", "insightface"}),
        # The eleven scores are the reference's formulas over any detector's boxes, key points
        # and pose, so every backend fills the release's field; how far each sits from the
        # reference's insightface is measured in the README (head-detail agreement).
        release_backends=frozenset(
            {"retinaface", "dlib-hog", "retinaface-torch", "retinaface-torch-r50", "insightface"}
        ),
        # Measured by benchmarks/head_detail_agreement.py (README, "Head-detail agreement"):
        # dlib-hog's face box covers 0.72x the area of retinaface's on the same faces, so its
        # resolution thresholds are the paper's (50 and 40) x 0.72. Movement, rotation and
        # orientation agree within a few points and keep the profile's. retinaface (and the
        # torch ports of it) keeps the profile's numbers, which insightface's SCRFD boxes were
        # calibrated on: how far RetinaFace's boxes sit from SCRFD's is unmeasured
        # (insightface's weights cannot be fetched here).
        calibrations={
            "dlib-hog": {
                "avg_resolution": round(50.0 * DLIB_HOG_BOX_AREA_RATIO, 1),
                "min_resolution": round(40.0 * DLIB_HOG_BOX_AREA_RATIO, 1),
            }
        },
    ),
    Stage(
        name="sync",
        table="sync_scores",
        # SyncNet's offset search spans +-15 frames at 25 fps (core.sync.offset); confidence is
        # a median minus a minimum of distances and the distance a mean of norms: both >= 0,
        # and published clips score about 0-12 and 5-15, so above 50 a network or input broke.
        score_columns=(
            ScoreColumn("sync_offset", "int64", -15.0, 15.0, judged=True),
            ScoreColumn("sync_confidence", "float64", 0.0, 50.0, judged=True),
            ScoreColumn("sync_distance", "float64", 0.0, 50.0),
        ),
        summary_column="sync_confidence",
        export_field=None,  # the release has no lip-sync field
        export_note="",
        backends={
            "none": "talkvid_assets.core.sync.none:SyncNone",
            "syncnet": "talkvid_assets.core.sync.scorer:sync_backend",
        },
        # No package ships SyncNet's weights, so the offline default records no sync score
        # (named "none"; not "off", which YAML reads as false); `talkvid models fetch syncnet`
        # and `backends: {sync: syncnet}` turn it on.
        default_backend="none",
        description="lip sync: SyncNet's audio-video offset (25 fps frames), Sync-C and Sync-D",
        model_backends=frozenset({"syncnet"}),
        always_judged=False,
    ),
)
STAGES_BY_NAME = {stage.name: stage for stage in STAGES}
# The stage of every judged column: whose backend column names the scale a value is on.
JUDGED_COLUMNS = {
    column.name: stage for stage in STAGES for column in stage.score_columns if column.judged
}
# The parts of a curation whose CPU time is recorded per video (decode_reports.<part>_cpu_s):
# the decode pass's own work, each stage's scorer, and writing the video's tables.
DECODE, SCENES, VOICE, STORE = "decode", "scenes", "voice", "store"
CPU_PARTS = (DECODE, SCENES, VOICE, *STAGES_BY_NAME, STORE)


def get_stage(name: str) -> Stage:
    """The stage called ``name`` or a message naming the stages."""
    try:
        return STAGES_BY_NAME[name]
    except KeyError:
        known = ", ".join(STAGES_BY_NAME)
        raise BackendUnavailable(f"unknown stage {name!r}; stages: {known}") from None


# What a home's curation.yaml may name besides the stages' backends, registered the same way
# (name -> "module:attribute", imported only when chosen). A scene detector's class has a
# ``name`` equal to its key and ``for_video(video, runtime, integer_downscale)``, and pushes
# frames as core.scenes.CutDetector; a language-ID class has a ``name`` and is a
# core.language.LanguageBackend.
SCENE_DETECTORS: dict[str, str] = {
    # PySceneDetect's detectors with the reference's settings (histogram is its configured one).
    "histogram": "talkvid_assets.core.scenes.pyscenedetect:HistogramCuts",
    "content": "talkvid_assets.core.scenes.pyscenedetect:ContentCuts",
    # A shot-boundary network; weights ship in its pip package, torch on the GPU when allowed.
    "transnetv2": "talkvid_assets.core.scenes.transnetv2:TransNetV2Cuts",
}
DEFAULT_SCENE_DETECTOR = "histogram"
NO_LANGUAGE_ID = "none"  # no language-ID backend: labels from manifests only
LANGUAGE_IDS: dict[str, str] = {
    "whisper-base": "talkvid_assets.core.language.whisper:WhisperLanguage",
}
DEFAULT_LANGUAGE_ID = "whisper-base"


def load_entry(kind: str, name: str, target: str) -> Any:
    """The class or factory a registry entry ``target`` ("module:attribute") names.

    The module is imported only now, so a command that never runs a backend never imports its
    packages (torch, dlib, onnxruntime). A backend whose third-party package is not installed
    is :class:`BackendUnavailable` naming it (PySceneDetect guards its optional backends by
    ImportError the same way); a missing module of this project is a bug and stays an error.
    """
    try:
        return EntryPoint(name, target, kind).load()
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == __name__.partition(".")[0]:
            raise
        raise BackendUnavailable(
            f"{kind} {name!r} needs the package {exc.name!r}, which is not installed here"
        ) from exc
