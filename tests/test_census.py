"""Kernel counts from architectures alone (meta device, no weights): the paper set's recorded counts, the
counts extraction writes, and the generated timm-all set."""
import random

import pytest
import timm

from kernels_lib.database import census, store, zoo
from kernels_lib import errors

# Issue 10 (and SPEC §10), counted from timm 1.0.31's architectures: the 82 timm tags of the paper set.
PAPER_TIMM_TAGS = 82
PAPER_KERNELS = {"3x3": 245_910, "5x5": 519_286, "7x7": 727_486, "9x9": 8_622, "11x11": 144}


@pytest.mark.slow
def test_paper_counts_match_the_architectures():
    """Every timm entry's recorded depthwise_kernels is what its architecture has; in all, the issue's numbers."""
    timm_entries = [e for e in zoo.load_model_set("paper").entries if e.kind == "timm"]
    assert len(timm_entries) == PAPER_TIMM_TAGS
    counted = {e.id: census.timm_kernel_counts(e.spec["name"]) for e in timm_entries}
    recorded = {e.id: e.spec.get("depthwise_kernels") for e in timm_entries}
    wrong = {k: (recorded[k], counted[k]) for k in counted if counted[k] != recorded[k]}
    assert not wrong, f"recorded vs timm {timm.__version__} (run with the timm of data/models/timm-all.yaml): {wrong}"
    assert census.total_counts(counted.values()) == PAPER_KERNELS
    # the SPEC's test facts (§3), as a second source
    assert counted["convnextv2_tiny.fcmae_ft_in1k"] == {"7x7": 6624}
    assert counted["convnextv2_huge.fcmae_ft_in1k"] == {"7x7": 49632}
    assert counted["efficientnet_b4.ra2_in1k"] == {"3x3": 8808, "5x5": 19056}


def test_counts_are_what_extraction_writes(smoke_db):
    """The meta-device count of an architecture equals the kernels extracted from its real weights."""
    extracted = store.counts_summary(smoke_db / "smoke")["by_model"]
    assert census.timm_kernel_counts("convnextv2_atto") == extracted["convnextv2_atto.random-init-seed0"]
    [mobilenet] = [v for k, v in extracted.items() if k.startswith("mobilenetv2_100.")]
    assert census.timm_kernel_counts("mobilenetv2_100.ra_in1k") == mobilenet == {"3x3": 7136}   # SPEC §5


def test_total_counts_adds_per_size_in_size_order():
    assert census.total_counts([{"7x7": 2, "3x3": 1}, {"11x11": 5, "3x3": 4}]) == {"3x3": 5, "7x7": 2, "11x11": 5}
    assert census.total_counts([]) == {}


@pytest.mark.parametrize("counts, message", [
    ("{7by7: 3}", "not a kernel size"),
    ("{7x7: 0}", "positive count"),
    ("{7x7: 2.5}", "positive count"),
    ("{}", "must map kernel sizes"),
    ("[7, 7]", "must map kernel sizes"),
])
def test_bad_recorded_counts_name_file_and_entry(tmp_path, counts, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"models:\n  - {{kind: timm, name: convnextv2_atto.fcmae_ft_in1k, depthwise_kernels: {counts}}}\n")
    with pytest.raises(errors.ModelSetError, match=message) as err:
        zoo.load_model_set(path)
    assert str(path) in str(err.value) and "entry 0" in str(err.value)


def test_generator_keeps_only_tags_with_depthwise_convs(tmp_path):
    names = ["resnet18.a1_in1k", "convnextv2_atto.fcmae_ft_in1k", "vit_tiny_patch16_224.augreg_in21k",
             "mobilenetv3_small_050.lamb_in1k"]
    path = census.write_timm_all(tmp_path / "some.yaml", names, progress=False)
    generated = zoo.load_model_set(path)
    assert [e.spec["name"] for e in generated.entries] == ["convnextv2_atto.fcmae_ft_in1k",
                                                           "mobilenetv3_small_050.lamb_in1k"]
    atto = generated.entries[0].spec["depthwise_kernels"]
    assert atto == {"7x7": 2 * 40 + 2 * 80 + 6 * 160 + 2 * 320}          # ConvNeXtV2-atto: depths 2-2-6-2
    assert generated.generated["timm"] == timm.__version__
    assert generated.generated["tags_listed"] == 4 and generated.generated["tags_kept"] == 2
    assert generated.generated["depthwise_kernels"] == census.total_counts(e.spec["depthwise_kernels"]
                                                                           for e in generated.entries)


def test_shipped_timm_all_set():
    """The committed timm-all set: timm's pretrained tags with depthwise convs, counts as the architectures say."""
    timm_all = zoo.load_model_set("timm-all")
    names = [e.spec["name"] for e in timm_all.entries]
    assert all(e.kind == "timm" and e.seed is None for e in timm_all.entries)
    assert len(names) == len(set(names)) == timm_all.generated["tags_kept"]
    assert set(names) <= set(timm.list_pretrained()), "regenerate with data/models/build_timm_all.py"
    assert {"convnextv2_tiny.fcmae_ft_in1k", "efficientnet_b4.ra2_in1k", "mobilenetv3_large_100.ra_in1k",
            "convmixer_768_32.in1k"} <= set(names)
    assert not {"resnet50.a1_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k"} & set(names)
    # every timm tag of the paper set is in it, with the same counts
    paper = {e.spec["name"]: e.spec["depthwise_kernels"] for e in zoo.load_model_set("paper").entries
             if e.kind == "timm"}
    recorded = {e.spec["name"]: e.spec["depthwise_kernels"] for e in timm_all.entries}
    assert {name: recorded.get(name) for name in paper} == paper
    if timm_all.generated["timm"] == timm.__version__:        # a sample against the installed architectures
        for name in random.Random(0).sample(names, 8):
            assert census.timm_kernel_counts(name) == recorded[name], name


def test_tags_that_cannot_be_built_without_weights_are_listed_not_kept(tmp_path, monkeypatch):
    """timm 1.0.15 and older cannot build ConvNeXt on the meta device ("Cannot copy out of meta tensor"); the
    installed timm builds every architecture, so that failure is simulated inside timm.create_model."""
    real = timm.create_model

    def create_model(name, **kwargs):
        if name.startswith("convnext_atto"):
            raise NotImplementedError("Cannot copy out of meta tensor; no data!")
        return real(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    with pytest.raises(errors.AnalysisError, match=r"timm .* cannot build 'convnext_atto.d2_in1k' without weights"):
        census.timm_kernel_counts("convnext_atto.d2_in1k")
    entries, unbuilt = census.timm_depthwise_tags(["convnext_atto.d2_in1k", "mobilenetv3_small_050.lamb_in1k"],
                                                  progress=False)
    assert [e["name"] for e in entries] == ["mobilenetv3_small_050.lamb_in1k"]
    assert list(unbuilt) == ["convnext_atto.d2_in1k"] and "Cannot copy out of meta tensor" in unbuilt["convnext_atto.d2_in1k"]
    text = census.write_timm_all(tmp_path / "s.yaml", ["convnext_atto.d2_in1k"], progress=False).read_text()
    assert "cannot build 'convnext_atto.d2_in1k' without weights" in text
    assert zoo.load_model_set(tmp_path / "s.yaml").entries == []
    with pytest.raises(errors.UnknownModelError):          # a name timm does not know is not "unbuildable"
        census.timm_depthwise_tags(["no_such_net.in1k"], progress=False)
