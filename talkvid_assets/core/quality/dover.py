"""The ``dover`` quality backend: DOVER on onnxruntime, standardised the way TalkVid keeps it.

TalkVid's ``dover_scores`` (spec, stage 2a) come from DOVER's ONNX export fed two views of the
clip (settings of ``val-l1080p`` in DOVER's ``dover.yml``), each output averaged to one number:

- ``tech_view`` [3, 3, 32, 224, 224] (clips, RGB, frames, height, width): three clips of 32
  frames two apart, one clip in each third of the video; each frame becomes a 7 x 7 mosaic of
  32 px fragments cut at native resolution, one fragment from each cell of a 7 x 7 grid at a
  random offset that is the same for the 32 frames of a clip (``aligned: 32``).
- ``aes_view`` [1, 3, 32, 224, 224]: 32 frames, one from each 1/32 of the video at a random
  offset, resized to 224 x 224.
- both normalised per channel: (x - (123.675, 116.28, 103.53)) / (58.395, 57.12, 57.375).

Output :data:`STANDARDISED_OUTPUT` is then z-scored against each of the five prediction sets
DOVER publishes (``val-{livevqc,kv1k,ltest,l1080p,ytugc}.pkl``, each a dict of float32 arrays
``resize`` and ``fragments``, one prediction per video of that dataset) using their
``fragments`` arrays, the clip's own value included in the mean and the (population) standard
deviation; the five z-scores are averaged and rounded to 2 decimals, in float32 as the
reference computes. The result is an average of z-scores: it is not bounded to 0-10 (TalkVid's
threshold is 5 and its released clips average about 8.5).

Which output is standardised. TalkVid's ``onnx_inference.py`` z-scores ``results[0]``, the ONNX
model's first output. DOVER's ``convert_to_onnx.py`` returns [aesthetic, technical], so that is
the aesthetic head, although the sets it is compared with are the ``fragments`` (technical)
predictions. We keep the reference's choice, because only it reproduces the released numbers:
the ``fragments`` sets average about -0.1 with a standard deviation near 0.04 and a maximum
near 0.01, so the technical head of even a flawless video lands 2-3 deviations above them and
an average of 8.5 (or a threshold of 5) would be out of reach; the aesthetic head, whose own
(``resize``) sets average about +0.1, lands 5-10 deviations above them, which is where the
released scores are. The backend therefore reads output 0 of the ONNX file by position, and so
needs a file exported with DOVER's output order.

Making ``DOVER.onnx``. ``talkvid models fetch dover`` fetches ``DOVER.pth`` and the prediction
sets; the ONNX file is made once from the checkpoint with DOVER's own script: clone
github.com/QualityAssessment/DOVER, ``pip install -e .``, put ``DOVER.pth`` in
``pretrained_weights/``, and in ``convert_to_onnx.py`` either change the technical dummy input
to ``torch.randn(3, 3, 32, 224, 224)`` (TalkVid feeds three clips; DOVER's script fixes four)
or pass ``dynamic_axes={"tech_view": {0: "clips"}}`` to ``torch.onnx.export`` (on torch 2.9 and
later also ``dynamo=False``, the exporter the script was written for); run it and copy
``onnx_dover.onnx`` to ``$TALKVID_HOME/models/dover/DOVER.onnx``. A file whose ``tech_view`` is
fixed at another number of clips is refused with that advice.

Sampling in one decode pass. The reference reads the finished clip file, whose length it knows;
the decode pass learns a clip's length only when the clip ends, so positions are chosen on
lattices fixed in advance and only what they need is kept, at bounded memory:

- technical: the clip is cut into 64-frame blocks (one 32-frame clip two apart each), each with
  its own fragment offsets, and every other frame of a kept block is reduced to its 224 x 224
  mosaic as it is decoded (fragments at native resolution, as DOVER cuts them). Blocks are kept
  on a lattice that thins out (every 2nd, 4th, ... block) when more than
  :data:`MAX_TECHNICAL_BLOCKS` would be held; at the end, each third takes a kept block whose
  start lies where the reference may start its window (a random one of them), else the kept
  block nearest to that range. Windows therefore start on multiples of 64 frames; in clips
  under 192 frames, whose reference windows overlap and wrap round to the start, the nearest
  whole blocks stand in for them (a block may serve two thirds); clips under 64 frames cycle
  through the frames of their one partial block, as the reference's indices wrap modulo the
  length.
- aesthetic: frames are kept resized to 224 x 224 (with torch, as torchvision resizes them in
  the reference) on a lattice that thins out past
  :data:`MAX_AESTHETIC_FRAMES`; each of the reference's 32 positions takes the nearest kept
  frame (exact while the clip is at most that many frames long).

Randomness is seeded from the clip (the source's size, rate and frame count and the clip's
first decoded frame), so re-running gives the same score; the reference's offsets are random and
unseeded, so its own scores vary from run to run. Frames smaller than 224 px are upsampled with
torch as in DOVER, whose fragment grid then stays laid on the original size (so fragments come
from the top left of the upsampled frame): kept, as DOVER computes it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkvid_assets.core.runtime import Runtime, onnx_session
from talkvid_assets.core.stages import BackendUnavailable
from talkvid_assets.core.video import Frame, VideoProbe

MODEL_NAME = "dover"
ONNX_FILE = "DOVER.onnx"
PREDICTION_SETS = ("livevqc", "kv1k", "ltest", "l1080p", "ytugc")
# dover.yml, val-l1080p: technical 3 clips x 32 frames, interval 2, 7 x 7 fragments of 32 px
# aligned to 32-frame groups; aesthetic 32 frames (t_frag 32) resized to 224 x 224.
CLIP_LEN = 32
FRAME_INTERVAL = 2
TECHNICAL_CLIPS = 3
BLOCK_FRAMES = CLIP_LEN * FRAME_INTERVAL  # the frames one technical clip spans
FRAGMENTS = 7
FRAGMENT_SIZE = 32
VIEW_SIZE = FRAGMENTS * FRAGMENT_SIZE  # 224
AESTHETIC_FRAMES = 32
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
# convert_to_onnx.py returns [aesthetic, technical]; the reference standardises results[0]
# against the sets' "fragments" predictions (see the module docstring for why we keep that).
OUTPUT_HEADS = ("aesthetic", "technical")
STANDARDISED_OUTPUT = 0
STANDARDISED_SET = "fragments"
SCORE_DECIMALS = 2
# Bounds on what a clip keeps while it is decoded: 9 blocks of 32 mosaics (43 MB) and 64
# resized frames (10 MB; each costs a full-size antialiased resize, about 20 ms at 1080p).
MAX_TECHNICAL_BLOCKS = 9
MAX_AESTHETIC_FRAMES = 64
VIEWS_VERSION = (
    f"l1080p-{TECHNICAL_CLIPS}x{CLIP_LEN}-aes{AESTHETIC_FRAMES}"
    f"-{OUTPUT_HEADS[STANDARDISED_OUTPUT]}-z-{STANDARDISED_SET}-1"
)
# The only globals a prediction set's pickle may name: numpy's array reconstruction.
PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
}


def prediction_file(name: str) -> str:
    return f"val-{name}.pkl"


# --- views ---------------------------------------------------------------------------------


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator per purpose (and block), reproducible from the clip's seed."""
    return np.random.default_rng([seed, *keys])


def clip_seed(video: VideoProbe, first_frame_index: int) -> int:
    """A seed that names the clip: the same source and clip start give the same views."""
    key = f"{video.width}x{video.height}@{video.fps}:{video.frame_count}:{first_frame_index}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def fragment_origins(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """7 x 7 (top, left) corners of one clip's fragments on a ``height`` x ``width`` frame.

    As DOVER lays them: cell i starts at min(i * (side // 7), side - 32), and a fragment sits at
    a random offset below side // 7 - 32 inside its cell (none when cells are that small)."""
    corners = []
    for axis, side in enumerate((height, width)):
        cell = side // FRAGMENTS
        grid = np.minimum(cell * np.arange(FRAGMENTS), side - FRAGMENT_SIZE)
        if cell > FRAGMENT_SIZE:
            offsets = rng.integers(cell - FRAGMENT_SIZE, size=(FRAGMENTS, FRAGMENTS))
        else:
            offsets = np.zeros((FRAGMENTS, FRAGMENTS), np.int64)
        corners.append(offsets + np.expand_dims(grid, 1 - axis))  # rows for top, columns left
    return np.stack(corners, axis=-1)


def fragment_source(rgb: np.ndarray) -> np.ndarray:
    """The frame fragments are cut from: itself, or, when a side is under 224 px, upsampled
    by 1 / min(height / 224, width / 224) exactly as DOVER does it (torch's bilinear
    interpolation of the 0-1 image, scaled back and truncated to uint8)."""
    height, width = rgb.shape[:2]
    ratio = min(height / VIEW_SIZE, width / VIEW_SIZE)
    if ratio >= 1:
        return rgb
    import torch
    import torch.nn.functional as F

    planes = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None] / 255.0
    scaled = F.interpolate(planes, scale_factor=1 / ratio, mode="bilinear")
    return (scaled * 255.0).to(torch.uint8)[0].numpy().transpose(1, 2, 0)


def torchvision_resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB uint8 image resized as torchvision's ``Resize`` resizes a uint8 tensor, which is
    how the reference shrinks frames for DOVER's aesthetic view and for CoTracker: bilinear
    with antialiasing on float values, rounded back to uint8."""
    import torch
    import torch.nn.functional as F

    planes = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    resized = F.interpolate(
        planes, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return torch.round(resized).to(torch.uint8)[0].numpy().transpose(1, 2, 0)


def aesthetic_frame(rgb: np.ndarray) -> np.ndarray:
    """The frame as the aesthetic view holds it: 224 x 224 (aspect not kept, as in DOVER)."""
    return torchvision_resize(rgb, VIEW_SIZE, VIEW_SIZE)


def mosaic(source: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """The 224 x 224 x 3 mosaic of the 49 fragments at ``origins`` (cell (i, j) at row i,
    column j)."""
    tiles = np.empty((VIEW_SIZE, VIEW_SIZE, 3), np.uint8)
    for i in range(FRAGMENTS):
        for j in range(FRAGMENTS):
            top, left = origins[i, j]
            tiles[
                i * FRAGMENT_SIZE : (i + 1) * FRAGMENT_SIZE,
                j * FRAGMENT_SIZE : (j + 1) * FRAGMENT_SIZE,
            ] = source[top : top + FRAGMENT_SIZE, left : left + FRAGMENT_SIZE]
    return tiles


def window_starts(frame_count: int, clip: int) -> tuple[int, int]:
    """The first and last frame the reference may start technical clip ``clip`` at: anywhere
    in its third that leaves room for the 64 frames, or the third's start when there is none."""
    third = frame_count // TECHNICAL_CLIPS
    low = clip * third
    return low, low + max(third - BLOCK_FRAMES - 1, 0)


def technical_blocks(
    frame_count: int, complete: Sequence[int], rng: np.random.Generator
) -> list[int]:
    """The block (of ``complete``, the whole kept ones) each technical clip uses.

    A random one among blocks starting where the reference may start that clip; else the
    block starting nearest to that range (the earlier on a tie)."""
    picks = []
    for clip in range(TECHNICAL_CLIPS):
        low, high = window_starts(frame_count, clip)
        inside = [block for block in complete if low <= block * BLOCK_FRAMES <= high]
        if inside:
            picks.append(inside[int(rng.integers(len(inside)))])
            continue
        picks.append(
            min(
                complete,
                key=lambda block: (
                    max(low - block * BLOCK_FRAMES, block * BLOCK_FRAMES - high, 0),
                    block,
                ),
            )
        )
    return picks


def wrapped_clip(mosaics: Sequence[np.ndarray], frame_count: int, clip: int) -> list[np.ndarray]:
    """A technical clip of a video under 64 frames: the partial block's frames (every other
    one) from the one nearest the clip's start, cycling as the reference's indices do."""
    start = round(clip * (frame_count // TECHNICAL_CLIPS) / FRAME_INTERVAL) % len(mosaics)
    return [mosaics[(start + k) % len(mosaics)] for k in range(CLIP_LEN)]


def aesthetic_indices(frame_count: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's 32 aesthetic frame indices: one per 1/32 of the clip, at a random offset
    below its length minus 2 (none in segments of 2 frames or fewer), modulo the length."""
    segment = frame_count // AESTHETIC_FRAMES
    if segment > FRAME_INTERVAL:
        offsets = rng.integers(0, segment - FRAME_INTERVAL, size=AESTHETIC_FRAMES)
    else:
        offsets = np.zeros(AESTHETIC_FRAMES, np.int64)
    return (np.arange(AESTHETIC_FRAMES) * segment + offsets) % frame_count


def nearest(kept: Sequence[int], target: int) -> int:
    """The kept index nearest ``target`` (the earlier on a tie); ``kept`` is sorted."""
    position = int(np.searchsorted(kept, target))
    candidates = kept[max(position - 1, 0) : position + 1]
    return min(candidates, key=lambda index: (abs(index - target), index))


def normalised_view(frames: np.ndarray) -> np.ndarray:
    """clips x frames x H x W x RGB uint8 -> clips x RGB x frames x H x W float32, each channel
    as (x - mean) / std, the layout DOVER's views are fed in."""
    scaled = (frames.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(scaled.transpose(0, 4, 1, 2, 3))


# --- standardising ---------------------------------------------------------------------------


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else, so a tampered file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        target = PICKLE_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a prediction set")
        return getattr(importlib.import_module(target[0]), target[1])


def load_prediction_set(path: Path) -> np.ndarray:
    """The float32 ``fragments`` predictions of one of DOVER's ``val-*.pkl`` files."""
    with path.open("rb") as handle:
        try:
            content = _ArraysOnly(handle).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise BackendUnavailable(
                f"{path} is not a DOVER prediction set ({exc}): "
                f"run `talkvid models fetch {MODEL_NAME}`"
            ) from None
    if not isinstance(content, dict) or STANDARDISED_SET not in content:
        raise BackendUnavailable(
            f"{path} has no {STANDARDISED_SET!r} predictions: "
            f"run `talkvid models fetch {MODEL_NAME}`"
        )
    return np.asarray(content[STANDARDISED_SET], dtype=np.float32).reshape(-1)


def standardised_score(value: np.float32, prediction_sets: Sequence[np.ndarray]) -> float:
    """The mean over ``prediction_sets`` of ``value``'s z-score among them (itself included,
    population standard deviation), rounded to 2 decimals: float32 throughout, as the
    reference's numpy code computes it."""
    total = np.float32(0)
    for predictions in prediction_sets:
        values = np.concatenate([np.array([value], dtype=np.float32), predictions])
        total += ((values - np.mean(values)) / np.std(values))[0]
    return float(f"{total / len(prediction_sets):.{SCORE_DECIMALS}f}")


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoverModel:
    """The ONNX session and the prediction sets its output is standardised against."""

    session: Any  # onnxruntime.InferenceSession
    prediction_sets: tuple[np.ndarray, ...]

    def score(self, technical: np.ndarray, aesthetic: np.ndarray) -> float:
        """The clip's score from its uint8 views (3 x 32 and 1 x 32 frames of 224 x 224 RGB)."""
        outputs = self.session.run(
            None,
            {"aes_view": normalised_view(aesthetic), "tech_view": normalised_view(technical)},
        )
        results = [np.mean(output) for output in outputs]
        return standardised_score(results[STANDARDISED_OUTPUT], self.prediction_sets)


def check_signature(session: Any) -> None:
    """Refuse an ONNX file that is not a DOVER export TalkVid's three-clip view fits."""
    inputs = {tensor.name: tensor.shape for tensor in session.get_inputs()}
    if set(inputs) != {"aes_view", "tech_view"} or len(session.get_outputs()) != 2:
        raise BackendUnavailable(
            f"{ONNX_FILE} is not DOVER's export (inputs aes_view and tech_view, two outputs): "
            "make it with DOVER's convert_to_onnx.py (see talkvid_assets/core/quality/dover.py)"
        )
    clips = inputs["tech_view"][0]
    if isinstance(clips, int) and clips != TECHNICAL_CLIPS:
        raise BackendUnavailable(
            f"{ONNX_FILE} takes tech_view with {clips} clips, TalkVid feeds {TECHNICAL_CLIPS}: "
            "re-export with a 3-clip dummy or dynamic_axes={'tech_view': {0: 'clips'}}"
        )


def _load(onnx: Path, sets: tuple[Path, ...], providers: tuple[str, ...]) -> DoverModel:
    """The model for these files and providers, once per process and version of the files
    (their sizes and modification times: files fetched or exported again are loaded again)."""
    versions = tuple((path.stat().st_size, path.stat().st_mtime_ns) for path in (onnx, *sets))
    return _cached_load(onnx, sets, providers, versions)


@functools.cache
def _cached_load(
    onnx: Path,
    sets: tuple[Path, ...],
    providers: tuple[str, ...],
    versions: tuple[tuple[int, int], ...],
) -> DoverModel:
    session = onnx_session(onnx, providers)
    check_signature(session)
    return DoverModel(session, tuple(load_prediction_set(path) for path in sets))


# --- the backend -----------------------------------------------------------------------------


class DoverQuality:
    """Clip scorer factory of the ``dover`` backend (TalkVid's ``dover_scores``)."""

    name = "dover"

    def __init__(self, runtime: Runtime) -> None:
        """Cheap: names the files in the version; they load when the first clip opens."""
        self._runtime = runtime
        sets = ",".join(
            runtime.weight_tag(MODEL_NAME, prediction_file(name)) for name in PREDICTION_SETS
        )
        sets_digest = hashlib.blake2b(sets.encode(), digest_size=6).hexdigest()
        onnx = runtime.weight_tag(MODEL_NAME, ONNX_FILE)
        self.version = f"dover-onnx:{onnx}-sets:{sets_digest}-{VIEWS_VERSION}"

    def _files(self) -> tuple[Path, tuple[Path, ...]]:
        """(the ONNX export, the prediction sets); missing files name ``talkvid models fetch
        dover``."""
        onnx = self._runtime.weight(MODEL_NAME, ONNX_FILE)
        sets = tuple(
            self._runtime.weight(MODEL_NAME, prediction_file(name)) for name in PREDICTION_SETS
        )
        return onnx, sets

    def ready(self) -> None:
        """Whether the export and every prediction set are fetched (onnxruntime is pinned)."""
        self._files()

    def model(self) -> DoverModel:
        """The loaded model; missing files name ``talkvid models fetch dover``."""
        onnx, sets = self._files()
        return _load(onnx, sets, tuple(self._runtime.onnx_providers()))

    def new_clip(self, video: VideoProbe) -> DoverClip:
        return DoverClip(self.model(), video)


@dataclass
class _Block:
    """One kept 64-frame block: its fragment corners and the mosaics of its even frames."""

    origins: np.ndarray
    mosaics: list[np.ndarray] = field(default_factory=list)


class DoverClip:
    """Keeps the mosaics and resized frames the views may need; runs DOVER when the clip ends."""

    def __init__(self, model: DoverModel, video: VideoProbe) -> None:
        self._model = model
        self._video = video
        self._seed: int | None = None
        self._block_stride = 1  # blocks kept: those whose index is a multiple of it
        self._blocks: dict[int, _Block] = {}
        self._aesthetic_step = 1  # frames kept: those whose index is a multiple of it
        self._aesthetic: dict[int, np.ndarray] = {}

    def offer(self, frame: Frame, clip_index: int, clip_time: float) -> None:
        if self._seed is None:
            self._seed = clip_seed(self._video, frame.index)
        if clip_index % FRAME_INTERVAL == 0:
            self._offer_technical(frame, clip_index)
        self._offer_aesthetic(frame, clip_index)

    def _offer_technical(self, frame: Frame, clip_index: int) -> None:
        block, position = divmod(clip_index, BLOCK_FRAMES)
        if position == 0:
            self._open_block(block, frame.height, frame.width)
        kept = self._blocks.get(block)
        if kept is not None:
            kept.mosaics.append(mosaic(fragment_source(frame.image("rgb24")), kept.origins))

    def _open_block(self, block: int, height: int, width: int) -> None:
        """Keep ``block`` if it is on the lattice, coarsening the lattice when it is full."""
        while block % self._block_stride == 0 and len(self._blocks) >= MAX_TECHNICAL_BLOCKS:
            self._block_stride *= 2
            self._blocks = {
                index: kept
                for index, kept in self._blocks.items()
                if index % self._block_stride == 0
            }
        if block % self._block_stride == 0:
            assert self._seed is not None
            origins = fragment_origins(height, width, rng_for(self._seed, 0, block))
            self._blocks[block] = _Block(origins)

    def _offer_aesthetic(self, frame: Frame, clip_index: int) -> None:
        if clip_index % self._aesthetic_step:
            return
        if len(self._aesthetic) >= MAX_AESTHETIC_FRAMES:
            self._aesthetic_step *= 2
            self._aesthetic = {
                index: image
                for index, image in self._aesthetic.items()
                if index % self._aesthetic_step == 0
            }
            if clip_index % self._aesthetic_step:
                return
        self._aesthetic[clip_index] = aesthetic_frame(frame.image("rgb24"))

    def _technical_view(self, frame_count: int, rng: np.random.Generator) -> np.ndarray:
        complete = sorted(
            block
            for block, kept in self._blocks.items()
            if len(kept.mosaics) == CLIP_LEN and (block + 1) * BLOCK_FRAMES - 2 < frame_count
        )
        if complete:
            clips = [
                self._blocks[block].mosaics
                for block in technical_blocks(frame_count, complete, rng)
            ]
        else:
            first = self._blocks[0].mosaics[: (frame_count + 1) // FRAME_INTERVAL]
            clips = [wrapped_clip(first, frame_count, clip) for clip in range(TECHNICAL_CLIPS)]
        return np.stack([np.stack(clip) for clip in clips])

    def _aesthetic_view(self, frame_count: int, rng: np.random.Generator) -> np.ndarray:
        kept = sorted(index for index in self._aesthetic if index < frame_count)
        targets = aesthetic_indices(frame_count, rng)
        frames = [self._aesthetic[nearest(kept, int(target))] for target in targets]
        return np.stack(frames)[None]

    def views(self, frame_count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(technical 3 x 32, aesthetic 1 x 32 frames of 224 x 224 RGB uint8) of a clip of
        ``frame_count`` frames, or None when it has no frame."""
        if frame_count <= 0 or self._seed is None or 0 not in self._blocks:
            return None
        rng = rng_for(self._seed, 1)  # technical choices first, then aesthetic offsets
        return self._technical_view(frame_count, rng), self._aesthetic_view(frame_count, rng)

    def finish(self, duration: float, frame_count: int) -> dict[str, float | None]:
        views = self.views(frame_count)
        return {"quality_score": None if views is None else self._model.score(*views)}


def quality_backend(runtime: Runtime) -> DoverQuality:
    """The ``dover`` quality backend (TalkVid's model); weights load with the first clip."""
    return DoverQuality(runtime)
