"""Convolution layers of a TFLite model, read from the flatbuffer with the `tflite` package.

TFLite stores depthwise weights as [1, kh, kw, C*multiplier] and regular ones as
[O, kh, kw, I]; both come back in PyTorch layout [out, in/groups, kh, kw]. Converters often
shrink weights: float16 behind a DEQUANTIZE op (MediaPipe), int8/uint8 with per-channel or
per-tensor scales, or a sparse tensor behind a DENSIFY op. Each is undone here exactly as the
TFLite runtime does, so the values equal what the interpreter computes.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions
from tflite.DimensionType import DimensionType
from tflite.SparseIndexVector import SparseIndexVector
from tflite.TensorType import TensorType
from tflite.utils import BUILTIN_OPCODE2NAME

from ..errors import CorruptFileError, KernelsLibError, WeightsUnavailableError
from ..records import ConvLayer
from .files import Reading, check_declared, checked_path, format_hint

_DTYPES = {
    TensorType.FLOAT32: np.dtype("<f4"), TensorType.FLOAT16: np.dtype("<f2"),
    TensorType.FLOAT64: np.dtype("<f8"), TensorType.INT8: np.dtype("i1"),
    TensorType.UINT8: np.dtype("u1"), TensorType.INT16: np.dtype("<i2"),
    TensorType.INT32: np.dtype("<i4"),
}
_INDEX_VECTORS = {
    SparseIndexVector.Int32Vector: tflite.Int32Vector,
    SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}
#: A sparse weight's dense form may be this many times the file's size (pruning keeps a fraction of the values).
_MAX_DENSE_EXPANSION = 64
#: Errors the flatbuffer accessors raise when offsets point outside the bytes.
_PARSE_ERRORS = (IndexError, struct.error, ValueError, TypeError, OverflowError, AttributeError, RecursionError)


def read_tflite(path) -> Reading:
    """Every CONV_2D and DEPTHWISE_CONV_2D of the .tflite file at `path`, subgraph by subgraph.

    A subgraph's operators are stored in execution order, so this is network order. TFLite
    operators have no names: a layer is named after its stored weight tensor.
    """
    path = checked_path(path)
    data = path.read_bytes()
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise CorruptFileError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier).{format_hint(path)}")
    try:
        return Reading(tuple(_Reader(path, data).layers()), "tflite", "network")
    except KernelsLibError:
        raise
    except _PARSE_ERRORS as exc:
        raise CorruptFileError(
            f"{path} cannot be parsed as a TFLite flatbuffer ({type(exc).__name__}: {exc}); "
            "the file looks truncated or damaged") from exc


def tflite_layers(path) -> list[ConvLayer]:
    """The conv layers of `read_tflite(path)`."""
    return list(read_tflite(path).layers)


class _Reader:
    def __init__(self, path: Path, data: bytes):
        self.path, self.data = path, data
        self.model = tflite.Model.GetRootAs(data, 0)
        self.codes = [max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
                      for c in (self.model.OperatorCodes(i) for i in range(self.model.OperatorCodesLength()))]
        # Touch every buffer now, so a truncated file fails here and not halfway through.
        self.buffers = [self._buffer_bytes(i) for i in range(self.model.BuffersLength())]

    def layers(self) -> list[ConvLayer]:
        out = []
        for s in range(self.model.SubgraphsLength()):
            graph = self.model.Subgraphs(s)
            ops = [graph.Operators(k) for k in range(graph.OperatorsLength())]
            producers = {int(o): op for op in ops for o in op.OutputsAsNumpy()}
            for op in ops:
                code = self.codes[op.OpcodeIndex()]
                if code in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D):
                    out.append(self._conv(graph, producers, op, code, prefix=f"subgraph{s}/" if s else ""))
        return out

    def _conv(self, graph, producers, op, code, prefix) -> ConvLayer:
        depthwise = code == Op.DEPTHWISE_CONV_2D
        weight, name = self._constant(graph, producers, int(op.Inputs(1)))
        if weight.ndim != 4:
            raise CorruptFileError(f"{self.path}: conv weight {name!r} has shape {list(weight.shape)}, not 4-D")
        options_class = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
        expected = BuiltinOptions.DepthwiseConv2DOptions if depthwise else BuiltinOptions.Conv2DOptions
        table = op.BuiltinOptions()
        if table is None or op.BuiltinOptionsType() != expected:
            raise CorruptFileError(f"{self.path}: conv {name!r} has no {options_class.__name__}")
        options = options_class()
        options.Init(table.Bytes, table.Pos)
        stride = (options.StrideH(), options.StrideW())
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        if min(stride + dilation) < 1:
            raise CorruptFileError(f"{self.path}: conv {name!r} has stride {stride} / dilation {dilation}")
        input_shape = graph.Tensors(int(op.Inputs(0))).ShapeAsNumpy()
        known_c = int(input_shape[-1]) if isinstance(input_shape, np.ndarray) and input_shape.size else -1
        if depthwise:  # [1, kh, kw, C*mult] -> [C*mult, 1, kh, kw]
            torch_weight = weight.transpose(3, 0, 1, 2)
            out_channels = torch_weight.shape[0]
            in_channels = known_c if known_c > 0 else out_channels // max(options.DepthMultiplier(), 1)
            groups = in_channels
        else:  # [O, kh, kw, I] -> [O, I, kh, kw]; I < C means a grouped conv
            torch_weight = weight.transpose(0, 3, 1, 2)
            in_channels = known_c if known_c > 0 else torch_weight.shape[1]
            if in_channels % torch_weight.shape[1]:
                raise CorruptFileError(f"{self.path}: conv {name!r} has {in_channels} input channels, "
                                       f"not a multiple of its filters' depth {torch_weight.shape[1]}")
            groups = in_channels // torch_weight.shape[1]
        return ConvLayer(name=prefix + name, weight=np.array(torch_weight, dtype=np.float32, order="C"),
                         in_channels=int(in_channels), groups=int(groups),
                         dilation=tuple(int(d) for d in dilation), stride=tuple(int(s) for s in stride))

    def _constant(self, graph, producers, index: int) -> tuple[np.ndarray, str]:
        """Float32 value of tensor `index` and the name of the stored tensor it comes from.

        Follows DEQUANTIZE (float16 or integer weights) and DENSIFY (sparse weights) back to
        the tensor held in a buffer; any other producer means the weight is computed at run time.
        """
        op = producers.get(index)
        if op is not None:
            code = self.codes[op.OpcodeIndex()]
            if code not in (Op.DEQUANTIZE, Op.DENSIFY):
                kind = BUILTIN_OPCODE2NAME.get(code, f"builtin #{code}")
                raise WeightsUnavailableError(
                    f"{self.path}: conv weight {_name(graph.Tensors(index))!r} is computed at run time "
                    f"by a {kind} op, so its values are not stored in the file")
            return self._constant(graph, producers, int(op.Inputs(0)))
        tensor = graph.Tensors(index)
        name = _name(tensor)
        return self._dequantize(self._stored(tensor, name), tensor, name), name

    def _stored(self, tensor, name: str) -> np.ndarray:
        """Raw array of a tensor held in a buffer, densified if it is stored sparse."""
        dtype = _DTYPES.get(tensor.Type())
        if dtype is None:
            raise WeightsUnavailableError(f"{self.path}: weight {name!r} has TFLite tensor type {tensor.Type()}, "
                                          "which this reader does not decode")
        data = self.buffers[tensor.Buffer()]
        if not data:
            raise WeightsUnavailableError(f"{self.path}: weight {name!r} has no data in the file "
                                          "(it is a model input or a variable)")
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        values = np.frombuffer(data, dtype=dtype)
        sparsity = tensor.Sparsity()
        if sparsity is not None:
            return self._densify(values, sparsity, shape, name)
        if values.size != math.prod(shape):
            raise CorruptFileError(f"{self.path}: weight {name!r} of shape {list(shape)} has "
                                   f"{values.size} values in its buffer")
        return values.reshape(shape)

    def _dequantize(self, raw: np.ndarray, tensor, name: str) -> np.ndarray:
        """float32 weights; integers become (q - zero_point) * scale, per channel where given."""
        if raw.dtype.kind == "f":
            return raw.astype(np.float32)
        q = tensor.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        if scale is None:
            raise WeightsUnavailableError(f"{self.path}: integer weight {name!r} has no quantisation scale, "
                                          "so its real values are unknown")
        zero = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros_like(scale, dtype=np.int64)
        scale, zero = scale.astype(np.float64), zero.astype(np.float64)
        if scale.size > 1:  # per channel along quantized_dimension
            shape = [1] * raw.ndim
            shape[q.QuantizedDimension()] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        # float64 then one rounding: what the runtime's reference Dequantize computes.
        return ((raw.astype(np.float64) - zero) * scale).astype(np.float32)

    def _densify(self, values: np.ndarray, sparsity, shape: tuple, name: str) -> np.ndarray:
        """Expand a TFLite sparse tensor (CSR levels, optional blocks) to its dense shape.

        Levels are expanded breadth-first, which keeps the stored (lexicographic) order, the
        same walk as the runtime's FormatConverter::SparseToDense, but vectorised.
        """
        order = sparsity.TraversalOrderAsNumpy()
        block_map = sparsity.BlockMapAsNumpy() if sparsity.BlockMapLength() else np.zeros(0, np.int32)
        rank = len(shape)
        levels = [sparsity.DimMetadata(i) for i in range(sparsity.DimMetadataLength())]
        if len(order) != len(levels) or len(levels) != rank + len(block_map):
            raise CorruptFileError(f"{self.path}: sparse weight {name!r} has inconsistent sparsity metadata")
        position = np.zeros(1, np.int64)  # index into the level's segments (or dense flat position)
        indices: list[np.ndarray] = []
        for level in levels:
            if level.Format() == DimensionType.DENSE:
                size = level.DenseSize()
                indices = [np.repeat(i, size) for i in indices] + [np.tile(np.arange(size), len(position))]
                position = (position[:, None] * size + np.arange(size)).ravel()
            else:
                segments = self._index_vector(level.ArraySegmentsType(), level.ArraySegments(), name)
                members = self._index_vector(level.ArrayIndicesType(), level.ArrayIndices(), name)
                counts = segments[position + 1] - segments[position]
                starts = np.repeat(segments[position], counts)
                offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
                position = starts + offsets
                indices = [np.repeat(i, counts) for i in indices] + [members[position]]
        if position.size != values.size:
            raise CorruptFileError(f"{self.path}: sparse weight {name!r} lists {position.size} entries "
                                   f"but stores {values.size} values")
        original = [None] * rank
        for level_index in range(rank):
            original[order[level_index]] = indices[level_index]
        for level_index in range(rank, len(levels)):
            block = order[level_index] - rank
            dim = block_map[block]
            original[dim] = original[dim] * levels[rank + block].DenseSize() + indices[level_index]
        check_declared(self.path, f"sparse weight {name!r} of shape {list(shape)}",
                       math.prod(shape) * values.dtype.itemsize, _MAX_DENSE_EXPANSION * len(self.data))
        dense = np.zeros(shape, dtype=values.dtype)
        dense[tuple(original)] = values
        return dense

    def _index_vector(self, kind, table, name: str) -> np.ndarray:
        if kind not in _INDEX_VECTORS or table is None:
            raise CorruptFileError(f"{self.path}: sparse weight {name!r} has an unknown index vector type {kind}")
        vector = _INDEX_VECTORS[kind]()
        vector.Init(table.Bytes, table.Pos)
        return vector.ValuesAsNumpy().astype(np.int64) if vector.ValuesLength() else np.zeros(0, np.int64)

    def _buffer_bytes(self, index: int) -> memoryview:
        buffer = self.model.Buffers(index)
        if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer, at a file offset
            start, size = buffer.Offset(), buffer.Size()
            if start + size > len(self.data):
                raise CorruptFileError(f"{self.path}: buffer {index} lies past the end of the file "
                                       "(truncated?)")
            return memoryview(self.data)[start:start + size]
        return memoryview(buffer.DataAsNumpy()) if buffer.DataLength() else memoryview(b"")


def _name(tensor) -> str:
    raw = tensor.Name()
    return raw.decode("utf-8", errors="replace") if raw else "<unnamed>"
