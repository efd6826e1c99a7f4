"""The ``retinaface-torch`` face backends: RetinaFace in plain torch, for biubug6's checkpoints.

``retinaface-torch`` runs ``mobilenet0.25_Final.pth`` and ``retinaface-torch-r50`` runs
``Resnet50_Final.pth`` (biubug6/Pytorch_Retinaface, MIT; fetched with ``talkvid models fetch
retinaface-torch``) on the configured torch device, frames batched. The network is rebuilt here
without torchvision (which does not import on our machines): every module and parameter has the
name biubug6's model gives it, ResNet-50 in torchvision's layout under ``body.``, so the published
state dicts load with ``strict=True``. Pre- and post-processing are the ones of the ONNX backend
(:mod:`.retinaface`), so both backends read network outputs the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from talkvid_assets.core.faces import HeadDetailScorer
from talkvid_assets.core.faces.retinaface import (
    POSTPROCESS_VERSION,
    RetinaFaceDetector,
    network_input,
)
from talkvid_assets.core.models import sha256_of
from talkvid_assets.core.runtime import Runtime

ANCHORS = 2  # anchor sizes per cell and pyramid level
# Backbone name -> (checkpoint file, FPN input width of the first level, FPN and head width),
# biubug6's cfg_mnet and cfg_re50 ("in_channel", "out_channel").
BACKBONES = {
    "mobilenet0.25": ("mobilenet0.25_Final.pth", 32, 64),
    "resnet50": ("Resnet50_Final.pth", 256, 256),
}
MODEL_NAME = "retinaface-torch"  # the `talkvid models fetch` name of both checkpoints


def conv_bn(
    inputs: int,
    outputs: int,
    kernel: int = 3,
    stride: int = 1,
    leaky: float | None = 0.0,
    groups: int = 1,
) -> nn.Sequential:
    """Convolution (no bias), batch norm and, unless ``leaky`` is None, a leaky ReLU: the unit
    biubug6 builds everything but the heads from (children named 0, 1, 2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def conv_dw(inputs: int, outputs: int, stride: int) -> nn.Sequential:
    """MobileNet's depthwise-separable block as one flat Sequential (children 0 to 5)."""
    depthwise = conv_bn(inputs, inputs, 3, stride, 0.1, groups=inputs)
    pointwise = conv_bn(inputs, outputs, 1, 1, 0.1)
    return nn.Sequential(*depthwise, *pointwise)


class MobileNet025(nn.Module):
    """MobileNet-V1 at width 0.25 with leaky ReLUs; returns the stride 8, 16 and 32 maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 3, 2, 0.1),
            conv_dw(8, 16, 1),
            conv_dw(16, 32, 2),
            conv_dw(32, 32, 1),
            conv_dw(32, 64, 2),
            conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *(conv_dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 convolution), same child names."""

    expansion = 4

    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        outputs = planes * self.expansion
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, outputs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def resnet_layer(inputs: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    first = Bottleneck(inputs, planes, stride)
    rest = (Bottleneck(planes * Bottleneck.expansion, planes, 1) for _ in range(blocks - 1))
    return nn.Sequential(first, *rest)


class ResNet50(nn.Module):
    """ResNet-50 up to layer4 (what IntermediateLayerGetter keeps); returns layers 2 to 4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = resnet_layer(64, 64, 3, 1)
        self.layer2 = resnet_layer(256, 128, 4, 2)
        self.layer3 = resnet_layer(512, 256, 6, 2)
        self.layer4 = resnet_layer(1024, 512, 3, 2)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


def _leaky(width: int) -> float:
    """biubug6 uses leaky ReLUs (0.1) in the narrow MobileNet neck and plain ones at 256."""
    return 0.1 if width <= 64 else 0.0


class FPN(nn.Module):
    """Feature pyramid: 1x1 lateral projections, top-down nearest upsampling, 3x3 merges."""

    def __init__(self, inputs: list[int], width: int) -> None:
        super().__init__()
        leaky = _leaky(width)
        self.output1 = conv_bn(inputs[0], width, 1, 1, leaky)
        self.output2 = conv_bn(inputs[1], width, 1, 1, leaky)
        self.output3 = conv_bn(inputs[2], width, 1, 1, leaky)
        self.merge1 = conv_bn(width, width, 3, 1, leaky)
        self.merge2 = conv_bn(width, width, 3, 1, leaky)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        p3, p4, p5 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields made of
    stacked 3x3 convolutions (the 7x7 branch continues the 5x5 one), concatenated."""

    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        leaky = _leaky(width)
        self.conv3X3 = conv_bn(inputs, width // 2, leaky=None)
        self.conv5X5_1 = conv_bn(inputs, width // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn(width // 4, width // 4, leaky=None)
        self.conv7X7_2 = conv_bn(width // 4, width // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn(width // 4, width // 4, leaky=None)

    def forward(self, x: Tensor) -> Tensor:
        branch3 = self.conv3X3(x)
        shared = self.conv5X5_1(x)
        branch5 = self.conv5X5_2(shared)
        branch7 = self.conv7x7_3(self.conv7X7_2(shared))
        return F.relu(torch.cat([branch3, branch5, branch7], 1))


class Head(nn.Module):
    """A 1x1 convolution predicting ``values`` numbers per anchor, as N x anchors x values."""

    def __init__(self, inputs: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(inputs, ANCHORS * values, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """biubug6's RetinaFace in test mode: (box offsets, face probabilities, key-point offsets)
    for every anchor, the probabilities softmaxed like the ONNX export's ``conf``."""

    def __init__(self, backbone: str = "mobilenet0.25") -> None:
        super().__init__()
        _, stage_width, width = BACKBONES[backbone]
        self.body = MobileNet025() if backbone == "mobilenet0.25" else ResNet50()
        self.fpn = FPN([stage_width * 2, stage_width * 4, stage_width * 8], width)
        self.ssh1 = SSH(width, width)
        self.ssh2 = SSH(width, width)
        self.ssh3 = SSH(width, width)
        self.ClassHead = nn.ModuleList(Head(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(width, 10) for _ in range(3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pyramid = self.fpn(self.body(x))
        features = [self.ssh1(pyramid[0]), self.ssh2(pyramid[1]), self.ssh3(pyramid[2])]

        def heads(modules: nn.ModuleList) -> Tensor:
            return torch.cat([head(f) for head, f in zip(modules, features, strict=True)], 1)

        loc, logits, landmarks = (
            heads(self.BboxHead),
            heads(self.ClassHead),
            heads(self.LandmarkHead),
        )
        return loc, F.softmax(logits, dim=-1), landmarks


def checkpoint_state_dict(path: Path) -> dict[str, Tensor]:
    """A biubug6 checkpoint's state dict: unwrapped from ``{"state_dict": ...}`` when saved so,
    and without the ``module.`` prefix DataParallel training leaves on every key."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    state = loaded.get("state_dict", loaded)
    return {key.removeprefix("module."): value for key, value in state.items()}


def conv_batch_norms(model: nn.Module) -> dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution by name with the batch norm that follows it (None for the heads)."""
    pairs: dict[str, tuple[nn.Conv2d, nn.BatchNorm2d | None]] = {}
    last = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            pairs[name], last = (module, None), name
        elif isinstance(module, nn.BatchNorm2d):
            pairs[last] = (pairs[last][0], module)
    return pairs


@torch.no_grad()
def load_folded(model: nn.Module, folded: Mapping[str, tuple[Tensor, Tensor]]) -> None:
    """Load weights whose batch norms were folded into the convolutions (an ONNX export's), as
    ``{conv name: (weight, bias)}`` for every convolution.

    The module keeps its batch norms and bias-free convolutions, so one class serves both
    kinds of weights: each norm becomes the identity plus the folded bias (scale 1, shift =
    bias, mean 0, and variance 1 - eps so that var + eps is exactly 1).
    """
    pairs = conv_batch_norms(model)
    if set(folded) != set(pairs):
        missing, extra = sorted(set(pairs) - set(folded)), sorted(set(folded) - set(pairs))
        raise ValueError(f"folded weights do not cover the model: missing {missing}, extra {extra}")
    for name, (weight, bias) in folded.items():
        conv, norm = pairs[name]
        conv.weight.copy_(weight)
        if norm is None:
            conv.bias.copy_(bias)
            continue
        norm.weight.fill_(1.0)
        norm.bias.copy_(bias)
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)


@functools.cache
def _weights_digest(path: Path, size: int, mtime_ns: int) -> str:
    """The sha256 of a checkpoint, hashed once per file version (size and mtime)."""
    return sha256_of(path)


@functools.cache
def _network(path: Path, backbone: str, device: str) -> RetinaFace:
    """The checkpoint's network on ``device``. TF32 convolutions are turned off (process-wide):
    with them an H100's outputs differ from the CPU's by up to 0.04 (box and key-point
    offsets), without them by under 1e-4, so scores do not depend on the card."""
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    model = RetinaFace(backbone)
    model.load_state_dict(checkpoint_state_dict(path), strict=True)
    return model.eval().to(device)


class TorchRetinaFace(RetinaFaceDetector):
    """RetinaFace on torch from a biubug6 checkpoint, frames batched on the runtime's device."""

    # On an H100, MobileNet-0.25 at 640x360 runs 229 frames/s one at a time, 8585 in batches of
    # 32 (ResNet-50: 96 and 1185).
    batch_size = 32

    def __init__(self, runtime: Runtime, backbone: str = "mobilenet0.25") -> None:
        self._runtime = runtime
        self._backbone = backbone
        self.name = MODEL_NAME if backbone == "mobilenet0.25" else f"{MODEL_NAME}-r50"
        self.version = f"{backbone}-torch-{self._digest()}-{POSTPROCESS_VERSION}"

    def _file(self) -> Path:
        return self._runtime.models_dir / MODEL_NAME / BACKBONES[self._backbone][0]

    def _digest(self) -> str:
        """The checkpoint's sha256 prefix, so scores name the weights that made them; a missing
        file (reported when the backend first detects) reads as ``unfetched``."""
        path = self._file()
        if not path.is_file():
            return "unfetched"
        stat = path.stat()
        return _weights_digest(path, stat.st_size, stat.st_mtime_ns)[:12]

    def _checkpoint(self) -> Path:
        """The checkpoint's path; a missing one names ``talkvid models fetch retinaface-torch``."""
        return self._runtime.weight(MODEL_NAME, BACKBONES[self._backbone][0])

    def ready(self) -> None:
        """Whether this backbone's checkpoint is fetched (torch is pinned)."""
        self._checkpoint()

    def network(self) -> RetinaFace:
        """The loaded network (once per file and device); names the fetch command if missing."""
        return _network(self._checkpoint(), self._backbone, self._runtime.torch_device())

    def network_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = self.network()
        device = next(model.parameters()).device
        with torch.inference_mode():
            outputs = model(torch.from_numpy(network_input(batch)).to(device))
        loc, conf, landmarks = (out.cpu().numpy() for out in outputs)
        return loc, conf, landmarks


def head_detail_backend(runtime: Runtime) -> HeadDetailScorer:
    """The ``retinaface-torch`` head-detail backend: biubug6's MobileNet-0.25 checkpoint on the
    configured torch device. Cheap: the network loads on the first detection."""
    return HeadDetailScorer(TorchRetinaFace(runtime, "mobilenet0.25"))


def head_detail_backend_r50(runtime: Runtime) -> HeadDetailScorer:
    """The ``retinaface-torch-r50`` head-detail backend: biubug6's ResNet-50 checkpoint (the
    accurate one, for a GPU) on the configured torch device; loads on the first detection."""
    return HeadDetailScorer(TorchRetinaFace(runtime, "resnet50"))
