"""The kernel record schema every source produces."""
import numpy as np
import pytest

from kernels_lib.errors import NoDepthwiseError
from kernels_lib.records import KERNEL_COLUMNS, ConvLayer, depthwise_layers, kernel_array, kernel_table


def _layers():
    rng = np.random.default_rng(0)
    return [
        ConvLayer("stem", rng.normal(size=(8, 3, 4, 4)).astype(np.float32), in_channels=3, groups=1, stride=(4, 4)),
        ConvLayer("dw7", rng.normal(size=(8, 1, 7, 7)).astype(np.float32), in_channels=8, groups=8),
        ConvLayer("pw", rng.normal(size=(16, 8, 1, 1)).astype(np.float32), in_channels=8, groups=1),
        ConvLayer("dw3_mult2", rng.normal(size=(32, 1, 3, 3)).astype(np.float32), in_channels=16, groups=16,
                  dilation=(2, 2), stride=(2, 1)),
        ConvLayer("dw1x5", rng.normal(size=(4, 1, 1, 5)).astype(np.float32), in_channels=4, groups=4),
    ]


def test_depthwise_selection_follows_definition():
    names = [layer.name for layer in depthwise_layers(_layers())]
    assert names == ["dw7", "dw3_mult2", "dw1x5"]
    assert [layer.name for layer in depthwise_layers(_layers(), kernel_sizes=[7])] == ["dw7"]
    assert [layer.name for layer in depthwise_layers(_layers(), kernel_sizes=[(1, 5)])] == ["dw1x5"]


def test_grouped_but_not_depthwise_is_excluded():
    grouped = ConvLayer("g", np.zeros((8, 2, 3, 3), np.float32), in_channels=8, groups=4)
    assert not grouped.is_depthwise


def test_kernel_table_rows_and_metadata():
    layers = _layers()
    t = kernel_table(layers, model="toy", weights_tag="seed0", source="module")
    assert list(t.columns) == KERNEL_COLUMNS
    assert len(t) == 8 + 32 + 4
    assert t.groupby("layer").size().tolist() == [8, 32, 4]
    assert t["depth"].drop_duplicates().tolist() == [0.0, 0.5, 1.0]
    row = t[(t.module == "dw3_mult2") & (t.channel == 5)].iloc[0]
    assert (row.kh, row.kw, row.dilation, row.stride) == (3, 3, 2, 2)
    np.testing.assert_array_equal(row.kernel, layers[3].weight[5].ravel())
    assert row.norm == pytest.approx(np.linalg.norm(layers[3].weight[5].astype(np.float64)))
    assert row.total_activation == pytest.approx(layers[3].weight[5].astype(np.float64).sum())
    assert not t.degenerate.any()
    np.testing.assert_array_equal(kernel_array(t[t.layer == 0]), layers[1].weight[:, 0])
    with pytest.raises(ValueError, match="several kernel sizes"):
        kernel_array(t)


def test_degenerate_and_nan_kernels_are_flagged():
    w = np.random.default_rng(3).normal(size=(4, 1, 3, 3)).astype(np.float32)
    w[1] = 0.0
    w[2, 0, 1, 1] = np.nan
    w[3] = 0.5
    t = kernel_table([ConvLayer("dw", w, in_channels=4, groups=4)], "m", "t", "module")
    assert t.degenerate.tolist() == [False, True, True, True]


def test_model_without_depthwise_conv_is_a_clear_error():
    layers = [layer for layer in _layers() if not layer.is_depthwise]
    with pytest.raises(NoDepthwiseError, match="no depthwise convolution"):
        kernel_table(layers, "resnet-like", "t", "module")


def test_layer_order_is_recorded_and_depth_left_undefined_when_only_names_order_the_layers():
    layers = [ConvLayer(f"dw{i}", np.random.default_rng(i).normal(size=(4, 1, 3, 3)).astype(np.float32), 4, 4)
              for i in range(3)]
    network = kernel_table(layers, "m", "t", "module")
    assert (network["layer_order"] == "network").all() and network["depth"].tolist()[::4] == [0.0, 0.5, 1.0]
    by_name = kernel_table(layers, "m", "t", "state_dict", layer_order="name")
    assert (by_name["layer_order"] == "name").all() and by_name["depth"].isna().all()   # unknown, never guessed
    assert by_name["layer"].tolist()[::4] == [0, 1, 2]
    with pytest.raises(ValueError, match="layer_order"):
        kernel_table(layers, "m", "t", "module", layer_order="alphabetical")
