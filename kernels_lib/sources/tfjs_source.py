"""Convolution layers of TensorFlow.js models: `model.json` plus its binary weight shards (no TF.js needed).

Three kinds of file are read:

- a **layers model** (`"format": "layers-model"`, converted from Keras): `modelTopology` holds the
  Keras model config, so layers come in its order with strides and dilations (`keras_source.conv_specs`);
- a **graph model** (`"format": "graph-model"`): `modelTopology.node` is a TensorFlow graph; its
  `Conv2D` / `DepthwiseConv2dNative` nodes (fused variants included) are put in topological order
  (file order among independent nodes) and read with their strides, dilations and data format;
- a bare **weights manifest** (a JSON list of weight groups, e.g. face-api.js's
  `*-weights_manifest.json`): no topology, so kernels are recognised by shape (`by_shape`) in the
  manifest's order.

Weights: each group's shards are concatenated and its weights laid end to end, in float32, int32,
bool or string, or quantised: float16, or uint8/uint16 with `value = q · scale + min`.
Every declared size is checked against the bytes the shards hold before anything is read.
"""
from __future__ import annotations

import base64
import heapq
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import CorruptFileError, KernelsLibError, MissingFileError, WeightsUnavailableError
from .by_shape import Tensor, layers_by_shape
from .files import Reading, check_declared, checked_path
from .keras_source import ConvSpec, conv_layer, conv_specs

_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1", "uint8": "u1", "uint16": "<u2",
           "float16": "<f2", "int8": "i1", "int16": "<i2"}
_DEPTHWISE_OPS = {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_REGULAR_OPS = {"Conv2D", "_FusedConv2D"}
_MAX_JSON_BYTES = 256 << 20


@dataclass(frozen=True)
class _Entry:
    """Where one weight lies: its group, byte offset and size, how to decode it."""

    name: str
    shape: tuple[int, ...]
    group: int
    offset: int
    dtype: str          # storage dtype (the quantised one when quantised)
    quantization: dict | None


class _Weights:
    """The weights manifest of a model.json: entries by name, shards read on first use."""

    def __init__(self, path: Path, manifest):
        self.path = path
        if not isinstance(manifest, list):
            raise CorruptFileError(f"{path}: weightsManifest is a {type(manifest).__name__}, expected a list of groups")
        self.groups: list[list[Path]] = []
        self.entries: dict[str, _Entry] = {}
        self.order: list[str] = []
        self._data: dict[int, bytes] = {}
        for index, group in enumerate(manifest):
            if not isinstance(group, dict) or not isinstance(group.get("paths"), list) \
                    or not isinstance(group.get("weights"), list):
                raise CorruptFileError(f"{path}: weight group {index} needs 'paths' and 'weights' lists")
            self.groups.append([self._shard(p) for p in group["paths"]])
            self._layout(index, group["weights"])

    def _shard(self, relative) -> Path:
        if not isinstance(relative, str) or not relative:
            raise CorruptFileError(f"{self.path}: weight shard path {relative!r} is not a file name")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise CorruptFileError(f"{self.path}: weight shard {relative!r} points outside the model's folder")
        shard = self.path.parent / pure
        if not shard.is_file():
            raise MissingFileError(f"{self.path}: weight shard {relative!r} is missing (looked for {shard})")
        return shard

    def _layout(self, index: int, weights: list) -> None:
        """Byte offsets of a group's weights; sizes capped by the group's real size before any read."""
        available = sum(shard.stat().st_size for shard in self.groups[index])
        offset = 0
        for spec in weights:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise CorruptFileError(f"{self.path}: a weight of group {index} has no name")
            name, shape = spec["name"], spec.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise CorruptFileError(f"{self.path}: weight {name!r} has shape {shape!r}")
            quantization = spec.get("quantization")
            dtype = quantization.get("dtype") if isinstance(quantization, dict) else spec.get("dtype")
            count = int(np.prod(shape, dtype=np.float64))
            if dtype == "string":
                size = self._strings_size(index, offset, count, name)
            elif dtype in _DTYPES:
                size = count * np.dtype(_DTYPES[dtype]).itemsize
            else:
                raise CorruptFileError(f"{self.path}: weight {name!r} has dtype {dtype!r}, not a TF.js dtype")
            check_declared(self.path, f"weight {name!r} of shape {shape} ({dtype}) at byte {offset:,} of group {index}",
                           offset + size, available)
            self.entries[name] = _Entry(name, tuple(shape), index, offset, dtype,
                                        quantization if isinstance(quantization, dict) else None)
            self.order.append(name)
            offset += size

    def _strings_size(self, group: int, offset: int, count: int, name: str) -> int:
        """Bytes of `count` strings stored as (uint32 length, bytes) pairs."""
        data, position = self.data(group), offset
        for _ in range(count):
            check_declared(self.path, f"string weight {name!r}", position + 4, len(data))
            position += 4 + int.from_bytes(data[position:position + 4], "little")
        return position - offset

    def data(self, group: int) -> bytes:
        if group not in self._data:
            self._data[group] = b"".join(shard.read_bytes() for shard in self.groups[group])
        return self._data[group]

    def array(self, name: str) -> np.ndarray:
        """Weight `name` as float32, dequantised as TF.js does."""
        entry = self.entries[name]
        count = int(np.prod(entry.shape, dtype=np.int64))
        raw = np.frombuffer(self.data(entry.group), dtype=_DTYPES[entry.dtype], count=count, offset=entry.offset)
        q = entry.quantization
        if q is not None and entry.dtype in ("uint8", "uint16"):
            try:
                scale, low = float(q["scale"]), float(q["min"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptFileError(f"{self.path}: quantised weight {name!r} needs numeric 'scale' and "
                                       f"'min', got {q}") from exc
            values = raw.astype(np.float32) * np.float32(scale) + np.float32(low)
        else:
            values = raw.astype(np.float32)
        return values.reshape(entry.shape)

    def tensor(self, name: str) -> Tensor:
        entry = self.entries[name]
        floats = entry.dtype in ("float32", "float16") or entry.quantization is not None
        return Tensor(name, entry.shape, floats, lambda: self.array(name))


def _layers_model(path: Path, topology: dict, weights: _Weights) -> Reading:
    notes: list[str] = []
    config = topology.get("model_config", topology)
    layers = [conv_layer(spec, weights.array(_kernel_name(path, spec, weights)), path)
              for spec in conv_specs(config, notes)]
    return Reading(tuple(layers), "tfjs", "network", tuple(notes))


def _kernel_name(path: Path, spec: ConvSpec, weights: _Weights) -> str:
    """The manifest weight holding `spec`'s spatial kernel: '<layer>[_N]/(depthwise_)kernel', nested scopes allowed."""
    for pattern in (re.escape(spec.name), rf"{re.escape(spec.name)}_\d+"):
        own = re.compile(rf"(^|/){pattern}/(depthwise_kernel|kernel)(:\d+)?$")
        found = [name for name in weights.order if own.search(name)]
        if found:
            return found[0]
    raise CorruptFileError(f"{path}: the topology lists conv layer {spec.name!r} but the weights manifest "
                           "has no kernel for it")


def _attr_ints(node: dict, key: str, default: list[int]) -> list[int]:
    values = node.get("attr", {}).get(key, {}).get("list", {}).get("i")
    return [int(v) for v in values] if values else default


def _topological(nodes: list[dict]) -> tuple[list[dict], bool]:
    """Nodes in dependency order, file order among independent ones; (nodes, whether a cycle was broken)."""
    index = {node.get("name"): i for i, node in enumerate(nodes)}
    users: list[list[int]] = [[] for _ in nodes]
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for source in node.get("input", []) or []:
            j = index.get(str(source).lstrip("^").split(":")[0])
            if j is not None and j != i:
                users[j].append(i)
                pending[i] += 1
    ready = [i for i, count in enumerate(pending) if count == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        i = heapq.heappop(ready)
        out.append(i)
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    placed = set(out)
    rest = [i for i in range(len(nodes)) if i not in placed]  # inside a cycle (TF1 while loops)
    return [nodes[i] for i in out + rest], bool(rest)


def _graph_model(path: Path, topology: dict, weights: _Weights) -> Reading:
    nodes = topology.get("node")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise CorruptFileError(f"{path}: modelTopology.node is not a list of nodes")
    by_name = {n.get("name"): n for n in nodes}
    ordered, cycle = _topological(nodes)
    layers, notes, skipped = [], [], []
    for node in ordered:
        op = node.get("op")
        if op not in _DEPTHWISE_OPS | _REGULAR_OPS:
            if isinstance(op, str) and "Conv" in op:
                skipped.append(f"{node.get('name')} ({op})")
            continue
        inputs = node.get("input") or []
        if len(inputs) < 2:
            raise CorruptFileError(f"{path}: conv node {node.get('name')!r} has no filter input")
        source, seen = str(inputs[1]).split(":")[0], 0
        while by_name.get(source, {}).get("op") == "Identity" and seen < len(nodes):
            source, seen = str(by_name[source]["input"][0]).split(":")[0], seen + 1
        if source not in weights.entries:
            raise WeightsUnavailableError(f"{path}: the filter {source!r} of conv {node.get('name')!r} is not a "
                                          "stored weight (computed at run time?), so its values are not in the files")
        kernel = weights.array(source)
        if kernel.ndim != 4:
            raise CorruptFileError(f"{path}: filter {source!r} has shape {list(kernel.shape)}, not 4-D")
        fmt = base64.b64decode(node.get("attr", {}).get("data_format", {}).get("s", "") or "").decode("ascii", "replace")
        spatial = (2, 3) if fmt == "NCHW" else (1, 2)
        strides, dilations = _attr_ints(node, "strides", [1] * 4), _attr_ints(node, "dilations", [1] * 4)
        if len(strides) != 4 or len(dilations) != 4 or min(strides + dilations) < 1:
            raise CorruptFileError(f"{path}: conv {node.get('name')!r} has strides {strides} / dilations {dilations}")
        kh, kw, c, m = kernel.shape
        depthwise = op in _DEPTHWISE_OPS
        spec = ConvSpec(str(node.get("name")), "depthwise" if depthwise else "regular", (kh, kw),
                        tuple(strides[i] for i in spatial), tuple(dilations[i] for i in spatial), m, 1)
        layers.append(conv_layer(spec, kernel, path))
    if skipped:
        notes.append(f"left out {len(skipped)} conv node(s) of other kinds: {skipped[:5]}")
    if cycle:
        notes.append("the graph has cycles (control flow); nodes inside them are listed in file order")
    return Reading(tuple(layers), "tfjs", "network", tuple(notes))


def read_tfjs(path, layout: str | None = None) -> Reading:
    """Conv layers of a TF.js model.json or weights manifest and its shards (see the module docstring).

    `layout` only matters for a bare manifest read by shape (default "tf", TF.js's own layout).
    """
    path = checked_path(path)
    check_declared(path, "the JSON file", path.stat().st_size, _MAX_JSON_BYTES)
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({type(exc).__name__}: {exc}); expected a TF.js "
                               "model.json or weights manifest") from exc
    try:
        if isinstance(document, list):
            weights = _Weights(path, document)
            tensors = [weights.tensor(name) for name in weights.order]
            given_by = "the caller" if layout else "TF.js (its filters are always [kh, kw, in, out])"
            layers, notes = layers_by_shape(tensors, path, layout or "tf", given_by)
            return Reading(tuple(layers), "tfjs", "file",
                           ("a weights manifest without topology: layers in manifest order, read by shape", *notes))
        if not isinstance(document, dict) or "weightsManifest" not in document:
            raise CorruptFileError(f"{path} is JSON but not a TF.js model (no 'weightsManifest')")
        weights = _Weights(path, document["weightsManifest"])
        topology = document.get("modelTopology")
        if isinstance(topology, dict) and "node" in topology:
            return _graph_model(path, topology, weights)
        if isinstance(topology, dict):
            return _layers_model(path, topology, weights)
        raise CorruptFileError(f"{path}: modelTopology is missing or not an object")
    except KernelsLibError:
        raise
    except Exception as exc:  # malformed topology or manifest entries of unexpected types
        raise CorruptFileError(f"{path} cannot be read as a TF.js model ({type(exc).__name__}: {exc})") from exc
