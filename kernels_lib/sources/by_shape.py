"""Convolution layers recognised from bare tensors, whatever their names: the shape decides.

Used where a file holds weights but no model: state dicts (.pth/.safetensors), Keras weights-only
files, TF.js weight manifests. Two layouts exist:

- PyTorch  [out, in/groups, kh, kw]; depthwise [C·mult, 1, kh, kw]
- TF/JAX   [kh, kw, in, out];        depthwise [kh, kw, C, mult]

The file's layout is voted on by its 4-D tensors (a square spatial pair in one reading and not
in the other), names break a tie ("kernel" → TF, "weight" → PyTorch), and `layout=` overrides.
Obvious non-convs (positional embeddings, masks, integer buffers, [1, C, H, W] buffers) are left
out, and every 4-D tensor left out is named in the notes with the reason.

What shapes cannot tell: stride and dilation (recorded as 1), grouped convs, and in TF layout a
[kh, kw, C, 1] depthwise kernel from a regular conv with one output channel (taken as depthwise,
as it nearly always is); a TF [kh, kw, C, M>1] is depthwise only when its name says "depthwise"/"dw".
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import NoDepthwiseError
from ..records import ConvLayer

LAYOUTS = ("torch", "tf")
#: Largest kernel side taken for a conv (SLaK uses 51×51); larger "spatial" sides mean another layout or no conv.
MAX_KERNEL_SIDE = 64
_WEIGHT_WORDS = {"weight", "weights", "kernel", "depthwise_kernel", "w", "filter", "filters",
                 "depthwise_filter", "depthwise_weights", "dw"}
_TF_WORDS = {"kernel", "depthwise_kernel", "filter", "filters", "depthwise_filter", "depthwise_weights"}
_NOT_CONV = re.compile(r"pos(ition(al)?)?_?(embed|emb|enc|bias)|rel(ative)?_pos|cls_token|dist_token|"
                       r"anchor|(^|[._/])(mask|grid|gamma|beta|scale|layer_scale|ls\d*)([._/:]|$)")
_DEPTHWISE_NAME = re.compile(r"depthwise|(^|[._/])dw|dw([._/]|$)|conv_dw")


@dataclass(frozen=True)
class Tensor:
    """A named tensor not yet read: its shape, whether it is floating point, and how to read it."""

    name: str
    shape: tuple[int, ...]
    is_float: bool
    read: Callable[[], np.ndarray]


def module_name(name: str) -> str:
    """'blocks.3.conv_dw.weight' → 'blocks.3.conv_dw'; 'block_1_depthwise/depthwise_kernel:0' → 'block_1_depthwise'."""
    name = re.sub(r":\d+$", "", name)
    head, sep, last = max(name.rpartition("."), name.rpartition("/"), key=lambda p: len(p[0]))
    return head if sep and last.lower() in _WEIGHT_WORDS else name


def _last_word(name: str) -> str:
    return re.split(r"[./]", re.sub(r":\d+$", "", name))[-1].lower()


def _vote(shape) -> str | None:
    """The layout a shape alone points to: square spatial pair and plausible size in one reading only."""
    def plausible(kh, kw):
        return kh == kw and 1 <= kh <= MAX_KERNEL_SIDE
    as_torch, as_tf = plausible(shape[2], shape[3]), plausible(shape[0], shape[1])
    return "torch" if as_torch and not as_tf else "tf" if as_tf and not as_torch else None


def detect_layout(tensors: list[Tensor], path) -> tuple[str, str]:
    """(layout, how it was decided) of 4-D candidate tensors; asks for layout= when nothing tells."""
    votes = defaultdict(int)
    for t in tensors:
        vote = _vote(t.shape)
        if vote:
            votes[vote] += 1
    if votes["torch"] != votes["tf"]:
        winner = max(votes, key=votes.get)
        against = votes["tf" if winner == "torch" else "torch"]
        return winner, (f"{winner} layout detected from tensor shapes ({votes[winner]} agree"
                        + (f", {against} disagree" if against else "") + ")")
    hints = defaultdict(int)
    for t in tensors:
        word = _last_word(t.name)
        hints["tf" if word in _TF_WORDS else "torch" if word == "weight" else ""] += 1
    hints.pop("", None)
    if hints and hints.get("torch", 0) != hints.get("tf", 0):
        winner = max(hints, key=hints.get)
        return winner, f"{winner} layout chosen from tensor names ('kernel' → tf, 'weight' → torch)"
    seen = ", ".join(f"{t.name} {list(t.shape)}" for t in tensors[:5])
    raise NoDepthwiseError(f"{path}: cannot tell whether the 4-D tensors are in PyTorch [out, in, kh, kw] or "
                           f"TF [kh, kw, in, out] layout (e.g. {seen}); pass layout='torch' or layout='tf'")


def _skip_reason(t: Tensor) -> str | None:
    if not t.is_float:
        return "not floating point"
    if _NOT_CONV.search(t.name.lower()) and _last_word(t.name) not in _WEIGHT_WORDS - {"w"}:
        return "its name says it is not a conv weight"
    if 0 in t.shape:
        return "empty"
    return None


def _layer(t: Tensor, layout: str) -> tuple[ConvLayer | None, str | None]:
    """The conv layer tensor `t` is in `layout`, or (None, why not)."""
    if layout == "torch":
        out, per_group, kh, kw = t.shape
    else:
        kh, kw, per_group, out = t.shape
    if max(kh, kw) > MAX_KERNEL_SIDE:
        return None, f"spatial size {kh}×{kw} is not a conv kernel in {layout} layout"
    word = _last_word(t.name)
    if layout == "torch" and out == 1 and per_group > 1 and word not in _WEIGHT_WORDS:
        return None, "a [1, C, H, W] buffer (one output and a name that is not a conv weight)"
    if kh == kw == 1 and (per_group == 1 if layout == "torch" else out == 1):
        return None, "ambiguous: a 1×1 depthwise conv or a per-channel scale"
    name = module_name(t.name)
    weight = np.asarray(t.read())
    if tuple(weight.shape) != tuple(t.shape):
        raise ValueError(f"tensor {t.name!r} declared {list(t.shape)} but read {list(weight.shape)}")
    if layout == "torch":
        depthwise = per_group == 1
        in_channels = out if depthwise else per_group
        torch_weight = weight
    else:
        depthwise = per_group > 1 and (out == 1 or bool(_DEPTHWISE_NAME.search(t.name.lower())))
        if depthwise:  # [kh, kw, C, M] → [C·M, 1, kh, kw], output channel c·M + m as TF orders them
            torch_weight = weight.transpose(2, 3, 0, 1).reshape(per_group * out, 1, kh, kw)
        else:          # [kh, kw, I, O] → [O, I, kh, kw]
            torch_weight = weight.transpose(3, 2, 0, 1)
        in_channels = per_group
    groups = in_channels if depthwise else 1
    return ConvLayer(name=name, weight=np.ascontiguousarray(torch_weight, dtype=np.float32),
                     in_channels=int(in_channels), groups=int(groups)), None


def layers_by_shape(tensors: list[Tensor], path, layout: str | None = None,
                    layout_given_by: str = "the caller") -> tuple[list[ConvLayer], list[str]]:
    """(conv layers in the order given, notes) of named tensors; see the module docstring for the rules.

    Raises NoDepthwiseError naming every 4-D tensor seen and why it was skipped when none is a conv.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: expected one of {LAYOUTS} (or None to detect it)")
    four_d = [t for t in tensors if len(t.shape) == 4]
    skipped: dict[str, list[str]] = defaultdict(list)
    candidates = []
    for t in four_d:
        reason = _skip_reason(t)
        if reason:
            skipped[reason].append(f"{t.name} {list(t.shape)}")
        else:
            candidates.append(t)
    notes = []
    if candidates:
        if layout is None:
            layout, how = detect_layout(candidates, path)
        else:
            how = f"{layout} layout given by {layout_given_by}"
        notes.append(how)
    layers = []
    for t in candidates:
        layer, reason = _layer(t, layout)
        if layer is None:
            skipped[reason].append(f"{t.name} {list(t.shape)}")
        else:
            layers.append(layer)
    skipped_text = [f"skipped {len(items)} 4-D tensor(s), {reason}: {', '.join(items[:8])}"
                    + (f" and {len(items) - 8} more" if len(items) > 8 else "")
                    for reason, items in skipped.items()]
    if not layers:
        seen = "; ".join(skipped_text) if skipped_text else "none"
        raise NoDepthwiseError(f"{path}: no convolution weights found among {len(tensors)} tensors "
                               f"({len(four_d)} of them 4-D). 4-D tensors skipped: {seen}")
    notes.extend(skipped_text)
    notes.append("stride and dilation are not stored with bare weights: recorded as 1 "
                 "(pass the model, or a file with its architecture, for exact values)")
    if layout == "tf" and any(layer.is_depthwise and layer.out_channels == layer.in_channels for layer in layers):
        notes.append("TF-layout [kh, kw, C, 1] tensors are taken as depthwise kernels "
                     "(a regular conv with one output channel has the same shape)")
    return layers, notes
