"""TFLite source: real MediaPipe models from the PyPI wheel, checked against a second reader and the
LiteRT interpreter; int8/uint8 weights checked on real .tflite files built here."""
import re
import struct
from collections import Counter

import flatbuffers
import numpy as np
import pytest
import tflite
import torch

from kernels_lib.errors import CorruptFileError
from kernels_lib.records import depthwise_layers
from kernels_lib.sources.tflite_source import tflite_layers
from kernels_lib.sources.wheels import wheel_file

_MODULES = "mediapipe/modules/"
MEMBERS = [_MODULES + m for m in [
    "face_detection/face_detection_full_range_sparse.tflite",
    "face_detection/face_detection_short_range.tflite",
    "face_landmark/face_landmark.tflite",
    "face_landmark/face_landmark_with_attention.tflite",
    "hand_landmark/hand_landmark_full.tflite",
    "hand_landmark/hand_landmark_lite.tflite",
    "holistic_landmark/hand_recrop.tflite",
    "iris_landmark/iris_landmark.tflite",
    "palm_detection/palm_detection_full.tflite",
    "palm_detection/palm_detection_lite.tflite",
    "pose_detection/pose_detection.tflite",
    "pose_landmark/pose_landmark_full.tflite",
    "selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation/selfie_segmentation_landscape.tflite",
]]
CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE = 3, 4, 6


@pytest.fixture(scope="module")
def real():
    """member -> (path, layers), each fetched from the pinned mediapipe wheel and read once."""
    cache = {}

    def get(member):
        if member not in cache:
            path = wheel_file("mediapipe", member)
            cache[member] = path, tflite_layers(path)
        return cache[member]
    return get


def _short(member):
    return member.rsplit("/", 1)[-1].removesuffix(".tflite")


def _depthwise_counts(layers):
    counts = Counter()
    for layer in depthwise_layers(layers):
        counts[layer.kernel_size] += layer.out_channels
    return dict(counts)


def test_palm_and_pose_detection_kernel_counts(real):
    """SPEC §5: palm detection 4,192 5×5 (that is palm_detection_full); pose detection 4,032 3×3 + 6,336 5×5."""
    assert _depthwise_counts(real(_MODULES + "palm_detection/palm_detection_full.tflite")[1]) == {(5, 5): 4192}
    assert _depthwise_counts(real(_MODULES + "pose_detection/pose_detection.tflite")[1]) == {
        (3, 3): 4032, (5, 5): 6336}


# --- a second, minimal reader: raw flatbuffer bytes with struct, no tflite package -------------------

class _Table:
    """A flatbuffer table at `pos` of `buf`: fields looked up through its vtable by field id."""

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos

    def _at(self, field):
        vtable = self.pos - struct.unpack_from("<i", self.buf, self.pos)[0]
        if 4 + 2 * field >= struct.unpack_from("<H", self.buf, vtable)[0]:
            return 0
        offset = struct.unpack_from("<H", self.buf, vtable + 4 + 2 * field)[0]
        return self.pos + offset if offset else 0

    def _deref(self, pos):
        return pos + struct.unpack_from("<I", self.buf, pos)[0]

    def scalar(self, field, fmt, default=0):
        at = self._at(field)
        return struct.unpack_from(fmt, self.buf, at)[0] if at else default

    def table(self, field):
        at = self._at(field)
        return _Table(self.buf, self._deref(at)) if at else None

    def _vector(self, field):
        at = self._at(field)
        if not at:
            return 0, 0
        start = self._deref(at)
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def tables(self, field):
        start, n = self._vector(field)
        return [_Table(self.buf, self._deref(start + 4 * k)) for k in range(n)]

    def array(self, field, dtype):
        start, n = self._vector(field)
        return np.frombuffer(self.buf, dtype, n, start)


def _raw_convs(data: bytes):
    """Per CONV_2D / DEPTHWISE_CONV_2D: (opcode, float32 weight in TFLite layout, stride, dilation,
    input channels), or None where the weight is stored sparse (not decoded by this reader)."""
    model = _Table(data, struct.unpack_from("<I", data, 0)[0])
    codes = [max(c.scalar(0, "<b"), c.scalar(3, "<i")) for c in model.tables(1)]  # OperatorCode
    buffers = model.tables(4)
    out = []
    for graph in model.tables(2):  # SubGraph: tensors 0, operators 3
        tensors, ops = graph.tables(0), graph.tables(3)
        producer = {int(o): op for op in ops for o in op.array(2, "<i4")}
        for op in ops:  # Operator: opcode_index 0, inputs 1, outputs 2, builtin_options 4
            code = codes[op.scalar(0, "<I")]
            if code not in (CONV_2D, DEPTHWISE_CONV_2D):
                continue
            inputs = op.array(1, "<i4")
            index = int(inputs[1])
            if index in producer and codes[producer[index].scalar(0, "<I")] == DEQUANTIZE:
                index = int(producer[index].array(1, "<i4")[0])
            tensor = tensors[index]  # Tensor: shape 0, type 1, buffer 2, sparsity 6
            if index in producer or tensor.table(6) is not None:
                out.append(None)
                continue
            dtype = {0: "<f4", 1: "<f2"}[tensor.scalar(1, "<b")]
            weight = buffers[tensor.scalar(2, "<I")].array(0, np.uint8).view(dtype).reshape(tensor.array(0, "<i4"))
            options = op.table(4)
            dilation_field = 5 if code == DEPTHWISE_CONV_2D else 4  # dilation_w; dilation_h follows
            out.append((code, weight.astype(np.float32),
                        (options.scalar(2, "<i"), options.scalar(1, "<i")),
                        (options.scalar(dilation_field + 1, "<i", 1), options.scalar(dilation_field, "<i", 1)),
                        int(tensors[int(inputs[0])].array(0, "<i4")[-1])))
    return out


@pytest.mark.parametrize("member", MEMBERS, ids=_short)
def test_every_conv_equals_a_raw_flatbuffer_read(real, member):
    path, layers = real(member)
    raw = _raw_convs(path.read_bytes())
    assert len(raw) == len(layers)
    compared = 0
    for layer, entry in zip(layers, raw):
        if entry is None:
            assert not layer.is_depthwise  # only pointwise weights are stored sparse in these files
            continue
        code, weight, stride, dilation, in_channels = entry
        order = (3, 0, 1, 2) if code == DEPTHWISE_CONV_2D else (0, 3, 1, 2)
        np.testing.assert_array_equal(layer.weight, weight.transpose(order), err_msg=layer.name)
        assert (layer.stride, layer.dilation, layer.in_channels) == (stride, dilation, in_channels)
        assert layer.is_depthwise == (code == DEPTHWISE_CONV_2D)
        compared += 1
    assert depthwise_layers(layers) and compared >= len(depthwise_layers(layers))


# --- the TFLite runtime itself ----------------------------------------------------------------------

def _interpreter(**source):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    return litert.Interpreter(
        **source, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


@pytest.mark.parametrize("member", [
    "palm_detection/palm_detection_full.tflite", "palm_detection/palm_detection_lite.tflite",
    "pose_detection/pose_detection.tflite", "face_detection/face_detection_full_range_sparse.tflite",
], ids=lambda m: _short(m))
def test_every_conv_equals_the_litert_interpreter(real, member):
    """After invoke, the interpreter holds each DEQUANTIZE output: float16 weights (densified first where
    stored sparse) cast to float32 by the runtime. Ours must be bit-identical."""
    path, layers = real(_MODULES + member)
    interpreter = _interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    ops = interpreter._get_ops_details()
    producer = {int(o): op for op in ops for o in op["outputs"]}
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == len(layers)
    for op, layer in zip(convs, layers):
        weight = int(op["inputs"][1])
        source = producer[weight]  # the float16 path: every weight is a DEQUANTIZE output
        assert source["op_name"] == "DEQUANTIZE"
        assert dtypes[int(source["inputs"][0])] == np.float16
        order = (3, 0, 1, 2) if op["op_name"] == "DEPTHWISE_CONV_2D" else (0, 3, 1, 2)
        np.testing.assert_array_equal(layer.weight, interpreter.get_tensor(weight).transpose(order),
                                      err_msg=layer.name)


# --- integer weights: real .tflite files built with the tflite package's flatbuffer builder ---------

def _vector(builder, values, dtype):
    return builder.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _quantization(builder, scale, zero_point, dimension=0):
    scale, zero_point = _vector(builder, scale, np.float32), _vector(builder, zero_point, np.int64)
    tflite.QuantizationParametersStart(builder)
    tflite.QuantizationParametersAddScale(builder, scale)
    tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
    tflite.QuantizationParametersAddQuantizedDimension(builder, dimension)
    return tflite.QuantizationParametersEnd(builder)


def _depthwise_model(*args, external=False) -> bytes:
    """One quantised DEPTHWISE_CONV_2D (SAME padding): input [1, 8, 8, C] -> output, weight [1, kh, kw, C].

    With `external`, the weights follow the flatbuffer at a 64-aligned file offset (the >2 GB layout);
    the offset field has a fixed width, so a first build gives the flatbuffer's size.
    """
    if not external:
        return _flatbuffer(*args)
    offset = -(-len(_flatbuffer(*args, weights_at=1)) // 64) * 64
    flat = _flatbuffer(*args, weights_at=offset)
    return flat + bytes(offset - len(flat)) + args[0].tobytes()


def _flatbuffer(weight_q, w_scale, w_zero, io, stride, dilation, out_scale, weights_at=0) -> bytes:
    """`io` = (tensor type, numpy dtype, input scale, zero point), shared by input and output."""
    type_, _, in_scale, io_zero = io
    channels = weight_q.shape[-1]
    builder = flatbuffers.Builder(4096)
    data = [b"", weight_q.tobytes(), np.zeros(channels, np.int32).tobytes()]
    buffers = []
    for index, blob in enumerate(data):
        external = weights_at and index == 1
        vector = None if external else builder.CreateByteVector(blob)
        tflite.BufferStart(builder)
        if external:
            tflite.BufferAddOffset(builder, weights_at)
            tflite.BufferAddSize(builder, len(blob))
        else:
            tflite.BufferAddData(builder, vector)
        buffers.append(tflite.BufferEnd(builder))
    out_shape = [1, -(-8 // stride[0]), -(-8 // stride[1]), channels]
    specs = [  # name, shape, type, buffer, quantisation
        ("input", [1, 8, 8, channels], type_, 0, ([in_scale], [io_zero], 0)),
        ("dw/weights", list(weight_q.shape), type_, 1, (w_scale, w_zero, 3)),
        ("dw/bias", [channels], tflite.TensorType.INT32,
         2, (np.float32(in_scale) * np.asarray(w_scale, np.float32) * np.ones(channels), [0] * channels, 0)),
        ("output", out_shape, type_, 0, ([out_scale], [io_zero], 0)),
    ]
    tensors = []
    for name, shape, ttype, buffer, (scale, zero, dim) in specs:
        name, shape = builder.CreateString(name), _vector(builder, shape, np.int32)
        quant = _quantization(builder, scale, zero, dim)
        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape)
        tflite.TensorAddType(builder, ttype)
        tflite.TensorAddBuffer(builder, buffer)
        tflite.TensorAddName(builder, name)
        tflite.TensorAddQuantization(builder, quant)
        tensors.append(tflite.TensorEnd(builder))
    tflite.DepthwiseConv2DOptionsStart(builder)
    tflite.DepthwiseConv2DOptionsAddPadding(builder, tflite.Padding.SAME)
    tflite.DepthwiseConv2DOptionsAddStrideH(builder, stride[0])
    tflite.DepthwiseConv2DOptionsAddStrideW(builder, stride[1])
    tflite.DepthwiseConv2DOptionsAddDepthMultiplier(builder, 1)
    tflite.DepthwiseConv2DOptionsAddDilationHFactor(builder, dilation[0])
    tflite.DepthwiseConv2DOptionsAddDilationWFactor(builder, dilation[1])
    options = tflite.DepthwiseConv2DOptionsEnd(builder)
    op_inputs, op_outputs = _vector(builder, [0, 1, 2], np.int32), _vector(builder, [3], np.int32)
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, op_inputs)
    tflite.OperatorAddOutputs(builder, op_outputs)
    tflite.OperatorAddBuiltinOptionsType(builder, tflite.BuiltinOptions.DepthwiseConv2DOptions)
    tflite.OperatorAddBuiltinOptions(builder, options)
    operator = tflite.OperatorEnd(builder)

    def table_vector(items):
        builder.StartVector(4, len(items), 4)
        for item in reversed(items):
            builder.PrependUOffsetTRelative(item)
        return builder.EndVector()

    tensor_vector, operator_vector = table_vector(tensors), table_vector([operator])
    graph_inputs, graph_outputs = _vector(builder, [0], np.int32), _vector(builder, [3], np.int32)
    graph_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, graph_inputs)
    tflite.SubGraphAddOutputs(builder, graph_outputs)
    tflite.SubGraphAddOperators(builder, operator_vector)
    tflite.SubGraphAddName(builder, graph_name)
    subgraph = tflite.SubGraphEnd(builder)
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, DEPTHWISE_CONV_2D)
    tflite.OperatorCodeAddBuiltinCode(builder, DEPTHWISE_CONV_2D)
    tflite.OperatorCodeAddVersion(builder, 3)
    code = tflite.OperatorCodeEnd(builder)
    codes, subgraphs, buffer_vector = table_vector([code]), table_vector([subgraph]), table_vector(buffers)
    description = builder.CreateString("kernels_lib test model")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, codes)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, description)
    tflite.ModelAddBuffers(builder, buffer_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


INT8 = (tflite.TensorType.INT8, np.int8, 0.05, 0)
UINT8 = (tflite.TensorType.UINT8, np.uint8, 0.05, 128)


@pytest.mark.parametrize("io, per_channel", [(INT8, True), (UINT8, False)],
                         ids=["int8-per-channel", "uint8-per-tensor"])
def test_quantised_depthwise_weights_are_dequantised_exactly(tmp_path, io, per_channel):
    rng = np.random.default_rng(3)
    _, dtype, in_scale, io_zero = io
    channels, stride, dilation = 6, (2, 1), (1, 2)
    info = np.iinfo(dtype)
    weight_q = rng.integers(info.min, info.max + 1, (1, 3, 3, channels), dtype=dtype)
    if per_channel:  # int8 per-channel: zero points are 0 by the TFLite spec
        w_scale, w_zero = rng.uniform(1e-3, 5e-2, channels).astype(np.float32), np.zeros(channels, np.int64)
    else:
        w_scale, w_zero = np.array([0.0123], np.float32), np.array([119])
    path = tmp_path / "dw.tflite"
    path.write_bytes(_depthwise_model(weight_q, w_scale, w_zero, io, stride, dilation, 0.05))

    (layer,) = tflite_layers(path)
    expected = (weight_q.astype(np.float64) - w_zero.astype(np.float64)) * w_scale.astype(np.float64)
    np.testing.assert_array_equal(layer.weight, expected.astype(np.float32).transpose(3, 0, 1, 2))
    assert layer.is_depthwise and layer.in_channels == channels and layer.name == "dw/weights"
    assert layer.stride == stride and layer.dilation == dilation

    # The file is a real model: the runtime executes it, and its int8/uint8 output agrees (to one
    # quantisation step) with a float convolution using our dequantised weights.
    x_q = rng.integers(info.min, info.max + 1, (1, 8, 8, channels), dtype=dtype)
    x = torch.from_numpy((x_q.astype(np.float32) - io_zero) * in_scale).permute(0, 3, 1, 2)
    pads = []
    for size, k, s, d in zip((8, 8), layer.kernel_size, stride, dilation):  # TensorFlow SAME padding
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads = [total // 2, total - total // 2] + pads
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(x, pads), torch.from_numpy(layer.weight),
                                           stride=stride, dilation=dilation, groups=layer.groups)
    out_scale = float(reference.abs().max()) / 100
    path.write_bytes(_depthwise_model(weight_q, w_scale, w_zero, io, stride, dilation, out_scale))
    interpreter = _interpreter(model_content=path.read_bytes())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x_q)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int64) - io_zero
    expected_q = np.round(reference.permute(0, 2, 3, 1).numpy() / out_scale)
    assert got.shape == expected_q.shape and np.abs(got - expected_q).max() <= 1


def test_weights_stored_after_the_flatbuffer_are_read(tmp_path):
    """Models over 2 GB keep buffers outside the flatbuffer, addressed by file offset and size."""
    rng = np.random.default_rng(4)
    weight_q = rng.integers(-127, 128, (1, 5, 5, 4), dtype=np.int8)
    args = (weight_q, np.full(4, 0.01, np.float32), np.zeros(4, np.int64), INT8, (1, 1), (1, 1), 0.05)
    inline = tflite_layers(_write(tmp_path / "inline.tflite", _depthwise_model(*args)))
    path = _write(tmp_path / "external.tflite", _depthwise_model(*args, external=True))
    assert weight_q.tobytes() not in path.read_bytes()[:-weight_q.nbytes]  # only after the flatbuffer
    (layer,) = tflite_layers(path)
    np.testing.assert_array_equal(layer.weight, inline[0].weight)
    x = rng.integers(-128, 128, (1, 8, 8, 4), dtype=np.int8)
    outputs = []
    for blob in (_depthwise_model(*args), path.read_bytes()):  # the runtime reads both files alike
        interpreter = _interpreter(model_content=blob)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(*outputs)
    _write(path, path.read_bytes()[:-1])
    with pytest.raises(CorruptFileError, match="past the end of the file"):
        tflite_layers(path)


def _write(path, blob):
    path.write_bytes(blob)
    return path


def test_corrupt_files_name_the_file(tmp_path, real):
    data = real(_MODULES + "palm_detection/palm_detection_lite.tflite")[0].read_bytes()
    rng = np.random.default_rng(0)
    cases = {
        "random.tflite": rng.bytes(4096),
        "truncated.tflite": data[: len(data) // 2],
        "head.tflite": data[:64],
        "garbage_with_identifier.tflite": b"\x10\x00\x00\x00TFL3" + rng.bytes(4088),
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(CorruptFileError, match=re.escape(str(path))):
            tflite_layers(path)
    with pytest.raises(FileNotFoundError):
        tflite_layers(tmp_path / "missing.tflite")
