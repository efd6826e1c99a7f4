"""SyncNet's two-stream network (Chung & Zisserman, "Out of time", ACCV 2016 workshops; MIT).

A VGG-M style 3-D convolution stack embeds five face crops (0.2 s at 25 fps) and a 2-D stack
embeds the 20 MFCC frames of the same 0.2 s; in sync the two embeddings lie close. The layer
sequence, kernels and strides are those of the published ``syncnet_v2.model`` (``joonson/
syncnet_python``), whose state-dict keys (``netcnnaud``, ``netfcaud``, ``netcnnlip``,
``netfclip``) :func:`load_syncnet` reads. The channel widths and the face size are parameters,
so a network of the same architecture but a fraction of the size can be trained in a test;
the published model is ``SyncNetShape()`` (224 px faces, 1024-D embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

MFCC_FRAMES = 20  # 0.2 s of 10 ms MFCC frames
VIDEO_FRAMES = 5  # 0.2 s at 25 fps
PUBLISHED_FACE_SIZE = 224


@dataclass(frozen=True)
class SyncNetShape:
    """Channel widths of each stream and the face crop size; defaults are the published model."""

    audio: tuple[int, ...] = (64, 192, 384, 256, 256, 512)
    lip: tuple[int, ...] = (96, 256, 256, 256, 256, 512)
    hidden: int = 512
    embedding: int = 1024
    face_size: int = PUBLISHED_FACE_SIZE

    @property
    def lip_kernel(self) -> int:
        """Side of the last lip convolution: what is left of ``face_size`` after the stack
        (6 for 224 px), so the stack ends in one spatial position as the published one does."""
        side = (self.face_size - 7) // 2 + 1  # conv 7x7 stride 2
        side = (side - 3) // 2 + 1  # max pool 3x3 stride 2
        side = (side + 2 - 5) // 2 + 1  # conv 5x5 stride 2 pad 1
        side = (side + 2 - 3) // 2 + 1  # max pool 3x3 stride 2 pad 1
        return (side - 3) // 2 + 1  # three 3x3 convs keep it; max pool 3x3 stride 2


def _block(conv: nn.Module, channels: int, dims: int) -> list[nn.Module]:
    norm = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    return [conv, norm, nn.ReLU(inplace=True)]


def _head(width: int, hidden: int, embedding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, embedding),
    )


class SyncNet(nn.Module):
    """Embeds 0.2 s of face crops and of MFCCs into one space (see the module docstring)."""

    def __init__(self, shape: SyncNetShape = SyncNetShape()) -> None:
        super().__init__()
        self.shape = shape
        a, v = shape.audio, shape.lip
        self.netcnnaud = nn.Sequential(
            *_block(nn.Conv2d(1, a[0], 3, padding=1), a[0], 2),
            nn.MaxPool2d(1, 1),
            *_block(nn.Conv2d(a[0], a[1], 3, padding=1), a[1], 2),
            nn.MaxPool2d(3, (1, 2)),
            *_block(nn.Conv2d(a[1], a[2], 3, padding=1), a[2], 2),
            *_block(nn.Conv2d(a[2], a[3], 3, padding=1), a[3], 2),
            *_block(nn.Conv2d(a[3], a[4], 3, padding=1), a[4], 2),
            nn.MaxPool2d(3, 2),
            *_block(nn.Conv2d(a[4], a[5], (5, 4)), a[5], 2),
        )
        self.netfcaud = _head(a[5], shape.hidden, shape.embedding)
        k = shape.lip_kernel
        self.netcnnlip = nn.Sequential(
            *_block(nn.Conv3d(3, v[0], (5, 7, 7), (1, 2, 2)), v[0], 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_block(nn.Conv3d(v[0], v[1], (1, 5, 5), (1, 2, 2), (0, 1, 1)), v[1], 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_block(nn.Conv3d(v[1], v[2], (1, 3, 3), padding=(0, 1, 1)), v[2], 3),
            *_block(nn.Conv3d(v[2], v[3], (1, 3, 3), padding=(0, 1, 1)), v[3], 3),
            *_block(nn.Conv3d(v[3], v[4], (1, 3, 3), padding=(0, 1, 1)), v[4], 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_block(nn.Conv3d(v[4], v[5], (1, k, k)), v[5], 3),
        )
        self.netfclip = _head(v[5], shape.hidden, shape.embedding)

    def forward_aud(self, mfccs: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, 13, 20)`` MFCC windows -> ``(batch, embedding)``."""
        return self.netfcaud(self.netcnnaud(mfccs).flatten(1))

    def forward_lip(self, faces: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, 5, face_size, face_size)`` BGR crops, 0-255 -> ``(batch, embedding)``."""
        return self.netfclip(self.netcnnlip(faces).flatten(1))


def shape_of(state: dict[str, torch.Tensor], face_size: int) -> SyncNetShape:
    """The widths of a SyncNet state dict, read from its convolution and linear weights."""

    def widths(stack: str) -> tuple[int, ...]:
        convs = sorted(
            (int(key.split(".")[1]), value.shape[0])
            for key, value in state.items()
            if key.startswith(f"{stack}.") and key.endswith(".weight") and value.dim() >= 4
        )
        return tuple(width for _, width in convs)

    return SyncNetShape(
        audio=widths("netcnnaud"),
        lip=widths("netcnnlip"),
        hidden=state["netfcaud.0.weight"].shape[0],
        embedding=state["netfcaud.3.weight"].shape[0],
        face_size=face_size,
    )


def save_syncnet(network: SyncNet, path: Path) -> None:
    """Write a network of any shape so :func:`load_syncnet` reads it back: its state dict and
    its face size (the published file is a bare state dict of the 224 px network)."""
    torch.save({"face_size": network.shape.face_size, "state_dict": network.state_dict()}, path)


def load_syncnet(path: Path, device: str = "cpu") -> SyncNet:
    """A SyncNet in evaluation mode from the published ``syncnet_v2.model`` or a file written
    by :func:`save_syncnet`; the shape comes from the weights themselves."""
    saved: Any = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in saved:
        state, face_size = saved["state_dict"], int(saved["face_size"])
    else:
        state, face_size = saved, PUBLISHED_FACE_SIZE
    network = SyncNet(shape_of(state, face_size))
    network.load_state_dict(state)
    return network.eval().to(device)
