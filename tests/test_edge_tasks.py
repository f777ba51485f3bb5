"""training.edge_tasks: the grey unit-contrast view leaves no colour or brightness to answer with, each task's
labels are what was done to the crop, the controls keep what they claim, and a tiny plan records every measure
and resumes without training again."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kernels_lib.training import edge_tasks as et, nets, photos
from kernels_lib.training.datasets import DatasetError, photo_crops
from kernels_lib.training.fashion import GreyImages

SMOKE_DATA = {"keys": list(photos.SKIMAGE_KEYS), "short_side": 96}
TINY = {"crops_per_epoch": 64, "batch_size": 32, "data_options": SMOKE_DATA}


def test_grey_contrast_removes_colour_and_brightness_and_keeps_the_pattern():
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    grey = et.grey_contrast(x)
    assert grey.shape == (4, 1, 8, 8)
    torch.testing.assert_close(grey.mean(dim=(2, 3)), torch.zeros(4, 1, dtype=torch.float64))
    torch.testing.assert_close(grey.pow(2).mean(dim=(2, 3)), torch.ones(4, 1, dtype=torch.float64))
    brighter = 3.0 * x + torch.tensor([0.5, -2.0, 7.0, 0.1], dtype=torch.float64).view(4, 1, 1, 1)
    torch.testing.assert_close(et.grey_contrast(brighter), grey)      # any contrast and brightness: the same input
    flat = torch.full((1, 3, 8, 8), 0.7)
    assert torch.equal(et.grey_contrast(flat), torch.zeros(1, 1, 8, 8))


def test_rotations_and_swaps_are_the_numpy_ones_and_undo_themselves():
    x = torch.arange(2 * 36, dtype=torch.float32).view(2, 1, 6, 6)
    turns = torch.tensor([1, 3])
    turned = et.rotate(x, turns)
    for i, k in enumerate(turns.tolist()):
        np.testing.assert_array_equal(turned[i, 0].numpy(), np.rot90(x[i, 0].numpy(), k))
    torch.testing.assert_close(et.rotate(turned, 4 - turns), x)
    swapped = et.swap_halves(x, torch.tensor([1, 1]), torch.tensor([0, 1]))
    torch.testing.assert_close(swapped[0, 0, :3], x[0, 0, 3:])               # top and bottom exchanged
    torch.testing.assert_close(swapped[1, 0, :, :3], x[1, 0, :, 3:])         # left and right exchanged
    torch.testing.assert_close(et.swap_halves(swapped, torch.tensor([1, 1]), torch.tensor([0, 1])), x)
    torch.testing.assert_close(et.swap_halves(x, torch.tensor([0, 0]), torch.tensor([0, 1])), x)


@pytest.fixture(scope="module")
def crops():
    return photo_crops("photos", crop_size=16, crops_per_epoch=64, **SMOKE_DATA)


@pytest.mark.parametrize("task", ["rotation", "halves"])
def test_a_self_supervised_label_is_what_was_done_to_the_grey_crop(crops, task):
    data = et.TaskData(crops, task)
    base = [et.grey_contrast(x) for x, _ in crops.epoch_batches(1, 32, seed=3)]
    batches = list(data.epoch_batches(1, 32, seed=3))
    assert [b[0].shape for b in batches] == [(32, 1, 16, 16)] * 2
    labels = torch.cat([y for _, y in batches])
    assert set(labels.tolist()) == set(range(data.n_classes))
    for (x, y), original in zip(batches, base):
        for image, label, start in zip(x, y, original):          # undo each crop's turn or swap: the crop itself
            undone = [et.rotate(image[None], torch.tensor([4 - int(label)]))[0]] if task == "rotation" else \
                [et.swap_halves(image[None], label[None], torch.tensor([axis]))[0] for axis in (0, 1)]
            assert any(torch.allclose(u, start) for u in undone)
    again = list(data.epoch_batches(1, 32, seed=3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))


def test_validation_shows_every_crop_in_every_view_equally_often(crops):
    data = et.TaskData(crops, "rotation")
    labels = torch.cat([y for _, y in data.validation_batches(64)])
    assert len(labels) == data.n_validation == 4 * crops.n_validation
    assert torch.bincount(labels).tolist() == [crops.n_validation] * 4
    photo_id = et.TaskData(crops, "photo-id")
    assert torch.equal(torch.cat([y for _, y in photo_id.validation_batches(64)]),
                       torch.cat([y for _, y in crops.validation_batches(64)]))


def _shapes() -> GreyImages:
    images = np.zeros((12, 28, 28), np.uint8)
    images[::2, 6:22, 12:16] = 200           # class 0: a vertical bar
    images[1::2, 12:16, 6:22] = 200          # class 1: a horizontal bar
    labels = np.arange(12) % 2
    return GreyImages(images, labels, images[:4], labels[:4], ["vertical", "horizontal"], crops_per_epoch=12,
                      augment=False)


def test_the_per_image_controls_keep_the_power_spectrum_or_nothing_spatial():
    base = _shapes()
    x, _ = next(base.validation_batches(4))
    grey = et.grey_contrast(x)
    phase = next(et.TaskData(base, "fashion", "phase").validation_batches(4))[0]
    amplitude = [torch.fft.fft2(image[0]).abs() for image in (grey, phase)]
    torch.testing.assert_close(amplitude[1], amplitude[0], atol=1e-3, rtol=1e-4)   # same spectrum ...
    assert not torch.allclose(phase, grey, atol=0.1)                                # ... other phases
    iid = next(et.TaskData(base, "fashion", "iid").validation_batches(4))[0]
    neighbours = (iid[..., 1:] * iid[..., :-1]).mean()                             # no correlation between pixels
    assert abs(float(neighbours)) < 0.1 and float((grey[..., 1:] * grey[..., :-1]).mean()) > 0.5
    with pytest.raises(DatasetError, match="unknown control"):
        et.TaskData(base, "fashion", "blur")


def test_settings_refuse_what_they_cannot_run():
    with pytest.raises(DatasetError, match="multiple of 100"):
        et.Setting("x", "rotation", steps=150)
    with pytest.raises(DatasetError, match="unknown task"):
        et.Setting("x", "jigsaw")
    with pytest.raises(DatasetError, match="runs on"):
        et.Setting("x", "rotation").config("fashion-mnist", 0)
    config = et.Setting("x", "fashion", steps=300).config("fashion-mnist-phase", 1)
    assert (config.data, config.epochs, config.seed, config.network_options()["in_channels"]) == ("fashion-mnist", 3, 1, 1)
    assert config.data_options == {"val_size": 1000, "task": "fashion", "name": "fashion-mnist-phase", "control": "phase"}


def test_the_reference_autoencoder_finds_first_derivatives_and_only_them():
    edges = nets.dog_kernels(7, 20, seed=0, mix={"1st-derivative": 1.0}).astype(np.float64)
    blobs = nets.dog_kernels(7, 20, seed=0, mix={"on": 1.0}).astype(np.float64)
    count, kept = et.first_derivative_kernels(np.concatenate([edges, blobs]), limit=5)
    assert 16 <= count <= 20 and len(kept) == 5
    assert all(any(np.allclose(k, e, atol=1e-5) for e in edges) for k in np.array(kept))


@pytest.mark.slow
def test_a_tiny_plan_records_every_measure_and_resumes_without_training(tmp_path):
    settings = [et.Setting("tiny-rotation", "rotation", steps=200, crop_size=16, width=8, depth=2)]
    path = tmp_path / "plan.json"
    plan = et.run_plan(path, settings, seeds=(0,), runs_dir=tmp_path / "runs", changes=TINY, progress=False)
    assert [r["data"] for r in plan["runs"]] == list(et.PHOTO_DATA) and len(plan["twins"]) == 3
    for run in plan["runs"]:
        assert run["steps"] == 4 and run["chance"] == 0.25                      # 2 epochs of 2 batches
        assert run["ablation"]["accuracy"]["trained"] == run["val_accuracy"]
        assert 0 <= run["first_derivative_share"] <= 1 and run["n_first_derivatives"] == len(run["first_derivative_kernels"])
        assert run["ablation"]["n_validation"] == 4 * photo_crops("photos", crop_size=16, **SMOKE_DATA).n_validation
    written = path.read_bytes()
    et.run_plan(path, settings, seeds=(0,), runs_dir=tmp_path / "nowhere", changes=TINY, progress=False)
    assert path.read_bytes() == written and not (tmp_path / "nowhere").exists()
    with pytest.raises(et.study.StudyError, match="changes"):
        et.run_plan(path, settings, seeds=(0,), changes={}, progress=False)
    frame = et.edge_frame(tmp_path)
    table = et.setting_table(frame)
    assert table["data"].tolist() == [*et.PHOTO_DATA, "random init"]
    row = table.iloc[0]
    assert row["clustered_pct"] == pytest.approx(100 * plan["runs"][0]["clustered"])
    assert row["identity_accuracy_pct"] == pytest.approx(100 * plan["runs"][0]["accuracy_identity"])
    assert et.verdicts(frame)["setting"].tolist() == ["tiny-rotation"]


def _frame(images, controls, twins) -> pd.DataFrame:
    rows = [{"setting": "s", "kind": "trained", "control": "images", "first_derivative_share": v} for v in images]
    rows += [{"setting": "s", "kind": "trained", "control": "phase-scrambled", "first_derivative_share": v}
             for v in controls]
    rows += [{"setting": "s", "kind": "random init", "control": "images", "first_derivative_share": v}
             for v in twins]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("images, controls, twins, expected", [
    ([0.05, 0.03], [0.0, 0.01], [0.0, 0.0], True),
    ([0.05, 0.0], [0.0, 0.0], [0.0, 0.0], False),         # one seed without any
    ([0.05, 0.03], [0.04, 0.0], [0.0, 0.0], False),       # a control seed has more than the worst photograph seed
    ([0.05, 0.03], [0.0, 0.0], [0.03, 0.0], False),       # so does a random-init twin
])
def test_a_setting_separates_only_when_every_image_seed_beats_every_control_and_twin(images, controls, twins, expected):
    assert bool(et.verdicts(_frame(images, controls, twins))["separates"].iloc[0]) is expected


def test_the_committed_runs_hold_each_setting_on_its_images_and_both_controls_with_two_seeds():
    frame = et.edge_frame()
    trained = frame[frame["kind"] == "trained"]
    for setting, part in trained.groupby("setting"):
        seeds = part.groupby("data")["seed"].nunique()
        assert set(seeds.index) == set(et.TASKS[part["task"].iloc[0]]) and (seeds >= 2).all(), setting
    assert json.loads(json.dumps(et.setting_table(frame).to_dict("records"), default=str))
