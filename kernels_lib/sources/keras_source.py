"""Convolution layers of Keras models: `.keras` archives and `.h5`/`.hdf5` files, read with h5py (no TensorFlow).

- `.keras` (Keras 3): a zip of `config.json` (the model config) and `model.weights.h5`, where each
  layer's variables sit under `layers/<snake_case class name>[_N]/vars/<i>` (newer Keras also
  writes the layer's name as an attribute of `vars`).
- `.h5` (legacy, Keras 2 and Keras 3's `save(..., .h5)`): the model config as the `model_config`
  attribute, each layer's weights under `model_weights/<layer>/` listed in order by its
  `weight_names` attribute.

With a config, layers come in the config's order (`model.layers`, network order) with strides and
dilations from it, and every kernel's shape is checked against it. A weights-only file (no config)
is read by shape (`by_shape`, TF layout) and the notes say what could not be known.
Keras kernels are [kh, kw, in, out] (depthwise [kh, kw, C, multiplier]); they come back in
PyTorch layout like every other source.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import CorruptFileError, KernelsLibError
from ..records import ConvLayer
from .by_shape import Tensor, layers_by_shape
from .files import Reading, check_declared, checked_path, format_hint, natural_key, sniff

_READ = {"DepthwiseConv2D": "depthwise", "SeparableConv2D": "depthwise", "Conv2D": "regular",
         "DepthwiseConvolution2D": "depthwise", "SeparableConvolution2D": "depthwise", "Convolution2D": "regular"}
_CONTAINERS = {"Functional", "Model", "Sequential"}
#: A compressed dataset may expand this much over its stored bytes (weights barely compress).
_MAX_EXPANSION = 1024
def _layout_origin(layout) -> str:
    return "the caller" if layout else "Keras (its kernels are always [kh, kw, in, out])"


#: Largest config.json read from a .keras archive.
_MAX_CONFIG_BYTES = 256 << 20


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer as the model config describes it."""

    name: str
    kind: str                      # "depthwise" or "regular"
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    multiplier: int                # depth multiplier (depthwise) / filters (regular)
    groups: int
    scope: tuple[str, ...] = ()    # names of the nested models it sits in


def _pair(value, what: str, layer: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"layer {layer!r} has {what} {value!r}, expected one or two positive integers")
    return pair


def _class_name(entry: dict) -> str:
    return str(entry.get("class_name", "")).rsplit(">", 1)[-1].rsplit(".", 1)[-1]


def _sublayers(config) -> list:
    """The layer entries of a container config (Functional/Sequential, old Sequential as a bare list)."""
    if isinstance(config, list):
        return config
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        return config["layers"]
    raise ValueError("model config has no 'layers' list")


def _layer_name(entry: dict) -> str:
    return str(entry.get("name") or entry.get("config", {}).get("name"))


def conv_specs(model_config: dict, notes: list[str], scope: tuple[str, ...] = ()) -> list[ConvSpec]:
    """The 2-D conv layers of a Keras model config, in its layer order, nested models included."""
    specs = []
    for entry in _sublayers(model_config.get("config", model_config)):
        cls, config = _class_name(entry), entry.get("config", {})
        name = _layer_name(entry)
        if cls in _CONTAINERS or (isinstance(config, dict) and isinstance(config.get("layers"), list)):
            specs += conv_specs(entry, notes, scope + (name,))
        elif cls in _READ:
            kind = _READ[cls]
            specs.append(ConvSpec(
                name=name, kind=kind,
                kernel_size=_pair(config.get("kernel_size"), "kernel_size", name),
                strides=_pair(config.get("strides", 1), "strides", name),
                dilation=_pair(config.get("dilation_rate", 1), "dilation_rate", name),
                multiplier=int(config.get("depth_multiplier", 1) if kind == "depthwise" else config.get("filters")),
                groups=int(config.get("groups", 1) or 1), scope=scope))
        elif "Conv" in cls:
            notes.append(f"layer {name!r} ({cls}) is not a 2-D convolution read here; left out")
    return specs


def conv_layer(spec: ConvSpec, kernel: np.ndarray, path: Path) -> ConvLayer:
    """A Keras kernel checked against its config and turned into PyTorch layout."""
    kh, kw = spec.kernel_size
    if kernel.ndim != 4 or kernel.shape[:2] != (kh, kw) or kernel.shape[3] != spec.multiplier:
        raise CorruptFileError(f"{path}: layer {spec.name!r} has a kernel of shape {list(kernel.shape)}, but its "
                               f"config says {kh}×{kw} with {spec.multiplier} "
                               f"{'per channel' if spec.kind == 'depthwise' else 'filters'}")
    c = kernel.shape[2]
    if spec.kind == "depthwise":  # [kh, kw, C, M] → [C·M, 1, kh, kw], output channel c·M + m
        weight, in_channels, groups = kernel.transpose(2, 3, 0, 1).reshape(c * spec.multiplier, 1, kh, kw), c, c
    else:                         # [kh, kw, I/groups, O] → [O, I/groups, kh, kw]
        weight, in_channels, groups = kernel.transpose(3, 2, 0, 1), c * spec.groups, spec.groups
    return ConvLayer(name="/".join(spec.scope + (spec.name,)), weight=np.ascontiguousarray(weight, np.float32),
                     in_channels=int(in_channels), groups=int(groups), dilation=spec.dilation, stride=spec.strides)


def _read_dataset(path: Path, dataset, file_size: int) -> np.ndarray:
    """A float dataset as float32, after checking that the file really stores the bytes it declares."""
    if not isinstance(dataset, h5py.Dataset):
        raise CorruptFileError(f"{path}: {dataset.name} is not a dataset")
    if dataset.dtype.kind != "f":
        raise CorruptFileError(f"{path}: weight {dataset.name} has dtype {dataset.dtype}, expected floats")
    declared = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    limit = stored * (_MAX_EXPANSION if dataset.compression else 1)
    check_declared(path, f"weight {dataset.name} of shape {list(dataset.shape)}", declared, min(limit, file_size * _MAX_EXPANSION))
    return np.asarray(dataset[()], dtype=np.float32)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _attr(path: Path, obj, name: str, file_size: int):
    """An HDF5 attribute, its size checked before h5py allocates it."""
    attr = h5py.h5a.open(obj.id, name.encode())
    itemsize = attr.dtype.itemsize if not h5py.check_string_dtype(attr.dtype) else 1
    check_declared(path, f"attribute {name!r}", int(np.prod(attr.shape or (1,), dtype=np.float64)) * itemsize, file_size)
    return obj.attrs[name]


# -- legacy .h5 ------------------------------------------------------------------------------

def _legacy_kernel(path: Path, root, spec: ConvSpec, file_size: int) -> np.ndarray:
    """The spatial kernel of `spec`: the first of its layer group's `weight_names` (a nested model's
    group lists all its layers' weights; the layer's own are those under its name, maybe with a _N suffix)."""
    group_name = spec.scope[0] if spec.scope else spec.name
    if group_name not in root:
        raise CorruptFileError(f"{path}: the config lists layer {group_name!r} but the file has no weights for it")
    group = root[group_name]
    names = [_text(n) for n in _attr(path, group, "weight_names", file_size)] if "weight_names" in group.attrs else []
    if spec.scope:
        own = re.compile(rf"(^|/){re.escape(spec.name)}(_\d+)?/")
        names = [n for n in names if own.search(n)]
    if not names:
        raise CorruptFileError(f"{path}: layer {spec.name!r} has no weights listed under {group.name}")
    return _read_dataset(path, group[names[0]], file_size)


def _read_legacy(path: Path, handle: h5py.File, file_size: int, layout) -> Reading:
    root = handle["model_weights"] if "model_weights" in handle else handle
    if "model_config" not in handle.attrs:
        return _weights_only_legacy(path, root, file_size, layout)
    notes: list[str] = []
    config = json.loads(_text(_attr(path, handle, "model_config", file_size)))
    layers = [conv_layer(spec, _legacy_kernel(path, root, spec, file_size), path)
              for spec in conv_specs(config, notes)]
    return Reading(tuple(layers), "keras", "network", tuple(notes))


def _weights_only_legacy(path: Path, root, file_size: int, layout) -> Reading:
    """A legacy weights-only file (save_weights): layer groups in `layer_names` order, kernels by shape."""
    if "layer_names" not in root.attrs:
        raise CorruptFileError(f"{path} is an HDF5 file without a Keras model config or layer list; "
                               "it does not look like a Keras model or weights file")
    tensors = []
    for layer in (_text(n) for n in _attr(path, root, "layer_names", file_size)):
        group = root[layer]
        for weight in (_text(n) for n in _attr(path, group, "weight_names", file_size)):
            tensors.append(_h5_tensor(path, group[weight], f"{layer}/{weight}", file_size))
    layers, notes = layers_by_shape(tensors, path, layout or "tf", _layout_origin(layout))
    return Reading(tuple(layers), "keras", "file",
                   ("weights-only Keras file (no model config): layers in the file's layer list order, read by shape",
                    *notes))


def _h5_tensor(path: Path, dataset, name: str, file_size: int) -> Tensor:
    return Tensor(name, tuple(int(d) for d in dataset.shape), dataset.dtype.kind == "f",
                  lambda: _read_dataset(path, dataset, file_size))


# -- Keras 3 (.keras archive, .weights.h5) ----------------------------------------------------

def _snake(name: str) -> str:
    """Keras's naming.to_snake_case: 'DepthwiseConv2D' → 'depthwise_conv2d'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_groups(path: Path, container, entries: list, file_size: int) -> dict[str, h5py.Group]:
    """Layer name → its group under `container/layers`, by the `vars` name attribute where Keras wrote
    one, else by Keras's own scheme (snake-case class name, numbered in layer order)."""
    layers = container.get("layers")
    if not isinstance(layers, h5py.Group):
        raise CorruptFileError(f"{path}: {container.name} has no 'layers' group; not a Keras 3 weights file")
    by_attr = {}
    for key in layers:
        group = layers[key]
        vars_group = group.get("vars") if isinstance(group, h5py.Group) else None
        if isinstance(vars_group, h5py.Group) and "name" in vars_group.attrs:
            by_attr[_text(_attr(path, vars_group, "name", file_size))] = group
    counters: dict[str, int] = {}
    out = {}
    for entry in entries:
        snake = _snake(_class_name(entry))
        count = counters.get(snake, -1) + 1
        counters[snake] = count
        key = snake if count == 0 else f"{snake}_{count}"
        name = _layer_name(entry)
        if name in by_attr:
            out[name] = by_attr[name]
        elif key in layers:
            out[name] = layers[key]
    return out


def _keras3_layers(path: Path, container, config, notes: list[str], file_size: int, scope=()) -> list[ConvLayer]:
    entries = _sublayers(config.get("config", config))
    groups = _keras3_groups(path, container, entries, file_size)
    layers = []
    for entry in entries:
        name, cls = _layer_name(entry), _class_name(entry)
        if cls in _CONTAINERS:
            if name not in groups:
                raise CorruptFileError(f"{path}: no weights group for nested model {name!r}")
            layers += _keras3_layers(path, groups[name], entry, notes, file_size, scope + (name,))
            continue
        specs = conv_specs({"config": {"layers": [entry]}}, notes, scope)
        if not specs:
            continue
        group = groups.get(name)
        kernel = group.get("vars/0") if group is not None else None
        if kernel is None:
            raise CorruptFileError(f"{path}: the config lists conv layer {name!r} but the weights file has "
                                   "no variables for it")
        layers.append(conv_layer(specs[0], _read_dataset(path, kernel, file_size), path))
    return layers


def _weights_only_keras3(path: Path, handle, file_size: int, layout) -> Reading:
    """A Keras 3 `.weights.h5` without its config: every layer's first variable, by shape, by name order."""
    tensors = []
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.endswith("/vars/0"):
            vars_group = obj.parent
            label = _text(vars_group.attrs["name"]) if "name" in vars_group.attrs else name[: -len("/vars/0")]
            tensors.append((name, _h5_tensor(path, obj, label, file_size)))
    handle.visititems(visit)
    tensors.sort(key=lambda item: natural_key(item[0]))
    layers, notes = layers_by_shape([t for _, t in tensors], path, layout or "tf", _layout_origin(layout))
    return Reading(tuple(layers), "keras", "name",
                   ("Keras 3 weights file without its model config: layers sorted by name, so the true "
                    "order and each layer's depth are unknown; read the .keras file for them", *notes))


def _read_archive(path: Path, layout) -> Reading:
    file_size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        weights = members.get("model.weights.h5")
        if weights is None:
            missing = "model.weights.h5" if "config.json" in members else "config.json and model.weights.h5"
            raise CorruptFileError(f"{path} is a zip without {missing}; not a Keras 3 .keras file "
                                   f"(members: {sorted(members)[:10]})")
        check_declared(path, "member model.weights.h5", weights.file_size, file_size * _MAX_EXPANSION)
        data = archive.read(weights)
        config = None
        if "config.json" in members:
            check_declared(path, "member config.json", members["config.json"].file_size, _MAX_CONFIG_BYTES)
            config = json.loads(archive.read("config.json"))
    with h5py.File(io.BytesIO(data), "r") as handle:
        if config is None:
            return _weights_only_keras3(path, handle, len(data), layout)
        notes: list[str] = []
        layers = _keras3_layers(path, handle, config, notes, len(data))
    return Reading(tuple(layers), "keras", "network", tuple(notes))


def read_keras(path, layout: str | None = None) -> Reading:
    """Conv layers of a Keras `.keras` archive or `.h5`/`.hdf5` file (see the module docstring).

    `layout` only matters for weights-only files read by shape (default "tf", Keras's own layout).
    """
    path = checked_path(path)
    kind = sniff(path)
    if kind not in ("zip", "hdf5"):
        raise CorruptFileError(f"{path} is neither a Keras .keras archive (zip) nor an HDF5 file "
                               f"(.h5/.hdf5).{format_hint(path)}")
    try:
        if kind == "zip":
            return _read_archive(path, layout)
        with h5py.File(path, "r") as handle:
            if "layers" in handle and "model_config" not in handle.attrs and "layer_names" not in handle.attrs:
                return _weights_only_keras3(path, handle, path.stat().st_size, layout)
            return _read_legacy(path, handle, path.stat().st_size, layout)
    except KernelsLibError:
        raise
    except Exception as exc:  # h5py OSError/KeyError, zipfile BadZipFile, JSON errors, odd configs
        raise CorruptFileError(f"{path} cannot be read as a Keras model ({type(exc).__name__}: {exc}); "
                               "the file looks truncated, damaged or not written by Keras") from exc

