"""The three-line entry point of the README: extract → classify → clustered_fraction."""
import numpy as np
import pytest
import torch
from torch import nn

import kernels_lib as kl
from kernels_lib.errors import UnsupportedFormatError, WeightsUnavailableError
from kernels_lib.records import KERNEL_COLUMNS
from kernels_lib.sources.module import conv_layers
from kernels_lib.sources.timm_source import create_timm_model


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 5, groups=8), nn.Conv2d(8, 16, 1),
                         nn.Conv2d(16, 16, 3, groups=16, dilation=2))


def test_extract_a_module():
    table = kl.extract_kernels(_toy(), name="toy")
    assert list(table.columns) == KERNEL_COLUMNS
    assert table.groupby(["kh", "dilation"]).size().to_dict() == {(3, 2): 16, (5, 1): 8}
    assert set(table.model) == {"toy"} and set(table.source) == {"module"}


def test_extract_files_match_the_module_walk(tmp_path):
    model = create_timm_model("mobilenetv2_100", pretrained=False, seed=3)
    torch.save(model.state_dict(), tmp_path / "mnv2.pth")
    from_file = kl.extract_kernels(tmp_path / "mnv2.pth")
    from_module = kl.extract_kernels(model)
    assert from_file.model.iloc[0] == "mnv2" and from_file.weights_tag.iloc[0] == "mnv2.pth"
    assert len(from_file) == len(from_module) == 7136
    np.testing.assert_array_equal(np.stack(from_file.kernel), np.stack(from_module.kernel))
    assert sum(layer.is_depthwise for layer in conv_layers(model)) == from_file.layer.nunique()


def test_extract_timm_name_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="convnextv2_atto"):
        kl.extract_kernels("convnextv2_atto.fcmae_ft_in1k")


def test_unknown_file_format_names_the_file(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError, match="weights.npz"):
        kl.extract_kernels(path)


def test_classify_and_fraction_on_3x3_kernels():
    table = kl.extract_kernels(create_timm_model("mobilenetv2_100", pretrained=False, seed=0))
    results = kl.classify_kernels(table, progress=False)
    assert len(results) == len(table)
    fraction = kl.clustered_fraction(results)
    assert len(fraction) == 1 and fraction["clustering"].tolist() == ["kmeans"]
