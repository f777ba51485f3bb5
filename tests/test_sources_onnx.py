"""ONNX source: real PP-OCR models from PyPI wheels, checked against onnx's reference evaluator."""
import re
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from kernels_lib.errors import CorruptFileError, WeightsUnavailableError
from kernels_lib.records import depthwise_layers
from kernels_lib.sources.onnx_source import onnx_layers
from kernels_lib.sources.wheels import wheel_file

MEMBERS = {
    "v6_det": ("rapidocr", "rapidocr/models/PP-OCRv6_det_small.onnx"),
    "v6_rec": ("rapidocr", "rapidocr/models/PP-OCRv6_rec_small.onnx"),
    "v2_cls": ("rapidocr", "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
    "v4_det": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
    "v4_rec": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"),
    "v2_cls_ort": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
}


@pytest.fixture(scope="module")
def real():
    """key -> (path, layers), each wheel member fetched and read once."""
    cache = {}

    def get(key):
        if key not in cache:
            path = wheel_file(*MEMBERS[key])
            cache[key] = path, onnx_layers(path)
        return cache[key]
    return get


def _constant_values(model: onnx.ModelProto, names: list[str]) -> list[np.ndarray]:
    """Values of `names` by running, in onnx's ReferenceEvaluator, every node that needs no graph input.

    Forward constant propagation over the whole graph: independent of the source's backward
    walk from each Conv through Constant/Identity/Cast/DequantizeLinear.
    """
    graph = model.graph
    initialised = {t.name for t in graph.initializer}
    dynamic = {i.name for i in graph.input if i.name not in initialised}
    static = []
    for node in graph.node:
        if any(name in dynamic for name in node.input if name):
            dynamic.update(node.output)
        else:
            static.append(node)
    outputs = [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in names]
    sub = helper.make_model(helper.make_graph(static, "weights", [], outputs, list(graph.initializer)),
                            opset_imports=model.opset_import, ir_version=model.ir_version)
    return ReferenceEvaluator(sub).run(None, {})


def _depthwise_counts(layers) -> dict[tuple[int, int], int]:
    counts = Counter()
    for layer in depthwise_layers(layers):
        counts[layer.kernel_size] += layer.out_channels
    return dict(counts)


def test_ppocrv6_det_small_has_384_7x7_depthwise_kernels(real):
    _, layers = real("v6_det")
    counts = _depthwise_counts(layers)
    assert counts[(7, 7)] == 384  # SPEC §5
    assert set(counts) == {(3, 3), (7, 7)}


@pytest.mark.parametrize("key", list(MEMBERS))
def test_every_conv_equals_reference_evaluator(real, key):
    """All Conv nodes, in graph order, with weights bit-identical to an independent evaluation."""
    path, layers = real(key)
    model = onnx.load(str(path))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert [layer.name for layer in layers] == [n.name or n.output[0] for n in convs]
    expected = _constant_values(model, [n.input[1] for n in convs])
    for layer, node, value in zip(layers, convs, expected):
        assert value.dtype == np.float32 and layer.weight.dtype == np.float32
        np.testing.assert_array_equal(layer.weight, value, err_msg=layer.name)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        assert layer.groups == group and layer.in_channels == value.shape[1] * group
    # These OCR networks are MobileNet/PP-LCNet style: every grouped conv is depthwise.
    assert all(layer.is_depthwise for layer in layers if layer.groups > 1)
    assert depthwise_layers(layers)


@pytest.mark.parametrize("key", ["v6_det", "v4_rec"])
def test_layer_parameters_reproduce_the_onnx_convolution(real, key):
    """torch conv2d with the ConvLayer's weight/groups/stride/dilation equals ONNX Conv on the same input.

    One node per distinct (depthwise, kernel, stride); v4_rec has the asymmetric (2, 1) and (1, 2) strides.
    """
    path, layers = real(key)
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    rng = np.random.default_rng(0)
    seen = set()
    for node, layer in zip(convs, layers):
        signature = (layer.is_depthwise, layer.kernel_size, layer.stride)
        if signature in seen:
            continue
        seen.add(signature)
        kh, kw = layer.kernel_size
        x = rng.standard_normal((1, layer.in_channels, kh + 5, kw + 6)).astype(np.float32)
        expected = _run_conv(node, x, layer.weight)
        got = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(layer.weight),
                                         stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4, err_msg=layer.name)
    assert len(seen) >= 5


def _run_conv(node, x, weight):
    """The node's Conv (its own group/strides/dilations, no padding) in onnx's reference evaluator."""
    conv = helper.make_node("Conv", ["x", "w"], ["y"])
    conv.attribute.extend(a for a in node.attribute if a.name not in ("pads", "auto_pad"))
    graph = helper.make_graph([conv], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                               helper.make_tensor_value_info("w", TensorProto.FLOAT, weight.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ReferenceEvaluator(model).run(None, {"x": x, "w": weight})[0]


_NCHW = ["n", "c", "h", "w"]


def _save(tmp_path, nodes, initializers, name="m.onnx", inputs=None, check=True):
    """A model file whose last node's output is the graph output; checked valid by onnx unless told."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(
        nodes[-1].output[0], TensorProto.FLOAT, _NCHW)], initializers)
    path = tmp_path / name
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    if check:
        onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def test_constant_chains_quantised_weights_and_subgraphs(tmp_path):
    """Constant -> Identity -> Cast(fp16 -> float), per-channel int8 DequantizeLinear, QLinearConv and a
    Conv inside an If branch using an outer-scope weight: all read, values exact."""
    rng = np.random.default_rng(1)
    half = rng.standard_normal((8, 1, 3, 3)).astype(np.float16)  # channel multiplier 2
    q = rng.integers(-128, 128, (4, 1, 5, 5), dtype=np.int8)
    scale = np.array([0.013, 0.2, 1.7e-3, 0.05], np.float32)
    zero = np.array([0, 3, -7, 1], np.int8)
    outer = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    branch = helper.make_graph(
        [helper.make_node("Conv", ["y2", "w_outer"], ["z"], name="branch_conv")], "then", [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, _NCHW)])
    nodes = [
        helper.make_node("Constant", [], ["w_half"], value=numpy_helper.from_array(half, "w_half")),
        helper.make_node("Identity", ["w_half"], ["w_id"]),
        helper.make_node("Cast", ["w_id"], ["w1"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["x", "w1"], ["y1"], name="dw_mult2", group=4, dilations=[2, 2], strides=[2, 1]),
        helper.make_node("DequantizeLinear", ["wq", "wq_scale", "wq_zero"], ["w2"], axis=0),
        helper.make_node("Conv", ["x", "w2"], ["y2"], group=4),  # unnamed: named after its output
        helper.make_node("If", ["flag"], ["y3"], then_branch=branch, else_branch=branch, name="if"),
        helper.make_node("QuantizeLinear", ["y3", "x_scale", "x_zero"], ["y3q"]),
        helper.make_node("QLinearConv", ["y3q", "x_scale", "x_zero", "wq", "wq_scale", "wq_zero",
                                         "x_scale", "x_zero"], ["y4q"], name="qconv", group=4),
        helper.make_node("DequantizeLinear", ["y4q", "x_scale", "x_zero"], ["out"]),
    ]
    initializers = [numpy_helper.from_array(v, n) for n, v in [
        ("wq", q), ("wq_scale", scale), ("wq_zero", zero), ("w_outer", outer), ("flag", np.array(True)),
        ("x_scale", np.array(0.1, np.float32)), ("x_zero", np.array(0, np.int8))]]
    layers = onnx_layers(_save(tmp_path, nodes, initializers))

    assert [layer.name for layer in layers] == ["dw_mult2", "y2", "branch_conv", "branch_conv", "qconv"]
    dw = layers[0]
    assert dw.is_depthwise and dw.in_channels == 4 and dw.out_channels == 8
    assert dw.dilation == (2, 2) and dw.stride == (2, 1)
    np.testing.assert_array_equal(dw.weight, half.astype(np.float32))
    by_formula = ((q.astype(np.float32) - zero.reshape(4, 1, 1, 1)) * scale.reshape(4, 1, 1, 1))
    by_onnx = ReferenceEvaluator(helper.make_model(helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=0)], "dq", [],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(q, "q"), numpy_helper.from_array(scale, "s"),
         numpy_helper.from_array(zero, "z")]), opset_imports=[helper.make_opsetid("", 19)])).run(None, {})[0]
    for layer in (layers[1], layers[4]):
        np.testing.assert_array_equal(layer.weight, by_formula)
        np.testing.assert_array_equal(layer.weight, by_onnx)
    np.testing.assert_array_equal(layers[2].weight, outer)
    assert not layers[2].is_depthwise and layers[2].groups == 1


def test_conv_inside_a_model_local_function(tmp_path):
    weight = np.random.default_rng(2).standard_normal((4, 1, 3, 3)).astype(np.float32)
    block = helper.make_function("local", "Block", ["x", "w"], ["y"],
                                 [helper.make_node("Conv", ["x", "w"], ["y"], name="inner", group=4)],
                                 opset_imports=[helper.make_opsetid("", 19)])
    graph = helper.make_graph([helper.make_node("Block", ["x", "w"], ["y"], domain="local", name="block0")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, _NCHW)],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, functions=[block],
                              opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("local", 1)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp_path / "f.onnx")
    (layer,) = onnx_layers(tmp_path / "f.onnx")
    assert layer.is_depthwise and layer.name.startswith("inner")
    np.testing.assert_array_equal(layer.weight, weight)


def test_computed_weight_is_an_error_not_a_silent_skip(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [helper.make_node("Mul", ["w", "two"], ["w2"], name="scale_w"),
             helper.make_node("Conv", ["x", "w2"], ["y"], name="dw", group=4)]
    with pytest.raises(WeightsUnavailableError, match=r"'dw'.*computed by a Mul node"):
        onnx_layers(_save(tmp_path, nodes, [w, two]))

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9]),
              helper.make_tensor_value_info("w_in", TensorProto.FLOAT, [4, 1, 3, 3])]
    nodes = [helper.make_node("Conv", ["x", "w_in"], ["y"], name="dw", group=4)]
    with pytest.raises(WeightsUnavailableError, match="graph input without an initializer"):
        onnx_layers(_save(tmp_path, nodes, [], name="input.onnx", inputs=inputs))


def test_left_out_convolutions_are_reported(tmp_path):
    """1-D convolutions and ConvInteger nodes cannot become 2-D float kernels: warned about, not dropped silently."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9]),
              helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 4, 9]),
              helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 4, 9, 9])]
    initializers = [numpy_helper.from_array(np.ones(shape, dtype), name) for name, shape, dtype in [
        ("w2d", (4, 1, 3, 3), np.float32), ("w1d", (4, 1, 3), np.float32), ("wq", (4, 1, 3, 3), np.uint8)]]
    nodes = [helper.make_node("Conv", ["s", "w1d"], ["y1"], name="conv1d", group=4),
             helper.make_node("ConvInteger", ["xq", "wq"], ["yq"], name="conv_integer", group=4),
             helper.make_node("Conv", ["x", "w2d"], ["y2"], name="conv2d", group=4)]
    with pytest.warns(UserWarning) as caught:
        layers = onnx_layers(_save(tmp_path, nodes, initializers, inputs=inputs))
    assert [layer.name for layer in layers] == ["conv2d"]
    messages = " ".join(str(w.message) for w in caught)
    assert "conv1d" in messages and "conv_integer" in messages


def test_corrupt_files_name_the_file(tmp_path, real):
    random = tmp_path / "random.onnx"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    data = real("v2_cls")[0].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    dangling = _save(tmp_path, [helper.make_node("Conv", ["x", "nowhere"], ["y"], name="c")], [], "dangling.onnx",
                     check=False)
    for path in (random, truncated, dangling):
        with pytest.raises(CorruptFileError, match=re.escape(str(path))):
            onnx_layers(path)
    with pytest.raises(FileNotFoundError):
        onnx_layers(tmp_path / "missing.onnx")
