"""load_layers: one door for every source, a registry of suffixes, clear errors for paths that are not there."""
import dataclasses

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import kernels_lib as kl
from kernels_lib.errors import CorruptFileError, MissingFileError, NoDepthwiseError, UnsupportedFormatError
from kernels_lib.sources import READERS, LoadedLayers, load_layers, register_reader
from kernels_lib.sources.files import Reading


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 5, groups=8), nn.Conv2d(8, 16, 1))


def test_module_source_is_network_order_and_frozen():
    result = load_layers(_toy())
    assert (result.name, result.weights_tag, result.source, result.order) == ("Sequential", "module", "module", "network")
    assert [layer.name for layer in result.layers] == ["0", "1", "2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.order = "name"


@pytest.mark.parametrize("text", ["/data/model.h5", "/data/model", "weights/mnv2.pth", "mnv2.safetensors",
                                  "model.json", "~/models/x.onnx"])
def test_missing_path_is_no_such_file_not_a_timm_name(text):
    with pytest.raises(MissingFileError, match="no such file") as info:
        load_layers(text)
    assert "timm" not in str(info.value).split("(")[0] and isinstance(info.value, FileNotFoundError)


def test_unknown_suffix_lists_known_ones_and_says_what_the_file_looks_like(tmp_path):
    path = tmp_path / "weights.xyz"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(UnsupportedFormatError, match=r"weights\.xyz.*\.safetensors.*hdf5 file") as info:
        kl.extract_kernels(path)
    assert ".keras" in str(info.value) and ".json" in str(info.value)


def test_a_registered_reader_serves_its_suffix(tmp_path, monkeypatch):
    monkeypatch.setitem(READERS, ".npy", READERS.get(".npy"))  # restored after the test
    layer = load_layers(_toy()).layers[1]

    @register_reader(".npy")
    def read_npy(path, *, model=None, layout=None):
        from kernels_lib.records import ConvLayer
        weight = np.load(path)
        return Reading((ConvLayer("dw", weight, weight.shape[0], weight.shape[0]),), "npy", "file", ("one array",))

    np.save(tmp_path / "dw.npy", layer.weight)
    result = load_layers(tmp_path / "dw.npy")
    assert isinstance(result, LoadedLayers) and (result.source, result.order, result.notes) == ("npy", "file", ("one array",))
    np.testing.assert_array_equal(result.layers[0].weight, layer.weight)
    with pytest.raises(ValueError, match="start with a dot"):
        register_reader("npy")


def test_nan_in_a_stored_kernel_is_refused_naming_file_and_layer(tmp_path):
    state = _toy().state_dict()
    state["1.weight"][2, 0, 1, 1] = float("nan")
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(CorruptFileError, match=r"diverged\.pth: conv '1' holds 1 NaN/inf"):
        load_layers(tmp_path / "diverged.pth")


def test_no_depthwise_error_says_what_the_reader_saw(tmp_path):
    torch.save({"patch.weight": torch.ones(16, 3, 4, 4), "pos_embed": torch.zeros(1, 16, 14, 14)}, tmp_path / "vit.pth")
    with pytest.raises(NoDepthwiseError) as info:
        kl.extract_kernels(tmp_path / "vit.pth")
    message = str(info.value)
    assert "vit" in message and "pos_embed [1, 16, 14, 14]" in message and "not a conv weight" in message


def test_model_argument_only_for_state_dicts(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="model= only applies to state-dict files"):
        load_layers(path, model=_toy())
