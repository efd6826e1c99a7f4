"""Synthetic talking clips and a tiny SyncNet trained on them, for the sync tests.

A clip is a drawn mouth whose opening follows the envelope of a tone: syllables of random
length and loudness separated by pauses, so only one alignment of picture and sound fits. The
network has SyncNet's architecture at a fraction of its width and a 64 px face; it learns from
in-sync and shifted pairs with SyncNet's contrastive loss. What it tests is our code (crops in,
MFCCs, windows, the offset search), not the published weights.
"""

from __future__ import annotations

import numpy as np
import torch

from talkvid_assets.core.sync.mfcc import mfcc
from talkvid_assets.core.sync.network import SyncNet, SyncNetShape
from talkvid_assets.core.sync.scorer import MFCC_PER_FRAME, SYNC_FPS
from talkvid_assets.core.video import AUDIO_RATE

FACE = 56
TINY = SyncNetShape(
    audio=(4, 8, 8, 8, 8, 16),
    lip=(4, 8, 8, 8, 8, 16),
    hidden=16,
    embedding=16,
    face_size=FACE,
)
TONE_HZ = 300.0
MARGIN = 2.0


def envelope(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Loudness per 25 fps frame: syllables of 2-6 frames at random levels, pauses of 1-4."""
    levels: list[float] = []
    while len(levels) < frames:
        levels += [float(rng.uniform(0.3, 1.0))] * int(rng.integers(2, 7))
        levels += [0.0] * int(rng.integers(1, 5))
    return np.array(levels[:frames])


def mouths(levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BGR crops of a mouth opening with ``levels``, ``(frames, FACE, FACE, 3)`` uint8."""
    rows, cols = np.mgrid[0:FACE, 0:FACE]
    crops = []
    for level in levels:
        half_height = 1.5 + 12.0 * level
        inside = ((cols - 28) / 14.0) ** 2 + ((rows - 36) / half_height) ** 2 <= 1.0
        face = np.full((FACE, FACE), 170.0) + rng.normal(0, 4, (FACE, FACE))
        face[inside] = 40.0
        crops.append(np.repeat(np.clip(face, 0, 255)[..., None], 3, axis=2).astype(np.uint8))
    return np.stack(crops)


def tone(levels: np.ndarray, rng: np.random.Generator, rate: int = AUDIO_RATE) -> np.ndarray:
    """Audio at ``rate``: a tone whose loudness follows ``levels`` (linear between frames)."""
    count = len(levels) * rate // SYNC_FPS
    times = np.arange(count) / rate
    gain = np.interp(times * SYNC_FPS - 0.5, np.arange(len(levels)), levels)
    noise = rng.normal(0, 0.003, count)
    return (0.5 * gain * np.sin(2 * np.pi * TONE_HZ * times) + noise).astype(np.float32)


def delayed(audio: np.ndarray, frames: int, rate: int = AUDIO_RATE) -> np.ndarray:
    """``audio`` played ``frames`` 25 fps frames later (earlier when negative), same length."""
    shift = frames * rate // SYNC_FPS
    out = np.zeros_like(audio)
    if shift >= 0:
        out[shift:] = audio[: len(audio) - shift]
    else:
        out[:shift] = audio[-shift:]
    return out


def talking_clip(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops, audio) of a synthetic clip in sync."""
    rng = np.random.default_rng(seed)
    levels = envelope(frames, rng)
    return mouths(levels, rng), tone(levels, rng)


def _windows(crops: np.ndarray, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    coefficients = mfcc(audio)
    count = min(len(crops) - 4, (coefficients.shape[1] - 20) // MFCC_PER_FRAME + 1)
    video = np.stack([crops[i : i + 5] for i in range(count)])
    sound = np.stack(
        [coefficients[:, MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + 20] for i in range(count)]
    )
    return (
        torch.from_numpy(video).permute(0, 4, 1, 2, 3).float(),
        torch.from_numpy(sound[:, None]).float(),
    )


def train_tiny_syncnet(
    seed: int = 0, steps: int = 80, clip: tuple[np.ndarray, np.ndarray] | None = None
) -> SyncNet:
    """A tiny SyncNet trained on synthetic clips with the contrastive loss of the SyncNet
    paper: in-sync pairs pulled together, pairs 3-15 frames apart pushed ``MARGIN`` apart.

    On one thread: torch's threads spin against each other on a busy machine (80 steps took
    60 s on two threads there and 4 s on one). ``clip`` is (crops, audio) to learn from,
    drawn mouths by default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(seed, steps, clip or talking_clip(400, seed + 1000))
    finally:
        torch.set_num_threads(threads)


def _train(seed: int, steps: int, clip: tuple[np.ndarray, np.ndarray]) -> SyncNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    video, sound = _windows(*clip)
    network = SyncNet(TINY)
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    count = len(video)
    for _ in range(steps):
        anchors = rng.integers(0, count, 32)
        shifts = rng.integers(3, 16, 32) * rng.choice([-1, 1], 32)
        others = np.clip(anchors + shifts, 0, count - 1)
        synced = rng.random(32) < 0.5
        partner = np.where(synced, anchors, others)
        label = torch.from_numpy((partner == anchors).astype(np.float32))
        distance = torch.nn.functional.pairwise_distance(
            network.forward_lip(video[anchors]), network.forward_aud(sound[partner])
        )
        loss = label * distance**2 + (1 - label) * torch.clamp(MARGIN - distance, min=0) ** 2
        optimiser.zero_grad()
        loss.mean().backward()
        optimiser.step()
    return network.eval()


# Talking faces: a still of talk_demo.mp4's speaker whose mouth is redrawn, opening with the
# envelope of a tone, so the real face detector finds the face and SyncNet's crop holds a mouth.
STILL_WIDTH = 320
FACE_FPS = 25


def face_still() -> tuple[np.ndarray, list[float], tuple[float, float, float]]:
    """(RGB still, face box, (mouth centre x, y, half width)) found by the embedded RetinaFace."""
    from talkvid_assets.core.faces import face_area
    from talkvid_assets.core.identity import default_detector, detect_faces
    from talkvid_assets_tests.media import read_sample

    frames, _, _ = read_sample("talk_demo.mp4")
    height = round(frames[0].shape[0] * STILL_WIDTH / frames[0].shape[1]) // 2 * 2
    still = cv2_resize(frames[0], (STILL_WIDTH, height))
    face = max(detect_faces([still], default_detector())[0], key=face_area)
    (lx, ly), (rx, ry) = face["kps"][3], face["kps"][4]
    return still, face["bbox"], ((lx + rx) / 2, (ly + ry) / 2, abs(rx - lx) / 2)


def cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def talking_face(levels: np.ndarray, still: np.ndarray, mouth: tuple[float, float, float]):
    """RGB frames of ``still`` with a mouth opening as ``levels`` say."""
    import cv2

    cx, cy, half_width = mouth
    frames = []
    for level in levels:
        frame = still.copy()
        axes = (max(2, round(half_width)), max(1, round(1 + half_width * 0.9 * level)))
        cv2.ellipse(frame, (round(cx), round(cy)), axes, 0, 0, 360, (30, 10, 10), -1)
        frames.append(frame)
    return frames


def face_crops(frames: list[np.ndarray], bbox: list[float], size: int) -> np.ndarray:
    """The crops the sync backend takes of ``frames`` (BGR, as SyncNet is fed)."""
    import cv2

    from talkvid_assets.core.sync.scorer import face_crop

    return np.stack([face_crop(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), bbox, size) for f in frames])


def train_face_syncnet(still, bbox, mouth, seed: int = 0, steps: int = 80) -> SyncNet:
    """The tiny SyncNet trained on crops of the talking still (see :func:`train_tiny_syncnet`)."""
    rng = np.random.default_rng(seed + 2000)
    levels = envelope(400, rng)
    crops = face_crops(talking_face(levels, still, mouth), bbox, FACE)
    return train_tiny_syncnet(seed, steps, (crops, tone(levels, rng)))
