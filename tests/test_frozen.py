"""The frozen-filter study (training.frozen): its banks fit the network, frozen kernels stay put while the
rest trains, the committed study is complete and read back as recorded, and bad names are answered."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kernels_lib import plots
from kernels_lib.training import frozen, nets, photos
from kernels_lib.training.datasets import DatasetUnavailableError, training_data
from kernels_lib.training.loop import build_model, load_run
from kernels_lib.training.study import study_config

#: A few steps on the scikit-image photographs: 8 channels (one per master key), 2 blocks, 16×16 crops.
TINY = {"epochs": 1, "crops_per_epoch": 64, "batch_size": 32, "width": 8, "depth": 2, "crop_size": 16,
        "data_options": {"keys": list(photos.SKIMAGE_KEYS), "short_side": 96}}
SOURCES = ("photos", "photos-iid")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny study on the photographs: learned on photos and photos-iid, then every bank and the transfer."""
    root = tmp_path_factory.mktemp("frozen")
    torch.set_num_threads(1)
    recipe = frozen.study_recipe(settings=TINY)
    study = frozen.run_frozen(root / "frozen.json", targets=("photos",), sources=SOURCES, seeds=(0,), committed=(),
                              recipe=recipe, runs_dir=root / "runs", progress=False)
    data = {name: training_data(name, **frozen._config(name, frozen.LEARNED, 0, recipe).data_arguments())
            for name in SOURCES}
    return {"path": root / "frozen.json", "study": study, "recipe": recipe, "runs_dir": root / "runs", "data": data}


def _rerun(tiny, target, condition, sources=None):
    """A run of the tiny study again: its finished checkpoint is read back (no training)."""
    return frozen.run_one(tiny["data"][target], target, condition, 0, tiny["recipe"], tiny["runs_dir"], sources or {})


def test_every_bank_fills_each_depthwise_layer_of_the_study_network_and_the_master_keys_are_the_committed():
    net = build_model(study_config("photos", frozen.WEIGHT_DECAY, 0), n_classes=50)
    convs = nets.depthwise_convs(net)
    assert len(convs) == 4
    for condition, size in (("master-keys", 8), ("scale-space", 26), ("random", 8)):
        bank = frozen.bank_kernels(condition, 0, 7)
        assert bank.shape == (size, 7, 7)
        for _, conv in convs:
            assert frozen.assign(bank, conv.out_channels).shape == tuple(conv.weight[:, 0].shape) == (48, 7, 7)
    committed = json.loads(frozen.RESULTS_FILE.read_text())["master_keys"]
    keys, gains = frozen.master_keys()
    np.testing.assert_allclose(keys, committed["kernels"], atol=1e-9)
    np.testing.assert_allclose(gains, committed["gains"], atol=1e-9)
    assert len(frozen.scale_space_bank()[1]) == 26
    with pytest.raises(frozen.FrozenError, match="holds 48 kernels"):
        frozen.freezer([frozen.assign(bank, 8)] * 4, {})(net)


def test_frozen_kernels_have_the_initial_norm_and_random_ones_the_master_keys_norms_channel_by_channel():
    # 1/√3 is the expected norm of the learned network's initial kernels (PyTorch's U(−1/k, 1/k)): measured
    initial = np.concatenate([k for seed in (0, 1) for k in frozen.depthwise_kernels(
        build_model(study_config("photos", frozen.WEIGHT_DECAY, seed), n_classes=50))])
    assert (initial ** 2).sum(axis=(1, 2)).mean() == pytest.approx(frozen.INIT_NORM ** 2, rel=0.03)
    random = frozen.assign(frozen.bank_kernels("random", 0, 7), 48)
    keys = frozen.assign(frozen.bank_kernels("master-keys", 0, 7), 48)
    for layer in (random, keys):
        np.testing.assert_allclose(np.linalg.norm(layer.reshape(48, -1), axis=1), frozen.INIT_NORM, rtol=1e-6)
    assert not np.allclose(random, keys)
    # each of the 8 filters six times: as drawn, rotated by 90°, 180°, 270°, negated, negated and rotated
    np.testing.assert_allclose(random[8], np.rot90(random[0]), atol=1e-7)
    np.testing.assert_allclose(random[24], np.rot90(random[0], 3), atol=1e-7)
    np.testing.assert_allclose(random[32], -random[0], atol=1e-7)
    np.testing.assert_allclose(random[47], -np.rot90(random[7]), atol=1e-7)
    assert not np.allclose(frozen.random_bank(8, 7, 0), frozen.random_bank(8, 7, 1))
    np.testing.assert_array_equal(frozen.random_bank(8, 7, 1), frozen.random_bank(8, 7, 1))


def test_a_frozen_condition_keeps_its_depthwise_kernels_while_the_rest_trains_and_learned_moves_them(tiny):
    config = frozen._config("photos", frozen.LEARNED, 0, tiny["recipe"])
    start = build_model(config, tiny["data"]["photos"].n_classes)
    learned_record, learned = _rerun(tiny, "photos", frozen.LEARNED)
    assert all(np.abs(a - b).max() > 1e-4 for a, b in zip(learned, frozen.depthwise_kernels(start)))
    assert learned_record["cosine_to_start"] < 1 and learned_record["frozen_max_change"] is None

    record, final = _rerun(tiny, "photos", "random")
    bank = frozen.assign(frozen.random_bank(8, 7, 0), 8)
    for layer in final:
        np.testing.assert_array_equal(layer, bank)
    assert record["frozen_max_change"] == 0.0 and record["cosine_to_start"] == 1.0
    trained = frozen._run_dir(tiny["runs_dir"], frozen._config("photos", "random", 0, tiny["recipe"]))
    state, initial = load_run(trained).model.state_dict(), start.state_dict()
    pointwise = [n for n, w in state.items() if n.endswith("weight") and w.dim() == 4 and w.shape[-2:] == (1, 1)]
    assert pointwise and all(not torch.equal(state[n], initial[n]) for n in pointwise)     # the rest trained

    _, source = _rerun(tiny, "photos-iid", frozen.LEARNED)
    _, transferred = _rerun(tiny, "photos", "from-photos-iid", {"photos-iid": source})
    for got, kernels in zip(transferred, source):
        scaled = kernels / np.linalg.norm(kernels.reshape(len(kernels), -1), axis=1)[:, None, None]
        np.testing.assert_allclose(got, scaled * frozen.INIT_NORM, rtol=1e-5, atol=1e-7)


def test_the_tiny_study_holds_each_run_once_resumes_without_training_and_refuses_another_recipe(tiny):
    path = tiny["path"]
    keys = [(r["target"], r["condition"]) for r in tiny["study"]["runs"]]
    assert sorted(keys) == sorted([("photos", "learned"), ("photos-iid", "learned"), ("photos", "master-keys"),
                                   ("photos", "scale-space"), ("photos", "random"), ("photos", "from-photos-iid")])
    before = path.read_bytes()
    frozen.run_frozen(path, targets=("photos",), sources=SOURCES, seeds=(0,), committed=(), recipe=tiny["recipe"],
                      runs_dir=tiny["runs_dir"] / "none", progress=False)
    assert path.read_bytes() == before and not (tiny["runs_dir"] / "none").exists()
    with pytest.raises(frozen.FrozenError, match="made with other recipe"):
        frozen.run_frozen(path, targets=("photos",), sources=SOURCES, seeds=(0,), committed=(),
                          recipe=frozen.study_recipe(0.05, TINY), runs_dir=tiny["runs_dir"], progress=False)


def test_the_committed_study_is_complete_and_its_table_is_the_mean_over_seeds():
    study = json.loads(frozen.RESULTS_FILE.read_text())
    expected = {(name, frozen.LEARNED, seed) for seed in frozen.SEEDS for name in {*frozen.SOURCES, *frozen.TARGETS}}
    expected |= {(target, condition, seed) for seed in frozen.SEEDS for target in frozen.TARGETS
                 for condition in frozen.conditions(target)}
    got = [frozen._key(r) for r in study["runs"]]
    assert len(got) == len(set(got)) and set(got) == expected
    assert all(r["frozen_max_change"] == 0.0 for r in study["runs"] if r["condition"] != frozen.LEARNED)
    # what the code rebuilds today (master keys, committed sources) is what the file was made with
    frozen._read(frozen.RESULTS_FILE, frozen._head(frozen.study_recipe(), frozen.COMMITTED))

    table = frozen.accuracy_table(frozen.frozen_frame())
    pairs = {(t, c) for t, c, _ in expected}
    assert len(table) == len(pairs) and set(zip(table["data"], table["condition"])) == pairs
    for row in table.itertuples():
        values = [r["val_accuracy"] for r in study["runs"] if (r["target"], r["condition"]) == (row.data, row.condition)]
        assert row.n_seeds == len(values) == 2
        assert row.val_accuracy_pct == pytest.approx(100 * np.mean(values), abs=1e-9)
        assert row.min_pct == pytest.approx(100 * min(values)) and row.max_pct == pytest.approx(100 * max(values))


def test_unknown_names_are_refused_with_the_close_ones_before_anything_trains(tmp_path):
    with pytest.raises(frozen.FrozenError, match="did you mean 'master-keys'"):
        frozen.bank_kernels("master-key", 0, 7)
    recipe = frozen.study_recipe(settings=TINY)
    with pytest.raises(frozen.FrozenError, match="did you mean 'random'"):
        frozen.run_one(None, "photos", "randm", 0, recipe, tmp_path, {})
    with pytest.raises(frozen.FrozenError, match="did you mean 'photos-iid'"):
        frozen.run_one(None, "photos", "from-photos-idd", 0, recipe, tmp_path, {"photos-iid": []})
    with pytest.raises(frozen.FrozenError, match="did you mean 'kaiming-7x7'"):
        frozen.run_frozen(tmp_path / "a.json", committed=("kaiming7x7",), recipe=recipe, runs_dir=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="did you mean 'photos'"):
        frozen.run_frozen(tmp_path / "b.json", targets=("fotos",), sources=("photos",), seeds=(0,), committed=(),
                          recipe=recipe, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "runs").exists()
    with pytest.raises(frozen.FrozenError, match="7×7"):
        frozen.master_keys(5)



def test_the_accuracy_figure_has_a_panel_per_data_set_and_each_bar_is_the_mean_over_seeds():
    frame = frozen.frozen_frame()
    table = frozen.accuracy_table(frame)
    fig = plots.frozen_accuracy_bars(frame, frozen.target_order(frame), frozen.condition_order(frame), title="t",
                                     data_labels=frozen.data_labels(frame))
    axes = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["photos", "fashion-mnist", "photos-iid"]
    for ax, (data, part) in zip(axes, table.groupby("data", sort=False)):
        np.testing.assert_allclose([bar.get_height() for bar in ax.patches], part["val_accuracy_pct"], atol=1e-9)
    assert "source only" in axes[2].get_title() and "1,000 validated" in axes[1].get_title()
