"""Checkpoint files: kernels read by shape equal the module walk of the model they came from."""
import argparse
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from kernels_lib.errors import CorruptFileError, UnsafeFileError
from kernels_lib.records import depthwise_layers, kernel_table
from kernels_lib.sources.module import conv_layers
from kernels_lib.sources.state_dict import StateDictMismatchError, load_state_dict_file, state_dict_layers
from kernels_lib.sources.timm_source import create_timm_model

MODEL = "tf_efficientnet_lite0"


class _Unknown:
    """A class torch.load(weights_only=True) does not know, as pickled training state would be."""


@pytest.fixture(scope="module")
def model():
    return create_timm_model(MODEL, pretrained=False, seed=3)


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    sd = model.state_dict()
    torch.save(sd, d / "plain.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, d / "plain.safetensors")
    torch.save({"model": sd, "epoch": 299, "args": argparse.Namespace(lr=4e-3, input_size=224)}, d / "wrapped.pth")
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in sd.items())}, d / "ddp.bin")
    return d


def _records(layers):
    return [(layer.name, layer.in_channels, layer.groups, layer.weight.shape) for layer in layers]


def _assert_same_layers(got, expected, exact_meta=True):
    assert [layer.name for layer in got] == [layer.name for layer in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.weight, b.weight, err_msg=a.name)
        assert a.weight.dtype == np.float32
    if exact_meta:
        assert _records(got) == _records(expected)
        assert [(layer.stride, layer.dilation) for layer in got] == [(layer.stride, layer.dilation) for layer in expected]


@pytest.mark.parametrize("name", ["plain.pth", "wrapped.pth", "ddp.bin"])
def test_torch_checkpoint_by_shape_equals_module_walk(model, files, name):
    reference = conv_layers(model)
    got = state_dict_layers(files / name)
    # shapes cannot tell stride/dilation: everything else is exact, in network order
    _assert_same_layers(got, reference, exact_meta=False)
    assert _records(got) == _records(reference)
    table = kernel_table(got, MODEL, name, "state_dict")
    ref_table = kernel_table(reference, MODEL, "random-init-seed3", "module")
    assert table[["layer", "module", "channel", "kh", "kw"]].equals(ref_table[["layer", "module", "channel", "kh", "kw"]])
    assert all(np.array_equal(a, b) for a, b in zip(table["kernel"], ref_table["kernel"]))


def test_safetensors_by_shape_keeps_depthwise_order_and_all_layers(model, files):
    """safetensors stores keys sorted; natural order restores network order of numbered blocks."""
    reference = conv_layers(model)
    got = state_dict_layers(files / "plain.safetensors")
    _assert_same_layers(depthwise_layers(got), depthwise_layers(reference), exact_meta=False)
    assert sorted(_records(got), key=str) == sorted(_records(reference), key=str)


@pytest.mark.parametrize("name", ["plain.pth", "plain.safetensors", "wrapped.pth", "ddp.bin"])
def test_with_model_class_equals_module_walk_exactly(model, files, name):
    target = create_timm_model(MODEL, pretrained=False, seed=99)  # different weights until loaded
    _assert_same_layers(state_dict_layers(files / name, model=target), conv_layers(model))


def test_load_state_dict_file_unwraps_to_the_same_tensors(model, files):
    sd = model.state_dict()
    for name in ["plain.pth", "plain.safetensors", "wrapped.pth", "ddp.bin"]:
        loaded = load_state_dict_file(files / name)
        assert set(loaded) == set(sd), name
        assert all(torch.equal(loaded[k], sd[k]) for k in sd), name


def test_ema_weights_preferred_like_timm(tmp_path):
    conv = {"dw.weight": torch.ones(4, 1, 3, 3)}
    ema = {"dw.weight": torch.full((4, 1, 3, 3), 2.0)}
    torch.save({"model": conv, "model_ema": ema}, tmp_path / "ck.pth")
    assert torch.equal(load_state_dict_file(tmp_path / "ck.pth")["dw.weight"], ema["dw.weight"])


def test_safetensors_natural_order_and_shape_rules(tmp_path):
    layers = [nn.Conv2d(4, 4, 3, groups=4) for _ in range(12)]           # "0" … "11": sorted would give 0, 1, 10, 11, 2
    extra = [nn.Conv2d(4, 8, (1, 7), groups=4),                           # [8, 1, 1, 7]: depthwise by shape
             nn.Conv2d(4, 4, 1, groups=4),                                # [4, 1, 1, 1]: ambiguous, skipped
             nn.Conv2d(4, 6, 3)]                                          # regular
    model = nn.Sequential(*layers, *extra)
    sd = {k: v.half() for k, v in model.state_dict().items()}             # half precision on disk
    sd["13.gamma"] = torch.ones(1, 1, 1, 4)                               # 4-D but not a weight
    save_file(sd, tmp_path / "seq.safetensors")
    got = state_dict_layers(tmp_path / "seq.safetensors")
    assert [layer.name for layer in got] == [str(i) for i in range(12)] + ["12", "14"]
    row = got[12]
    assert row.kernel_size == (1, 7) and row.in_channels == row.groups == 8 and row.is_depthwise
    assert got[13].groups == 1 and got[13].in_channels == 4 and not got[13].is_depthwise
    np.testing.assert_array_equal(got[0].weight, sd["0.weight"].float().numpy())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_random_bytes_are_a_corrupt_file_named_in_the_error(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(os.urandom(2048))
    for read in (load_state_dict_file, state_dict_layers):
        with pytest.raises(CorruptFileError, match=str(path)):
            read(path)


@pytest.mark.parametrize("name", ["plain.pth", "plain.safetensors"])
def test_truncated_file_is_corrupt(files, tmp_path, name):
    data = (files / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="corrupt or truncated"):
        state_dict_layers(path)


def test_other_model_formats_point_to_their_source(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + os.urandom(64))
    with pytest.raises(CorruptFileError, match=r"look like a tflite file \(\.tflite\)"):
        state_dict_layers(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here.pth"):
        state_dict_layers(tmp_path / "nothing_here.pth")


def test_checkpoint_with_arbitrary_objects_is_refused_with_advice(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"model": {"dw.weight": torch.ones(4, 1, 3, 3)}, "trainer": _Unknown()}, path)
    with pytest.raises(UnsafeFileError, match="weights_only=False") as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value) and "_Unknown" in str(info.value)


class _RunsCommand:
    """Unpickling this calls os.system: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("save", [torch.save, lambda obj, path: path.write_bytes(pickle.dumps(obj))],
                         ids=["torch.save", "plain-pickle"])
def test_code_executing_pickle_is_refused_not_called_corrupt(tmp_path, save):
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pth"
    save({"dw.weight": torch.ones(4, 1, 3, 3), "payload": _RunsCommand(marker)}, path)
    with pytest.raises(UnsafeFileError) as info:
        state_dict_layers(path)
    message = str(info.value)
    assert str(path) in message and "code-executing objects and was not loaded" in message
    assert "system" in message and "corrupt" not in message
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    ([torch.ones(3)], "holds a list"),
    ({"epoch": 3, "optimizer": {"lr": 0.1}}, "holds no tensors"),
])
def test_not_a_state_dict(tmp_path, content, message):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(CorruptFileError, match=message):
        load_state_dict_file(path)


def test_wrong_model_lists_missing_and_unexpected_keys(files):
    with pytest.raises(StateDictMismatchError) as info:
        state_dict_layers(files / "plain.pth", model=create_timm_model("mobilenetv2_100", pretrained=False))
    message = str(info.value)
    assert "plain.pth" in message and "missing keys" in message and "unexpected keys" in message
    assert "blocks.2.0.conv_dw.weight (144, 1, 5, 5) vs (144, 1, 3, 3)" in message
    assert isinstance(info.value, CorruptFileError)
