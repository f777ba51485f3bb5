"""Untrained controls for models without a PyTorch class (ONNX, TFLite, bare state dicts).

A trained model's "twin" keeps every convolution's shape, groups, stride and dilation and
replaces its weights by a fresh draw of PyTorch's default `nn.Conv2d` initialisation,
kaiming_uniform(a=√5), i.e. U(−1/√fan_in, 1/√fan_in) with fan_in = in/groups·kh·kw. Whatever
structure the trained kernels show and the twin's do not was learnt.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..records import ConvLayer


def reinit_layers(layers: list[ConvLayer], seed: int) -> list[ConvLayer]:
    """The same layers with weights drawn as `nn.Conv2d` would, layer after layer from one generator seeded `seed`.

    For a single layer this equals ``torch.manual_seed(seed); nn.Conv2d(...).weight``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for layer in layers:
        weight = torch.empty(tuple(layer.weight.shape), dtype=torch.float32)
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        out.append(dataclasses.replace(layer, weight=weight.numpy()))
    return out
