"""Conv weights recognised by shape whatever their names, in PyTorch or TF layout."""
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from kernels_lib.errors import NoDepthwiseError
from kernels_lib.sources import load_layers

RNG = np.random.default_rng(0)
DW = RNG.standard_normal((12, 1, 3, 3)).astype(np.float32)      # PyTorch depthwise, 12 channels
REG = RNG.standard_normal((24, 12, 1, 1)).astype(np.float32)    # PyTorch pointwise
STEM = RNG.standard_normal((12, 3, 3, 3)).astype(np.float32)


def _tf(weight, depthwise):
    """PyTorch layout → TF layout, written independently of the reader: depthwise [kh, kw, C, 1], else [kh, kw, I, O]."""
    tf = weight[:, 0].transpose(1, 2, 0)[..., None] if depthwise else weight.transpose(2, 3, 1, 0)
    return np.ascontiguousarray(tf)  # safetensors.numpy writes an array's memory as it lies


@pytest.mark.parametrize("names, layout", [
    (("stem.weight", "dw.weight", "pw.weight"), "torch"),
    (("stem/w", "dw/w", "pw/w"), "torch"),
    (("stem.kernel", "block.depthwise_kernel", "pw.kernel"), "tf"),
    (("stem/filters", "conv1/depthwise_filter", "conv1/pointwise_filter"), "tf"),
])
def test_names_do_not_matter_and_layout_is_detected(tmp_path, names, layout):
    arrays = [STEM, DW, REG]
    if layout == "tf":
        arrays = [_tf(STEM, False), _tf(DW, True), _tf(REG, False)]
    save_file(dict(zip(names, arrays)), tmp_path / "w.safetensors")
    result = load_layers(tmp_path / "w.safetensors")
    assert result.notes[1].startswith(f"{layout} layout detected")
    by_name = {layer.weight.shape: layer for layer in result.layers}
    np.testing.assert_array_equal(by_name[DW.shape].weight, DW)
    assert by_name[DW.shape].is_depthwise and by_name[DW.shape].in_channels == 12
    np.testing.assert_array_equal(by_name[REG.shape].weight, REG)
    np.testing.assert_array_equal(by_name[STEM.shape].weight, STEM)
    assert not by_name[REG.shape].is_depthwise


def test_layout_override_where_shapes_cannot_tell(tmp_path):
    cube = RNG.standard_normal((3, 3, 3, 3)).astype(np.float32)
    torch.save({"a": torch.from_numpy(cube), "b": torch.from_numpy(cube)}, tmp_path / "cube.pth")
    with pytest.raises(NoDepthwiseError, match="pass layout='torch' or layout='tf'"):
        load_layers(tmp_path / "cube.pth")
    tf = load_layers(tmp_path / "cube.pth", layout="tf")
    np.testing.assert_array_equal(tf.layers[0].weight, cube.transpose(3, 2, 0, 1))
    assert "tf layout given by the caller" in tf.notes


def test_tf_depth_multiplier_needs_a_depthwise_name(tmp_path):
    kernel = RNG.standard_normal((5, 5, 4, 2)).astype(np.float32)
    torch.save({"block/depthwise_kernel": torch.from_numpy(kernel), "head/kernel": torch.from_numpy(kernel)},
               tmp_path / "m.pth")
    dw, regular = load_layers(tmp_path / "m.pth", layout="tf").layers
    assert dw.is_depthwise and dw.weight.shape == (8, 1, 5, 5) and dw.in_channels == 4
    np.testing.assert_array_equal(dw.weight[5, 0], kernel[:, :, 2, 1])   # channel c·M + m
    assert not regular.is_depthwise and regular.weight.shape == (2, 4, 5, 5)


def test_non_convs_are_left_out_and_named(tmp_path):
    torch.save({"pos_embed": torch.zeros(1, 192, 14, 14), "attn.relative_position_bias": torch.zeros(1, 4, 7, 7),
                "anchors": torch.zeros(3, 3, 2, 2), "index": torch.zeros(4, 1, 3, 3, dtype=torch.int64),
                "scale.gamma": torch.ones(8, 1, 1, 1), "dw.weight": torch.from_numpy(DW)}, tmp_path / "mixed.pth")
    result = load_layers(tmp_path / "mixed.pth")
    assert [layer.name for layer in result.layers] == ["dw"]
    skipped = " ".join(result.notes)
    for name in ["pos_embed", "relative_position_bias", "anchors", "index", "scale.gamma"]:
        assert name in skipped, name


def test_nothing_qualifies_names_every_4d_tensor_and_why(tmp_path):
    torch.save({"pos_embed": torch.zeros(1, 192, 14, 14), "table": torch.zeros(100, 100, 100, 100, dtype=torch.int8),
                "s": torch.ones(8, 1, 1, 1), "fc.weight": torch.ones(10, 20)}, tmp_path / "none.pth")
    with pytest.raises(NoDepthwiseError) as info:
        load_layers(tmp_path / "none.pth")
    message = str(info.value)
    assert "none.pth" in message and "3 of them 4-D" in message
    assert "pos_embed [1, 192, 14, 14]" in message and "table [100, 100, 100, 100]" in message
    assert "s [8, 1, 1, 1]" in message and "ambiguous" in message and "not floating point" in message
