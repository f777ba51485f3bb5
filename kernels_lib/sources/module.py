"""Convolution layers of any PyTorch model, found by walking its modules.

The module walk is the authoritative source: `groups`, `in_channels`, stride and dilation are
read from the layer itself rather than guessed from weight shapes (compare `state_dict`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..records import ConvLayer


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


def regular_layers(layers: list[ConvLayer], min_size: int = 2) -> list[ConvLayer]:
    """The regular (groups == 1) convs with a spatial extent, for comparing with depthwise kernels.

    Each layer holds out × in kernels of shape kh × kw (`weight.reshape(-1, kh, kw)`). Only kernels at
    least `min_size` wide in both directions count: pointwise 1×1 and 1×k convs have no 2-D pattern to
    show (`min_size=1` keeps them).
    """
    return [layer for layer in layers if layer.groups == 1 and min(layer.kernel_size) >= min_size]
