"""Convolution layers of any PyTorch model, found by walking its modules.

The module walk is the authoritative source: `groups`, `in_channels`, stride and dilation are
read from the layer itself rather than guessed from weight shapes (compare `state_dict`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..records import ConvLayer, is_depthwise_conv


def conv_layers(model: nn.Module) -> list[ConvLayer]:
    """Every `nn.Conv2d` of `model` (subclasses included, e.g. timm's Conv2dSame), in network order.

    Regular, grouped and depthwise convs are all returned; `records.depthwise_layers` picks the
    depthwise ones. Weights are copied to float32 numpy, so later changes to the model do not
    reach the returned layers.
    """
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        weight = module.weight
        if isinstance(weight, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"conv {name!r} of {type(model).__name__} is a lazy module that was never run; "
                "run one forward pass first so its weight has a shape"
            )
        layers.append(ConvLayer(
            name=name,
            weight=weight.detach().to(device="cpu", dtype=torch.float32).numpy().copy(),
            in_channels=int(module.in_channels),
            groups=int(module.groups),
            dilation=tuple(int(d) for d in module.dilation),
            stride=tuple(int(s) for s in module.stride),
        ))
    return layers


def depthwise_kernel_counts(model: nn.Module) -> dict[str, int]:
    """Depthwise kernels of `model` per size ({"7x7": n}, sizes in ascending order), from the layers' shapes
    alone: the convs `conv_layers` finds, counted without touching a weight, so a model built on the
    meta device (no storage) counts the same as a loaded one."""
    counts: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and is_depthwise_conv(module.groups, module.in_channels, module.weight.shape):
            size = tuple(int(s) for s in module.weight.shape[2:])
            counts[size] = counts.get(size, 0) + int(module.weight.shape[0])
    return {f"{kh}x{kw}": counts[kh, kw] for kh, kw in sorted(counts)}


def regular_layers(layers: list[ConvLayer], min_size: int = 2) -> list[ConvLayer]:
    """The regular (groups == 1) convs with a spatial extent, for comparing with depthwise kernels.

    Each layer holds out × in kernels of shape kh × kw (`weight.reshape(-1, kh, kw)`). Only kernels at
    least `min_size` wide in both directions count: pointwise 1×1 and 1×k convs have no 2-D pattern to
    show (`min_size=1` keeps them).
    """
    return [layer for layer in layers if layer.groups == 1 and min(layer.kernel_size) >= min_size]
