"""Convolution layers straight from checkpoint files: .pth / .pt / .bin / .ckpt (torch) and .safetensors.

Checkpoints of models outside timm (HorNet, MogaNet, RepLKNet, original ConvNeXt) and weights
converted from Keras/TensorFlow/JAX come as files whose model class may not be at hand. Without
a model, conv weights are recognised by shape whatever their names (`by_shape`: PyTorch or TF
layout, detected or given with `layout=`), and what was left out is said in the notes.
With a model, the file is loaded into it and the module walk gives exact groups, stride and dilation.

Order: torch files keep the order the tensors were saved in ("file": the model's registration
order, network order for nearly every model); safetensors files keep no order (keys come back
sorted), so their layers are put in natural name order ("blocks.2" before "blocks.10") and the
reading says that the true order is unknown ("name"): a stem named after the blocks lands last.

A pickle that would call anything but tensor rebuilders (e.g. `os.system`) is never loaded:
`torch.load(weights_only=True)` refuses it and `UnsafeFileError` says so.
"""
from __future__ import annotations

import argparse
import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from timm.models import clean_state_dict
from torch import nn

from ..errors import CorruptFileError, UnsafeFileError
from .by_shape import Tensor, layers_by_shape
from .files import Reading, checked_path, format_hint, natural_key, sniff
from .module import conv_layers

#: Keys under which training code stores the state dict, in order of preference (EMA weights first, as timm).
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")
#: Harmless non-tensor objects common in training checkpoints (e.g. timm's and ConvNeXt's saved `args`).
_SAFE_GLOBALS = [argparse.Namespace]
#: Modules whose globals a torch checkpoint's pickle names routinely (rebuilders, containers).
_HARMLESS_MODULES = {"torch", "collections", "argparse", "_codecs", "numpy"}
_EXPECTED = "a PyTorch checkpoint (.pth/.pt/.bin/.ckpt, saved with torch.save) or a .safetensors file"


class StateDictMismatchError(CorruptFileError):
    """A checkpoint whose tensors do not fit the model it is loaded into."""


def _format(path: Path) -> str:
    """'zip' / 'pickle' (torch.save, new / legacy format) or 'safetensors', from the first bytes."""
    kind = sniff(path)
    if kind in ("zip", "pickle", "safetensors"):
        return kind
    with open(path, "rb") as f:
        head = f.read(8)
    raise CorruptFileError(f"{path} is not {_EXPECTED} (unrecognised first bytes {head!r}).{format_hint(path)}")


def _torch_load(path: Path, fmt: str):
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=fmt == "zip")
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL (\S+)", str(exc), re.IGNORECASE)  # the wording varies across torch versions
        unsafe = [named.group(1)] if named else _foreign_globals(path, fmt)
        if unsafe:
            raise UnsafeFileError(
                f"{path} holds code-executing objects and was not loaded: unpickling it would call "
                f"{', '.join(unsafe[:5])}, and torch.load(weights_only=True) runs nothing but tensor rebuilders. "
                "If you trust the file and know what it runs: obj = torch.load(path, weights_only=False), "
                "then torch.save(<its state dict>, 'clean.pth') and read clean.pth"
            ) from exc
        raise CorruptFileError(f"{path} is corrupt or truncated: expected {_EXPECTED} ({exc})") from exc
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, ValueError, ...
        raise CorruptFileError(
            f"{path} is corrupt or truncated: expected {_EXPECTED} ({type(exc).__name__}: {exc})"
        ) from exc


def _foreign_globals(path: Path, fmt: str) -> list[str]:
    """Globals outside torch/collections that the pickle in `path` names, found by reading its
    opcodes (nothing is executed); empty when the pickle cannot even be parsed."""
    try:
        if fmt == "zip":
            with zipfile.ZipFile(path) as archive:
                member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(member)
        else:
            data = path.read_bytes()
        strings, found = [], []
        for opcode, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if opcode.name == "GLOBAL":
                found.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # a damaged pickle: nothing can be said about its globals
        return []
    return [name for name in dict.fromkeys(found) if name.split(".")[0] not in _HARMLESS_MODULES]


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


def _safetensors_corrupt(path: Path, exc: Exception) -> CorruptFileError:
    return CorruptFileError(f"{path} is corrupt or truncated: expected {_EXPECTED} ({type(exc).__name__}: {exc})")


def _safetensors_tensors(path: Path) -> list[Tensor]:
    """Every tensor of a safetensors file, in natural name order, each read from disk only when asked for."""
    def reader(name):
        def read():
            try:
                with safe_open(str(path), framework="pt", device="cpu") as f:
                    return f.get_tensor(name).to(torch.float32).numpy()
            except Exception as exc:  # safetensors reports damage as SafetensorError
                raise _safetensors_corrupt(path, exc) from exc
        return read
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            listed = []
            for name in sorted(f.keys(), key=natural_key):
                view = f.get_slice(name)
                listed.append(Tensor(clean_state_dict({name: None}).popitem()[0], tuple(view.get_shape()),
                                     view.get_dtype().startswith(("F", "BF")), reader(name)))
            return listed
    except Exception as exc:
        raise _safetensors_corrupt(path, exc) from exc


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, wrappers ('state_dict', 'model', 'model_ema', ...) and
    'module.' prefixes removed. Torch zip files are memory-mapped: tensors are read when used."""
    path = checked_path(path)
    if _format(path) == "safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                tensors = {name: f.get_tensor(name) for name in sorted(f.keys(), key=natural_key)}
        except Exception as exc:
            raise _safetensors_corrupt(path, exc) from exc
        return clean_state_dict(tensors)
    return _unwrap(_torch_load(path, _format(path)), path)


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


def read_state_dict(path, model: nn.Module | None = None, layout: str | None = None) -> Reading:
    """Conv layers of a checkpoint file, with how their order is known and what was left out.

    With `model`, the file is loaded into it (strictly; the model's weights are replaced) and the
    module walk gives the layers: names, groups, stride and dilation exact. Without, layers are
    recognised by shape (`by_shape`, `layout` "torch"/"tf" or None to detect); safetensors files
    are read lazily (only the conv tensors are read).
    """
    path = checked_path(path)
    if model is not None:
        _load_into(model, load_state_dict_file(path), path)
        return Reading(tuple(conv_layers(model)), "state_dict", "network",
                       (f"loaded into {type(model).__name__}: the module walk gives order, stride and dilation",))
    fmt = _format(path)
    if fmt == "safetensors":
        tensors, order = _safetensors_tensors(path), "name"
        notes = ["safetensors keeps no tensor order: layers are sorted by name (natural sort), so the "
                 "true network order, and with it each layer's depth, is unknown; pass the model for it"]
    else:
        state = _unwrap(_torch_load(path, fmt), path)
        tensors = [Tensor(name, tuple(t.shape), t.is_floating_point(),
                          lambda t=t: t.detach().to(torch.float32).numpy())
                   for name, t in state.items()]
        order, notes = "file", []
    try:
        layers, shape_notes = layers_by_shape(tensors, path, layout)
    except RuntimeError as exc:  # a memory-mapped storage that lies past the end of the file
        raise CorruptFileError(f"{path} is corrupt or truncated: {exc}") from exc
    return Reading(tuple(layers), "state_dict", order, tuple(notes + shape_notes))


def state_dict_layers(path, model: nn.Module | None = None, layout: str | None = None) -> list:
    """The conv layers of `read_state_dict(path, model, layout)` (list of ConvLayer)."""
    return list(read_state_dict(path, model, layout).layers)
