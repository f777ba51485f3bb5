"""The training harness on the smoke profile: a few steps of each mode on the scikit-image photographs.

What can be asserted fast: snapshots land in the kernel database with the right names and counts,
DoG-initialised kernels are clustered at step 0 (and Kaiming ones are not), the same seed gives the
same weights, a resumed run equals an uninterrupted one, the fast depthwise conv equals F.conv2d.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels_lib.training import nets, photos
from kernels_lib.database import store
from kernels_lib import training
from kernels_lib.training import TrainConfig

SMOKE_DATA = {"keys": photos.SKIMAGE_KEYS, "short_side": 96}


def smoke(run: str, **changes) -> TrainConfig:
    base = dict(run=run, width=8, depth=2, crop_size=16, crops_per_epoch=64, batch_size=32, epochs=2, device="cpu",
                data_options=SMOKE_DATA, snapshot_epochs=(1,))
    return TrainConfig(**{**base, **changes})


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("k, size", [(31, 16), (7, 8), (7, 32), (5, 20)])
def test_depthwise_conv_equals_conv2d_forward_and_backward(k, size):
    torch.manual_seed(0)
    conv = nets.DepthwiseConv2d(6, k)
    x = torch.randn(3, 6, size, size + 2, requires_grad=True)
    y = conv(x)
    reference = F.conv2d(x, conv.weight, conv.bias, padding=k // 2, groups=6)
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad((y ** 2).sum(), [x, conv.weight, conv.bias])
    expected = torch.autograd.grad((reference ** 2).sum(), [x, conv.weight, conv.bias])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_dog_initialised_kernels_are_clustered_at_step_0_and_kaiming_ones_are_not():
    classifier = training.reference_classifier(7)
    for init, bounds in (("dog", (0.90, 1.0)), ("kaiming", (0.0, 0.05))):
        model = training.build_model(TrainConfig(run="t", init=init), n_classes=10)
        kernels = torch.cat([m.weight.detach().reshape(-1, 7, 7) for _, m in nets.depthwise_convs(model)])
        clustered = classifier.predict(kernels.numpy())["clustered"].mean()
        assert bounds[0] <= clustered <= bounds[1], (init, clustered)


def test_dog_kernels_follow_the_mix_at_kaiming_scale():
    kernels = nets.dog_kernels(7, 400, seed=0, mix={"off": 1.0})
    rms = np.sqrt((kernels.astype(np.float64) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(rms, 1 / (7 * np.sqrt(3)), rtol=1e-5)
    assert (kernels[:, 3, 3] < kernels.mean(axis=(1, 2))).mean() > 0.95     # Off-centre: centre below the mean
    assert not np.array_equal(kernels, nets.dog_kernels(7, 400, seed=1, mix={"off": 1.0}))


@pytest.mark.parametrize("mode", ["kaiming", "dog", "overfit", "photos-phase", "photos-iid"])
def test_each_mode_writes_its_snapshots_into_the_kernel_database(mode, tmp_path):
    config = {"kaiming": smoke("kaiming"), "dog": smoke("dog", init="dog"),
              "overfit": training.overfitting(smoke("overfit"), n_photos=3, fixed_crops=8, epochs=3),
              "photos-phase": smoke("phase", data="photos-phase"), "photos-iid": smoke("iid", data="photos-iid")}[mode]
    result = training.train(config, run_dir=tmp_path / "run", progress=False)
    db = tmp_path / "run" / "kernels"
    table = store.read_kernels(db)
    epochs = config.snapshots
    assert sorted(table["model"].unique()) == sorted(f"{config.run}@epoch{e}" for e in epochs)
    assert len(table) == len(epochs) * 8 * 2 and set(table["source"]) == {"training"}
    assert set(table.groupby("model").size()) == {16} and set(table["kh"]) == {7}
    untrained = table[table["model"] == f"{config.run}@epoch0"]
    assert set(untrained["weights_tag"]) == {f"random-init-{config.init}-seed0"}
    provenance = store.read_provenance(db)
    assert set(provenance["run"]) == {config.run} and set(provenance["epoch"]) == set(epochs)
    assert provenance["config"].iloc[0] == config.to_dict()
    assert [s.epoch for s in result.snapshots] == list(epochs)
    assert all(s.clustering["7x7"]["threshold"] == 0.3 for s in result.snapshots)
    record = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert record["data"]["data"] == config.data and record["epochs_done"] == config.epochs
    assert [h["epoch"] for h in record["history"]] == list(range(config.epochs + 1))
    if mode == "overfit":
        assert record["data"]["n_classes"] == 3 and record["data"]["flip"] is False
        assert record["config"]["weight_decay"] == 0.0


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(tmp_path):
    runs = [training.train(smoke("s", seed=seed), run_dir=tmp_path / str(i), progress=False)
            for i, seed in enumerate((4, 4, 5))]
    first, again, other = (_weights(r.model) for r in runs)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["3.inner.0.weight"], other["3.inner.0.weight"])
    files = [sorted((tmp_path / str(i) / "kernels").iterdir()) for i in (0, 1)]
    assert [f.read_bytes() for f in files[0]] == [f.read_bytes() for f in files[1]]


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    config = smoke("r", epochs=3, snapshot_epochs=(2,))
    straight = training.train(config, run_dir=tmp_path / "a", progress=False)
    training.train(config, run_dir=tmp_path / "b", progress=False, until_epoch=1)
    resumed = training.train(config, run_dir=tmp_path / "b", progress=False, resume=True)
    a, b = _weights(straight.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [s.model for s in resumed.snapshots] == [s.model for s in straight.snapshots]
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"] for h in straight.history]
    loaded = training.load_run(tmp_path / "b")
    assert loaded.config == config and all(torch.equal(a[k], v) for k, v in _weights(loaded.model).items())


def test_a_finished_run_is_not_overwritten_and_a_changed_config_is_not_resumed(tmp_path):
    config = smoke("f", epochs=1, snapshot_epochs=())
    training.train(config, run_dir=tmp_path, progress=False)
    with pytest.raises(training.TrainingError, match="resume=True"):
        training.train(config, run_dir=tmp_path, progress=False)
    with pytest.raises(training.TrainingError, match="lr"):
        training.train(dataclasses.replace(config, lr=0.1), run_dir=tmp_path, progress=False, resume=True)


def test_a_timm_model_by_name_trains_and_is_dog_initialised(tmp_path):
    config = TrainConfig(run="timm", model="mobilenetv3_small_050", init="dog", crop_size=32, crops_per_epoch=32,
                         batch_size=16, epochs=1, data_options=SMOKE_DATA)
    result = training.train(config, run_dir=tmp_path, progress=False)
    table = store.read_kernels(tmp_path / "kernels", models=["timm@epoch0"])
    assert {(3, 3), (5, 5)} <= set(zip(table["kh"], table["kw"]))
    assert result.snapshots[0].clustering["5x5"]["clustered"] >= 0.9


def test_configuration_errors_say_what_to_change():
    with pytest.raises(training.TrainingError, match="model_options"):
        TrainConfig(run="x", model="convmixer_768_32", kernel_size=7)
    with pytest.raises(training.TrainingError, match="init"):
        TrainConfig(run="x", init="xavier")
    with pytest.raises(training.TrainingError, match="outside"):
        TrainConfig(run="x", epochs=3, snapshot_epochs=(5,))
    with pytest.raises(nets.ModelError, match="did you mean .*convmixer_768_32"):
        nets.create_model("convmixer_768_3", 10)
    with pytest.raises(nets.ModelError, match="odd"):
        nets.DepthwiseNet(10, kernel_size=6)


#: Epochs done by each committed run (all finished).
COMMITTED_EPOCHS = {"kaiming-7x7": 25, "dog-7x7": 25, "overfit-7x7": 500, "overfit-wd-7x7": 500, "phase-7x7": 25,
                    "iid-7x7": 25, "kaiming-5x5-seed0": 25, "kaiming-5x5-seed1": 25, "large-31x31": 12}


def test_every_default_run_is_committed():
    on_disk = {name for name in training.DEFAULT_RUNS if (training.RUNS_DIR / name / training.CHECKPOINT).is_file()}
    assert on_disk == set(COMMITTED_EPOCHS)


@pytest.mark.parametrize("name", sorted(COMMITTED_EPOCHS))
def test_committed_default_runs_match_their_configs_and_their_numbers(name):
    """The committed run folders are the default configs, trained for the epochs listed above; the recorded
    % clustered is what the reference classifier says of the kernels in the snapshot files; the last snapshot
    of a finished run is its checkpoint's weights, the epoch-0 snapshot the seeded initialisation."""
    config = training.DEFAULT_RUNS[name]
    run_dir = training.RUNS_DIR / name
    record = json.loads((run_dir / training.PROVENANCE).read_text())
    assert record["config"] == config.to_dict() and record["epochs_done"] == COMMITTED_EPOCHS[name]
    assert [p["sha256"] for p in record["data"]["photos"]] == [p.sha256 for p in photos.PHOTOS[:record["data"]["n_classes"]]]
    loaded = training.load_run(run_dir)
    assert [s.epoch for s in loaded.snapshots] == [e for e in config.snapshots if e <= COMMITTED_EPOCHS[name]]
    k = config.network_options()["kernel_size"]
    first, last = loaded.snapshots[0], loaded.snapshots[-1]
    _, initial = store.read_kernel_array(first.path, k)
    seeded = training.build_model(config, record["data"]["n_classes"])
    np.testing.assert_array_equal(initial, _depthwise_kernels(seeded, k))
    meta, kernels = store.read_kernel_array(last.path, k)
    assert set(meta["model"]) == {f"{name}@epoch{last.epoch}"}
    if last.epoch == config.epochs:
        np.testing.assert_array_equal(_depthwise_kernels(loaded.model, k), kernels)
    recorded = last.clustering[f"{k}x{k}"]["clustered"]
    classifier = training.reference_classifier(k)
    if classifier is None:          # no reference autoencoder of this size: % clustered is undefined
        assert recorded is None
        return
    usable = ~np.asarray(meta["degenerate"], dtype=bool)
    assert recorded == round(float(classifier.predict(kernels[usable])["clustered"].mean()), 4)


def _depthwise_kernels(model, k):
    return torch.cat([m.weight.detach().reshape(-1, k, k) for _, m in nets.depthwise_convs(model)]).numpy()


@pytest.mark.parametrize("k, size", [(7, 8), (7, 24), (5, 5)])
def test_circular_padding_equals_conv2d_with_wrapped_borders(k, size):
    torch.manual_seed(1)
    conv = nets.DepthwiseConv2d(4, k, padding_mode="circular")
    x = torch.randn(2, 4, size, size + 1, requires_grad=True)
    wrapped = F.pad(x, (k // 2,) * 4, mode="circular")
    reference = F.conv2d(wrapped, conv.weight, conv.bias, groups=4)
    torch.testing.assert_close(conv(x), reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(nets.ModelError, match="at least as large"):
        nets.DepthwiseConv2d(4, 9, padding_mode="circular")(torch.randn(1, 4, 6, 6))


def test_relabel_restores_what_the_current_references_say_and_leaves_the_rest(tmp_path):
    """After the reference autoencoders are rebuilt the recorded % clustered is stale: relabel_run labels the
    snapshots again; with the references that labelled them it gives back the committed files byte for byte."""
    committed = training.RUNS_DIR / "dog-7x7"
    run_dir = shutil.copytree(committed, tmp_path / "dog-7x7")
    state = torch.load(run_dir / training.CHECKPOINT, map_location="cpu", weights_only=False)
    provenance = json.loads((run_dir / training.PROVENANCE).read_text())
    for record in [*state["snapshots"], *state["history"], *provenance["history"]]:
        if "clustering" in record:
            record["clustering"]["7x7"]["clustered"] = 0.0          # as if another autoencoder had labelled them
    torch.save(state, run_dir / training.CHECKPOINT)
    (run_dir / training.PROVENANCE).write_text(json.dumps(provenance))
    relabelled = training.relabel_run(run_dir)
    restored = relabelled.snapshots[0].clustering["7x7"]["clustered"]
    # DoG-initialised: clustered, as the current references say (not the 0.0 written above)
    assert restored == training.load_run(committed).snapshots[0].clustering["7x7"]["clustered"] > 0.9
    for file in [training.PROVENANCE, *(p.relative_to(committed) for p in (committed / "kernels").iterdir())]:
        assert (run_dir / file).read_bytes() == (committed / file).read_bytes(), file
    with pytest.raises(training.TrainingError, match="holds no checkpoint"):
        training.relabel_run(tmp_path / "missing")
