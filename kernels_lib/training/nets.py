"""Networks for the training experiments: a small ConvMixer-style depthwise CNN, timm models by
name, and the DoG initialisation of the paper's Appendix F.

`DepthwiseNet` is ConvMixer (the paper's Appendix F model) at a size a CPU trains in minutes: a
patchify stem (a regular conv with kernel = stride = patch size), then `depth` blocks of a
residual depthwise k×k conv and a pointwise conv, each followed by GELU and batch norm, then
global average pooling and a linear classifier. Its depthwise convs are `DepthwiseConv2d`, an
`nn.Conv2d` (same weights, same state dict, found by `sources.module.conv_layers`) whose forward
switches to a per-channel matrix product when the kernel is large against the feature map: on a
CPU that trains a 31×31 kernel on a 16×16 map twenty times faster than `F.conv2d`, with the same
result to float rounding.

`dog_initialise` redraws every depthwise kernel of any model from the DoG family
(`kernels_lib.dog_bank.synthetic_bank`, noise-free) with the Appendix F mix, scaled to the norm
PyTorch's default initialisation gives, so only the shape changes.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..method import dog_bank
from ..errors import KernelsLibError, did_you_mean

#: Appendix F: "45% on-center, 10% off-center, 15% cross, 20% first derivative, and the rest second
#: derivatives". The paper does not say which crosses; they are split evenly between On and Off here.
APPENDIX_F_MIX: dict[str, float] = {"on": 0.45, "off": 0.10, "on-cross": 0.075, "off-cross": 0.075,
                                    "1st-derivative": 0.20, "2nd-derivative": 0.10}
BUILT_IN = "depthwise"
#: "zeros" is the usual 'same' padding; "circular" wraps the map round, so the borders carry no edge
#: (a control for the reviewers' question whether some clusters are padding artefacts).
PADDING_MODES = ("zeros", "circular")


class ModelError(KernelsLibError, ValueError):
    """A model that cannot be built as asked; the message says what to change."""


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise conv (groups = channels, stride 1, 'same' padding) that picks its algorithm per call.

    On large kernels against the map (H·W ≤ 4·k²) each channel's convolution is written as an
    (H·W)×(H·W) matrix gathered from the kernel, and applied with one batched matmul; autograd
    scatters the gradient back into the kernel. Otherwise it is `F.conv2d`.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True, padding_mode: str = "zeros"):
        if kernel_size % 2 != 1:
            raise ModelError(f"depthwise kernel size must be odd for 'same' padding, got {kernel_size}")
        if padding_mode not in PADDING_MODES:
            raise ModelError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=bias,
                         padding_mode=padding_mode)
        self._gather: dict[tuple[int, int], torch.Tensor] = {}

    def _gather_index(self, height: int, width: int, device) -> torch.Tensor:
        """index[o, i] into the flattened kernel (k² = a zero) of input pixel i's weight for output pixel o."""
        key = (height, width)
        if key not in self._gather:
            k = self.kernel_size[0]
            half = k // 2
            rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            rows, cols = rows.reshape(-1), cols.reshape(-1)
            dy = rows[None, :] - rows[:, None] + half
            dx = cols[None, :] - cols[:, None] + half
            if self.padding_mode == "circular":
                if k > min(height, width):
                    raise ModelError(f"circular padding needs feature maps at least as large as the kernel; "
                                     f"got {height}×{width} maps for {k}×{k} kernels")
                dy, dx = dy % height, dx % width        # offsets wrap round the map
            inside = (dy >= 0) & (dy < k) & (dx >= 0) & (dx < k)
            self._gather[key] = torch.where(inside, dy * k + dx, k * k)
        return self._gather[key].to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        k = self.kernel_size[0]
        if height * width > 4 * k * k:
            return super().forward(x)
        flat = torch.cat([self.weight.reshape(channels, k * k), self.weight.new_zeros(channels, 1)], dim=1)
        matrix = flat[:, self._gather_index(height, width, x.device)]           # [C, HW out, HW in]
        y = torch.bmm(matrix, x.reshape(batch, channels, height * width).permute(1, 2, 0))
        y = y.permute(2, 0, 1).reshape(batch, channels, height, width)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class _Residual(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x + self.inner(x)


class DepthwiseNet(nn.Sequential):
    """ConvMixer: patchify stem, `depth` × (residual depthwise k×k + pointwise), pooling, linear head.

    padding_mode applies to the depthwise convs (see `PADDING_MODES`)."""

    def __init__(self, n_classes: int, kernel_size: int = 7, width: int = 48, depth: int = 4, patch_size: int = 2,
                 in_channels: int = 3, padding_mode: str = "zeros"):
        for name, value in (("n_classes", n_classes), ("width", width), ("depth", depth), ("patch_size", patch_size)):
            if int(value) != value or value < 1:
                raise ModelError(f"{name} must be a positive integer, got {value!r}")
        layers = [nn.Conv2d(in_channels, width, patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(width)]
        for _ in range(depth):
            depthwise = DepthwiseConv2d(width, kernel_size, padding_mode=padding_mode)
            layers += [_Residual(nn.Sequential(depthwise, nn.GELU(), nn.BatchNorm2d(width))),
                       nn.Conv2d(width, width, 1), nn.GELU(), nn.BatchNorm2d(width)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes)]
        super().__init__(*layers)


def create_model(name: str, n_classes: int, **options) -> nn.Module:
    """The built-in `DepthwiseNet` ("depthwise"; options kernel_size, width, depth, patch_size) or a timm
    model by name with random weights (options go to `timm.create_model`, e.g. patch_size for ConvMixer)."""
    if name == BUILT_IN:
        return DepthwiseNet(n_classes, **options)
    import timm

    if name not in timm.list_models():
        raise ModelError(f"{name!r} is neither {BUILT_IN!r} (the built-in depthwise CNN) nor a timm model; "
                         f"{did_you_mean(name, timm.list_models(), n=5, cutoff=0.6)}".rstrip("; "))
    try:
        return timm.create_model(name, pretrained=False, num_classes=n_classes, **options)
    except TypeError as err:
        raise ModelError(f"timm model {name!r} does not take options {sorted(options)}: {err}") from err


def depthwise_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """(name, module) of every depthwise conv (groups = in_channels > 1, one input channel per kernel), in order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            and m.weight.shape[1] == 1 and m.out_channels % m.in_channels == 0]


def dog_kernels(k: int, n: int, seed: int, mix: dict | None = None) -> np.ndarray:
    """n noise-free k×k kernels of the DoG family drawn with `mix` (default `APPENDIX_F_MIX`), each
    scaled to the RMS of PyTorch's default depthwise initialisation, U(−1/k, 1/k): 1/(k·√3).

    Shapes and "random variances" come from `dog_bank.synthetic_bank`: centre σ over
    `dog.default_sigma_range(k)`, surround ratio 1.5–3, cross σ 0.4–0.8 px, sub-pixel shifts.
    """
    bank = dog_bank.synthetic_bank(k, n, snr=np.inf, class_weights=APPENDIX_F_MIX if mix is None else mix, seed=seed,
                              amplitude_range=(1.0, 1.0))
    kernels = bank.clean.astype(np.float64)
    rms = np.sqrt((kernels ** 2).mean(axis=(1, 2), keepdims=True))
    return (kernels / rms / (k * math.sqrt(3.0))).astype(np.float32)


@torch.no_grad()
def dog_initialise(model: nn.Module, seed: int, mix: dict | None = None) -> list[str]:
    """Redraw every square depthwise kernel of `model` from the DoG family (see `dog_kernels`); biases
    stay as they are. Returns the names of the convs changed; a model without any is an error."""
    changed = []
    for index, (name, conv) in enumerate(depthwise_convs(model)):
        kh, kw = conv.kernel_size
        if kh != kw or kh < 3:
            continue
        kernels = dog_kernels(kh, conv.out_channels, seed=seed * 1000 + index, mix=mix)
        conv.weight.copy_(torch.from_numpy(kernels).view_as(conv.weight))
        changed.append(name)
    if not changed:
        raise ModelError(f"{type(model).__name__} has no square depthwise conv of size >= 3 to initialise with DoGs")
    return changed


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

