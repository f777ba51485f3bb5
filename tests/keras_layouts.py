"""Keras- and TF.js-layout files written with h5py/numpy/json only (no TensorFlow), for the source tests.

The MobileNetV2 here follows Keras Applications' `MobileNetV2(alpha=1.0)`: its layer names, layer
order, kernel shapes and strides (written from the architecture table of Sandler et al. 2018, not
from kernels_lib), with seeded random weights.
"""
from __future__ import annotations

import io
import json
import re
import zipfile

import h5py
import numpy as np

#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's bottleneck stages.
STAGES = [(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenetv2_layers(seed: int = 0):
    """[(name, class_name, config, {weight name: array})] of Keras Applications' MobileNetV2, in layer order."""
    rng = np.random.default_rng(seed)
    layers = []

    def add(name, cls, config=None, **weights):
        layers.append((name, cls, {"name": name, **(config or {})},
                       {w: rng.standard_normal(shape).astype(np.float32) for w, shape in weights.items()}))

    def conv(name, k, cin, cout, stride=1):
        add(name, "Conv2D", {"filters": cout, "kernel_size": [k, k], "strides": [stride, stride],
                             "dilation_rate": [1, 1], "groups": 1, "use_bias": False}, kernel=(k, k, cin, cout))

    def depthwise(name, channels, stride):
        add(name, "DepthwiseConv2D", {"kernel_size": [3, 3], "strides": [stride, stride], "dilation_rate": [1, 1],
                                      "depth_multiplier": 1, "use_bias": False},
            depthwise_kernel=(3, 3, channels, 1))

    def bn(name, channels):
        add(name, "BatchNormalization", {"axis": -1}, gamma=(channels,), beta=(channels,),
            moving_mean=(channels,), moving_variance=(channels,))

    add("input_1", "InputLayer", {"batch_input_shape": [None, 224, 224, 3]})
    conv("Conv1", 3, 3, 32, 2), bn("bn_Conv1", 32), add("Conv1_relu", "ReLU")
    depthwise("expanded_conv_depthwise", 32, 1), bn("expanded_conv_depthwise_BN", 32)
    add("expanded_conv_depthwise_relu", "ReLU")
    conv("expanded_conv_project", 1, 32, 16), bn("expanded_conv_project_BN", 16)
    cin, block = 16, 1
    for t, c, n, s in STAGES:
        for i in range(n):
            stride, p, e = (s if i == 0 else 1), f"block_{block}_", cin * t
            conv(p + "expand", 1, cin, e), bn(p + "expand_BN", e), add(p + "expand_relu", "ReLU")
            if stride == 2:
                add(p + "pad", "ZeroPadding2D")
            depthwise(p + "depthwise", e, stride), bn(p + "depthwise_BN", e), add(p + "depthwise_relu", "ReLU")
            conv(p + "project", 1, e, c), bn(p + "project_BN", c)
            if stride == 1 and cin == c:
                add(p + "add", "Add")
            cin, block = c, block + 1
    conv("Conv_1", 1, 320, 1280), bn("Conv_1_bn", 1280), add("out_relu", "ReLU")
    add("global_average_pooling2d", "GlobalAveragePooling2D")
    add("predictions", "Dense", {"units": 1000}, kernel=(1280, 1000), bias=(1000,))
    return layers


def _model_config(layers, keras3: bool = False) -> dict:
    entries = []
    for name, cls, config, _ in layers:
        entry = {"class_name": cls, "config": config, "name": name, "inbound_nodes": []}
        entries.append({"module": "keras.layers", **entry, "registered_name": None} if keras3 else entry)
    return {"class_name": "Functional", "config": {"name": "mobilenetv2_1.00_224", "layers": entries}}


def write_legacy_h5(path, layers) -> None:
    """A Keras 2 `model.save('x.h5')` file: model_config attribute, model_weights/<layer>/<layer>/<w>:0."""
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(_model_config(layers))
        f.attrs["keras_version"], f.attrs["backend"] = "2.15.0", "tensorflow"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [name.encode() for name, *_ in layers]
        for name, _, _, arrays in layers:
            group = weights.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w in arrays]
            for w, array in arrays.items():
                group.create_dataset(f"{name}/{w}:0", data=array)


def _snake(cls: str) -> str:
    cls = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls)
    return re.sub("([a-z])([A-Z])", r"\1_\2", cls).lower()


def write_keras_archive(path, layers) -> None:
    """A Keras 3 `.keras` zip: config.json + model.weights.h5 with layers/<snake class>[_N]/vars/<i>."""
    buffer = io.BytesIO()
    counters: dict[str, int] = {}
    with h5py.File(buffer, "w") as f:
        for name, cls, _, arrays in layers:
            snake = _snake(cls)
            counters[snake] = counters.get(snake, -1) + 1
            group = f.create_group(f"layers/{snake}" + (f"_{counters[snake]}" if counters[snake] else "") + "/vars")
            for i, array in enumerate(arrays.values()):
                group.create_dataset(str(i), data=array)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", json.dumps(_model_config(layers, keras3=True)))
        archive.writestr("model.weights.h5", buffer.getvalue())


def depthwise_reference(layers):
    """(name, stride, [C, 3, 3] kernels) of each depthwise layer, straight from the arrays written."""
    return [(name, config["strides"][0], arrays["depthwise_kernel"][:, :, :, 0].transpose(2, 0, 1))
            for name, cls, config, arrays in layers if cls == "DepthwiseConv2D"]


def quantise_uint8(array: np.ndarray):
    """(uint8 codes, scale, min) as the TF.js converter quantises a weight (affine over [min, max])."""
    low, high = float(array.min()), float(array.max())
    scale = (high - low) / 255 or 1.0
    return np.round((array - low) / scale).astype(np.uint8), scale, low


def write_tfjs(folder, topology, weights, shard_bytes: int = 1 << 16, fmt: str = "layers-model"):
    """model.json + group1-shardNofM.bin; weights: [(name, float32 array, "float32" | "float16" | "uint8")].

    Returns (path, {name: the float32 values TF.js would decode}).
    """
    entries, payload, decoded = [], bytearray(), {}
    for name, array, encoding in weights:
        entry = {"name": name, "shape": list(array.shape), "dtype": "float32"}
        if encoding == "float16":
            data = array.astype("<f2")
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            decoded[name] = data.astype(np.float32)
        elif encoding == "uint8":
            data, scale, low = quantise_uint8(array)
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": low, "original_dtype": "float32"}
            decoded[name] = data.astype(np.float32) * np.float32(scale) + np.float32(low)
        else:
            data = array.astype("<f4")
            decoded[name] = data
        entries.append(entry)
        payload += data.tobytes()
    shards = [bytes(payload[i:i + shard_bytes]) for i in range(0, len(payload), shard_bytes)] or [b""]
    names = [f"group1-shard{i + 1}of{len(shards)}.bin" for i in range(len(shards))]
    for name, data in zip(names, shards):
        (folder / name).write_bytes(data)
    document = {"format": fmt, "generatedBy": "kernels_lib tests", "convertedBy": None,
                "modelTopology": topology, "weightsManifest": [{"paths": names, "weights": entries}]}
    (folder / "model.json").write_text(json.dumps(document))
    return folder / "model.json", decoded
