"""TF.js models: layers and graph models written here (float32, float16, uint8), and face-api.js's real weights."""
import base64
import json

import numpy as np
import pytest
from keras_layouts import _model_config, mobilenetv2_layers, write_tfjs

from kernels_lib.errors import CorruptFileError, MissingFileError
from kernels_lib.records import depthwise_layers
from kernels_lib.sources import load_layers
from kernels_lib.sources.npm import npm_files

ENCODINGS = ["float32", "float16", "uint8"]


def test_layers_model_gives_mobilenetv2_in_network_order_with_each_encoding(tmp_path):
    layers = mobilenetv2_layers(seed=3)
    weights, k = [], 0
    for name, _, _, arrays in layers:
        for w, array in arrays.items():
            weights.append((f"{name}/{w}", array, ENCODINGS[k % 3] if w == "depthwise_kernel" else "float32"))
            k += w == "depthwise_kernel"
    path, decoded = write_tfjs(tmp_path, {"model_config": _model_config(layers), "keras_version": "2.15.0"},
                               weights, shard_bytes=4 << 20)
    assert len(list(tmp_path.glob("group1-shard*.bin"))) > 1
    result = load_layers(tmp_path)  # a folder with a model.json
    assert (result.source, result.order, result.name) == ("tfjs", "network", path.parent.name)
    dw = depthwise_layers(result.layers)
    assert len(dw) == 17 and sum(layer.out_channels for layer in dw) == 7136
    assert [layer.stride[0] for layer in dw] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    used = set()
    for layer in dw:
        expected = decoded[f"{layer.name}/depthwise_kernel"]
        np.testing.assert_array_equal(layer.weight[:, 0], expected[:, :, :, 0].transpose(2, 0, 1))
        used.add(next(e for n, _, e in weights if n == f"{layer.name}/depthwise_kernel"))
    assert used == set(ENCODINGS)


def _node(name, op, inputs=(), **attr):
    return {"name": name, "op": op, "input": list(inputs), "attr": attr}


def test_graph_model_follows_the_graph_not_the_file_order(tmp_path):
    rng = np.random.default_rng(0)
    dw1, dw2, conv = (rng.standard_normal(s).astype(np.float32) for s in [(3, 3, 8, 1), (5, 5, 8, 2), (1, 1, 16, 4)])
    nhwc = {"s": base64.b64encode(b"NHWC").decode()}
    nodes = [  # listed out of order: the second conv first
        _node("block2/dw", "FusedDepthwiseConv2dNative", ["block1/dw", "w2"],
              strides={"list": {"i": ["1", "2", "2", "1"]}}, dilations={"list": {"i": ["1", "1", "1", "1"]}},
              data_format=nhwc),
        _node("head/conv", "_FusedConv2D", ["block2/dw", "w3"], data_format=nhwc),
        _node("block1/dw", "DepthwiseConv2dNative", ["input", "w1/read"],
              strides={"list": {"i": ["1", "1", "1", "1"]}}, dilations={"list": {"i": ["1", "2", "2", "1"]}},
              data_format=nhwc),
        _node("w1/read", "Identity", ["w1"]),
        _node("input", "Placeholder"), _node("w1", "Const"), _node("w2", "Const"), _node("w3", "Const"),
    ]
    path, decoded = write_tfjs(tmp_path, {"node": nodes, "versions": {"producer": 1}},
                               [("w1", dw1, "float32"), ("w2", dw2, "uint8"), ("w3", conv, "float16")],
                               fmt="graph-model")
    result = load_layers(path)
    assert result.order == "network" and [layer.name for layer in result.layers] == ["block1/dw", "block2/dw", "head/conv"]
    first, second, head = result.layers
    assert (first.dilation, first.stride, second.stride) == ((2, 2), (1, 1), (2, 2))
    np.testing.assert_array_equal(first.weight[:, 0], decoded["w1"][:, :, :, 0].transpose(2, 0, 1))
    # multiplier 2: output channel c·2 + m holds filter [:, :, c, m]
    assert second.weight.shape == (16, 1, 5, 5) and second.in_channels == second.groups == 8
    np.testing.assert_array_equal(second.weight[3, 0], decoded["w2"][:, :, 1, 1])
    assert not head.is_depthwise and head.weight.shape == (4, 16, 1, 1)


FACE_API = ["package/model/tiny_face_detector_model-weights_manifest.json",
            "package/model/tiny_face_detector_model.bin",
            "package/model/ssd_mobilenetv1_model-weights_manifest.json",
            "package/model/ssd_mobilenetv1_model.bin"]


@pytest.fixture(scope="module")
def face_api():
    return npm_files("@vladmandic/face-api", FACE_API)


def test_face_api_real_uint8_weights(face_api):
    """face-api.js's trained tiny face detector and MobileNetV1-SSD: counts, and values equal to a plain decode."""
    tiny, _, ssd, _ = face_api
    result = load_layers(tiny)
    assert result.order == "file" and any("manifest order" in note for note in result.notes)
    dw = depthwise_layers(result.layers)
    assert [layer.name for layer in dw] == [f"conv{i}" for i in range(1, 6)]
    assert [layer.out_channels for layer in dw] == [16, 32, 64, 128, 256]
    manifest = json.loads(tiny.read_text())[0]
    data = (tiny.parent / manifest["paths"][0]).read_bytes()
    offset = 0
    for weight in manifest["weights"]:
        size = int(np.prod(weight["shape"]))
        if weight["name"] == "conv3/depthwise_filter":
            q = weight["quantization"]
            codes = np.frombuffer(data, np.uint8, size, offset).reshape(weight["shape"])
            values = codes * np.float32(q["scale"]) + np.float32(q["min"])
            np.testing.assert_array_equal(dw[2].weight[:, 0], values[:, :, :, 0].transpose(2, 0, 1))
        offset += size
    assert offset == len(data)
    ssd_dw = depthwise_layers(load_layers(ssd).layers)
    assert len(ssd_dw) == 13 and sum(layer.out_channels for layer in ssd_dw) == 4960


def test_missing_or_escaping_shards(tmp_path):
    path, _ = write_tfjs(tmp_path, {"node": []}, [("w", np.ones((3, 3, 4, 1), np.float32), "float32")], fmt="graph-model")
    document = json.loads(path.read_text())
    (tmp_path / document["weightsManifest"][0]["paths"][0]).unlink()
    with pytest.raises(MissingFileError, match="group1-shard1of1.bin"):
        load_layers(path)
    document["weightsManifest"][0]["paths"] = ["../elsewhere.bin"]
    path.write_text(json.dumps(document))
    with pytest.raises(CorruptFileError, match="outside the model's folder"):
        load_layers(path)
