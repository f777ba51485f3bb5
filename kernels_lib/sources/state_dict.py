"""Convolution layers straight from checkpoint files: .pth / .pt / .bin (torch) and .safetensors.

Checkpoints of models outside timm (HorNet, MogaNet, RepLKNet, original ConvNeXt) come as files
whose model class may not be at hand. Without a model, layers are recognised by weight shape:

- a 4-D tensor named `*.weight` of shape [C, 1, kh, kw] with kh > 1 or kw > 1 is depthwise
  (groups = in_channels = C);
- a 4-D `*.weight` of shape [O, I, kh, kw] with I > 1 is a regular conv (groups = 1, in = I);
- [C, 1, 1, 1] is ambiguous (a 1×1 depthwise conv or a scale) and skipped.

What shapes cannot tell, and is therefore only right when a model is given: stride and dilation
(recorded as (1, 1)), a channel multiplier (a [2C, 1, k, k] conv is recorded with in_channels 2C),
grouped convs (recorded as regular with in = I / groups), a one-channel stem [O, 1, k, k]
(taken as depthwise), transposed convs. Layer order is file order for torch files; safetensors
files keep no order (keys come back sorted), so their keys are put in natural order
("blocks.2" before "blocks.10"), which is network order for numbered blocks but not, e.g., for a
stem named after the blocks. Pass the model for the authoritative module walk.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import torch
from safetensors import safe_open
from timm.models import clean_state_dict
from torch import nn

from ..errors import CorruptFileError
from ..records import ConvLayer
from .module import conv_layers

#: Keys under which training code stores the state dict, in order of preference (EMA weights first, as timm).
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")
#: Harmless non-tensor objects common in training checkpoints (e.g. timm's and ConvNeXt's saved `args`).
_SAFE_GLOBALS = [argparse.Namespace]
_EXPECTED = "a PyTorch checkpoint (.pth/.pt/.bin, saved with torch.save) or a .safetensors file"


class StateDictMismatchError(CorruptFileError):
    """A checkpoint whose tensors do not fit the model it is loaded into."""


def _checked_path(path) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"checkpoint file not found: {path} ({what})")
    return path


def _sniff(path: Path) -> str:
    """'zip' / 'pickle' (torch.save, new / legacy format) or 'safetensors', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x80"):
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return "safetensors"
    hint = ""
    if head[4:8] == b"TFL3":
        hint = " It is a TFLite model: use kernels_lib.sources.tflite_source.tflite_layers."
    elif path.suffix.lower() == ".onnx":
        hint = " For ONNX models use kernels_lib.sources.onnx_source.onnx_layers."
    raise CorruptFileError(f"{path} is not {_EXPECTED} (unrecognised first bytes {head[:8]!r}).{hint}")


def _torch_load(path: Path, fmt: str):
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=fmt == "zip")
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsafe:
            raise CorruptFileError(
                f"{path} holds Python objects other than tensors (e.g. {unsafe.group(1)}), which "
                "torch.load(weights_only=True) refuses because unpickling them can run code. "
                "If you trust the file: obj = torch.load(path, weights_only=False), then "
                "torch.save(<its state dict>, 'clean.pth') and read clean.pth"
            ) from exc
        raise CorruptFileError(f"{path} is corrupt or truncated: expected {_EXPECTED} ({exc})") from exc
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, ValueError, ...
        raise CorruptFileError(
            f"{path} is corrupt or truncated: expected {_EXPECTED} ({type(exc).__name__}: {exc})"
        ) from exc


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: descend through wrapper keys, drop 'module.' prefixes."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        obj = obj[key]
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path} holds a {type(obj).__name__}, expected a state dict (name → tensor)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CorruptFileError(
            f"{path} holds no tensors: top-level keys {list(obj)[:10]}, expected a state dict or a "
            f"checkpoint with one under {', '.join(WRAPPER_KEYS)}"
        )
    return clean_state_dict(tensors)


def _natural_key(name: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _safetensors_tensors(path: Path, keep) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file for which keep(name, shape) holds, in natural key order.

    Only those tensors are read from disk (safe_open reads lazily)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            names = sorted(f.keys(), key=_natural_key)
            return {name: f.get_tensor(name) for name in names if keep(name, f.get_slice(name).get_shape())}
    except Exception as exc:  # safetensors reports damage as SafetensorError
        raise CorruptFileError(
            f"{path} is corrupt or truncated: expected {_EXPECTED} ({type(exc).__name__}: {exc})"
        ) from exc


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, wrappers ('state_dict', 'model', 'model_ema', ...) and
    'module.' prefixes removed. Torch zip files are memory-mapped: tensors are read when used."""
    path = _checked_path(path)
    fmt = _sniff(path)
    if fmt == "safetensors":
        return clean_state_dict(_safetensors_tensors(path, lambda name, shape: True))
    return _unwrap(_torch_load(path, fmt), path)


def _conv_groups(name: str, shape) -> int | None:
    """groups of the conv whose weight this is, guessed from its shape (module docstring): 0 for
    depthwise (groups = out channels), 1 for regular, None for not a conv weight."""
    if len(shape) != 4 or not (name == "weight" or name.endswith(".weight")):
        return None
    _, per_group, kh, kw = shape
    if per_group == 1 and (kh > 1 or kw > 1):
        return 0
    return 1 if per_group > 1 else None


def _layer_from_tensor(name: str, tensor: torch.Tensor) -> ConvLayer | None:
    groups = _conv_groups(name, tensor.shape)
    if groups is None:
        return None
    out, per_group = int(tensor.shape[0]), int(tensor.shape[1])
    in_channels, groups = (out, out) if groups == 0 else (per_group, 1)
    weight = tensor.detach().to(torch.float32).numpy().copy()
    return ConvLayer(name=name[: -len("weight")].rstrip("."), weight=weight, in_channels=in_channels, groups=groups)


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Strict load with an error that lists what does not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        def show(items):
            return f"{len(items)}" + (f" (e.g. {', '.join(items[:5])})" if items else "")
        raise StateDictMismatchError(
            f"{path} does not fit {type(model).__name__}: missing keys {show(missing)}; unexpected keys "
            f"{show(unexpected)}; shape mismatches (file vs model) {show(shapes)}. Check that the model "
            "is the architecture (and size) the checkpoint was saved from, or call state_dict_layers "
            "without a model to read the kernels by shape"
        )
    model.load_state_dict(state, strict=True)


def state_dict_layers(path, model: nn.Module | None = None) -> list[ConvLayer]:
    """Conv layers of a checkpoint file.

    With `model`, the file is loaded into it (strictly; the model's weights are replaced) and the
    module walk gives the layers: names, groups, stride and dilation exact. Without, layers are
    recognised by shape as the module docstring describes; safetensors files are read lazily.
    """
    path = _checked_path(path)
    if model is not None:
        _load_into(model, load_state_dict_file(path), path)
        return conv_layers(model)
    fmt = _sniff(path)
    if fmt == "safetensors":
        state = clean_state_dict(_safetensors_tensors(path, lambda name, shape: _conv_groups(name, shape) is not None))
    else:
        state = _unwrap(_torch_load(path, fmt), path)
    layers = [_layer_from_tensor(name, tensor) for name, tensor in state.items()]
    return [layer for layer in layers if layer is not None]
