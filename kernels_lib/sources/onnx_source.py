"""Convolution layers of an ONNX model, read straight from the file (no runtime needed).

Exporters store a Conv weight in different places: a graph initializer (most exporters), a
`Constant` node (paddle2onnx, as in the PP-OCR models of `rapidocr`), behind trivial
`Identity`/`Cast` nodes, or int8 behind `DequantizeLinear` (QDQ-quantised models). All of
these are followed. A weight that the graph computes from other tensors is not stored in the
file, so it raises `WeightsUnavailableError` rather than being skipped unnoticed.
"""
from __future__ import annotations

import warnings
from collections import ChainMap
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
from onnx import numpy_helper

from ..errors import CorruptFileError, KernelsLibError, WeightsUnavailableError
from ..records import ConvLayer
from .files import Reading, checked_path, format_hint

def read_onnx(path) -> Reading:
    """Every 2-D `Conv` (and `QLinearConv`) node of the ONNX file at `path`, in graph order.

    ONNX requires a graph's nodes in topological order, so graph order is network order. Nodes
    inside control-flow subgraphs (If/Loop/Scan bodies) and model-local functions are listed
    where their parent node stands. Weights come back as float32 in PyTorch layout [out, in/groups, kh, kw].
    1-D and 3-D convolutions and `ConvInteger` nodes are left out and named in the notes.
    """
    path = checked_path(path)
    try:
        model = _load(path)
        reader = _GraphReader(path)
        reader.walk(model.graph, ChainMap(), ChainMap(), ChainMap())
    except KernelsLibError:
        raise
    except Exception as exc:  # any parser or numpy failure on a damaged file
        raise CorruptFileError(f"{path} cannot be read as an ONNX model ({type(exc).__name__}: {exc}); "
                               "the file looks truncated or damaged") from exc
    notes = []
    if reader.not_2d:
        notes.append(f"left out {len(reader.not_2d)} convolution(s) that are not 2-D: {reader.not_2d[:5]}")
    if reader.unread:
        notes.append(f"{len(reader.unread)} ConvInteger node(s) not read (their weights are integers whose "
                     f"scale is applied by later nodes): {reader.unread[:5]}")
    return Reading(tuple(reader.layers), "onnx", "network", tuple(notes))


def onnx_layers(path) -> list[ConvLayer]:
    """The conv layers of `read_onnx(path)`; what it left out is warned about."""
    reading = read_onnx(path)
    for note in reading.notes:
        warnings.warn(f"{path}: {note}", stacklevel=2)
    return list(reading.layers)


def _load(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors, missing external data, ...
        raise CorruptFileError(
            f"{path} cannot be read as an ONNX model ({type(exc).__name__}: {exc}); "
            f"check that the file is complete and really an .onnx file.{format_hint(path)}") from exc
    if model.ir_version == 0 or not model.HasField("graph"):
        raise CorruptFileError(f"{path} is not an ONNX model: it has no IR version or no graph")
    # Convs inside model-local functions (e.g. torch.onnx's dynamo export) are only seen once inlined.
    return onnx.inliner.inline_local_functions(model) if model.functions else model


class _GraphReader:
    """Walks a graph and its subgraphs, resolving each conv weight to a constant array."""

    def __init__(self, path: Path):
        self.path = path
        self.layers: list[ConvLayer] = []
        self.not_2d: list[str] = []
        self.unread: list[str] = []

    def walk(self, graph, initializers: ChainMap, producers: ChainMap, inputs: ChainMap) -> None:
        # Inner names shadow outer ones; outer-scope tensors stay visible, as ONNX specifies.
        initializers = initializers.new_child({t.name: t for t in graph.initializer})
        producers = producers.new_child({out: node for node in graph.node for out in node.output if out})
        inputs = inputs.new_child({i.name: i for i in graph.input})
        scope = (initializers, producers, inputs)
        for node in graph.node:
            if node.op_type in ("Conv", "QLinearConv") and node.domain in ("", "ai.onnx"):
                self._conv(node, scope)
            elif node.op_type == "ConvInteger":
                self.unread.append(_node_name(node))
            for attr in node.attribute:
                for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                    self.walk(sub, initializers, producers, inputs)

    def _conv(self, node, scope) -> None:
        name = _node_name(node)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            weight = self._constant(node.input[1], name, scope)
        else:  # QLinearConv: x, x_scale, x_zero_point, w, w_scale, w_zero_point, ...
            scale = self._constant(node.input[4], name, scope)
            zero_point = self._constant(node.input[5], name, scope) if len(node.input) > 5 and node.input[5] else None
            weight = _dequantize(self._constant(node.input[3], name, scope), scale, zero_point, axis=0)
        if weight.ndim != 4:
            self.not_2d.append(name)
            return
        kernel_shape = tuple(attrs.get("kernel_shape", weight.shape[2:]))
        if kernel_shape != weight.shape[2:]:
            raise CorruptFileError(f"{self.path}: Conv {name!r} declares kernel_shape {list(kernel_shape)} "
                                   f"but its weight has shape {list(weight.shape)}")
        group = int(attrs.get("group", 1))
        self.layers.append(ConvLayer(
            name=name,
            weight=np.array(weight, dtype=np.float32),  # an owned, writable copy
            in_channels=int(weight.shape[1]) * group,
            groups=group,
            dilation=tuple(int(d) for d in attrs.get("dilations", (1, 1))),
            stride=tuple(int(s) for s in attrs.get("strides", (1, 1))),
        ))

    def _constant(self, name: str, conv: str, scope) -> np.ndarray:
        """The stored value of tensor `name`, following Identity/Cast/DequantizeLinear producers."""
        initializers, producers, inputs = scope
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        node = producers.get(name)
        if node is None:
            if name in inputs:
                raise WeightsUnavailableError(
                    f"{self.path}: the weight {name!r} of conv {conv!r} is a graph input without an "
                    "initializer, so its values are not in the file; export the model with its weights")
            raise CorruptFileError(f"{self.path}: the weight {name!r} of conv {conv!r} is defined nowhere "
                                   "in the graph; the file looks truncated or incomplete")
        op = node.op_type
        attrs = {a.name: a for a in node.attribute}
        if op == "Constant":
            if "value" in attrs:
                return numpy_helper.to_array(attrs["value"].t)
            listed = set(attrs) & {"value_float", "value_floats", "value_int", "value_ints"}
            if listed:
                return np.asarray(onnx.helper.get_attribute_value(attrs[listed.pop()]))
            error = WeightsUnavailableError if "sparse_value" in attrs else CorruptFileError
            raise error(f"{self.path}: Constant {_node_name(node)!r} feeding conv {conv!r} holds no dense "
                        f"numeric value (attributes {sorted(attrs)})")
        if op == "Identity":
            return self._constant(node.input[0], conv, scope)
        if op == "Cast":
            dtype = onnx.helper.tensor_dtype_to_np_dtype(attrs["to"].i)
            return self._constant(node.input[0], conv, scope).astype(dtype)
        if op == "DequantizeLinear":
            block = attrs.get("block_size")
            if block is not None and block.i:
                raise WeightsUnavailableError(f"{self.path}: blocked DequantizeLinear {_node_name(node)!r} "
                                              f"feeding conv {conv!r} is not supported")
            zero_point = (self._constant(node.input[2], conv, scope)
                          if len(node.input) > 2 and node.input[2] else None)
            axis = attrs["axis"].i if "axis" in attrs else 1
            return _dequantize(self._constant(node.input[0], conv, scope),
                               self._constant(node.input[1], conv, scope), zero_point, axis)
        raise WeightsUnavailableError(
            f"{self.path}: the weight {name!r} of conv {conv!r} is computed by a {op} node "
            f"({_node_name(node)!r}), so its values are not stored in the file; constant-fold the "
            "model first (e.g. onnxsim, or onnxruntime with an optimized_model_filepath) and read that file")


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point, axis: int) -> np.ndarray:
    """(q - zero_point) * scale, per tensor or per slice along `axis`, rounded once to float32."""
    scale = np.asarray(scale, dtype=np.float64)
    zero = np.zeros_like(scale) if zero_point is None else np.asarray(zero_point, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


def _node_name(node) -> str:
    return node.name or node.output[0]
