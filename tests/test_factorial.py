"""Fashion-MNIST's loader (IDX files written here, parsed by the real reader) and the factorial study's measures."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from kernels_lib.errors import CorruptFileError
from kernels_lib.method import dog
from kernels_lib.training import fashion, photos, study
from kernels_lib.training.datasets import DatasetError, training_data
from kernels_lib.training.fashion import GreyImages, read_idx
from kernels_lib.training.loop import TrainConfig, train


def _write_idx(path, array: np.ndarray, code: int, compress: bool) -> None:
    """An IDX file as LeCun describes it: 0, 0, type code, ndim, big-endian int32 sizes, big-endian data."""
    big = array.astype(array.dtype.newbyteorder(">"))
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_read_back_with_their_shape_type_and_values(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    floats = rng.standard_normal((3, 4)).astype(np.float32)
    _write_idx(tmp_path / "images.gz" if compress else tmp_path / "images", images, 0x08, compress)
    _write_idx(tmp_path / "floats.gz" if compress else tmp_path / "floats", floats, 0x0D, compress)
    suffix = ".gz" if compress else ""
    np.testing.assert_array_equal(read_idx(tmp_path / f"images{suffix}"), images)
    back = read_idx(tmp_path / f"floats{suffix}")
    assert back.dtype == np.float32 and back.dtype.byteorder in "=<|"
    np.testing.assert_array_equal(back, floats)


def test_a_truncated_or_foreign_file_is_refused_with_its_name(tmp_path):
    images = np.zeros((4, 28, 28), np.uint8)
    _write_idx(tmp_path / "ok", images, 0x08, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-10])
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    with pytest.raises(CorruptFileError, match="short.*needs"):
        read_idx(tmp_path / "short")
    with pytest.raises(CorruptFileError, match="not an IDX file"):
        read_idx(tmp_path / "png")


def _tiny(**options) -> GreyImages:
    rng = np.random.default_rng(1)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 10:18, 4:24] = rng.integers(100, 256, (20, 1, 1))        # a bright bar, one grey value each
    labels = np.arange(20) % 2
    return GreyImages(images, labels, images[:6], labels[:6], ["a", "b"], **options)


def test_grey_images_are_centred_on_black_in_three_equal_channels_and_normalised():
    data = _tiny(crops_per_epoch=20, augment=False)
    x, y = next(data.validation_batches(6))
    assert x.shape == (6, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    background = (0 - data.mean) / data.std
    assert torch.allclose(x[:, :, :2], torch.tensor(background, dtype=torch.float32))      # 2 px black above
    assert torch.allclose(x[:, :, 12:20, 6:26].std(dim=(2, 3)), torch.tensor(0.0), atol=1e-6)  # the bar, centred
    batches = list(data.epoch_batches(1, 8, seed=0))
    assert [len(b[1]) for b in batches] == [8, 8, 4]
    shown = torch.cat([b[0] for b in batches]).reshape(20, -1).mean(dim=1)
    assert abs(float(shown.mean())) < 0.5            # normalised by the training pixels, padding aside


def test_augmentation_shifts_within_the_limit_and_the_same_seed_repeats():
    data = _tiny(crops_per_epoch=20, augment=True, shift=2)
    first = torch.cat([b[0] for b in data.epoch_batches(3, 8, seed=5)])
    again = torch.cat([b[0] for b in data.epoch_batches(3, 8, seed=5)])
    other = torch.cat([b[0] for b in data.epoch_batches(4, 8, seed=5)])
    assert torch.equal(first, again) and not torch.equal(first, other)
    background = (0 - data.mean) / data.std
    bright = (first[:, 0] > background + 1e-3).float()
    rows = bright.amax(dim=2).nonzero()[:, 1]
    assert rows.min() >= 10 + 2 - 2 and rows.max() <= 17 + 2 + 2        # the bar's rows, ±2 px


def test_bad_settings_say_what_to_change():
    with pytest.raises(DatasetError, match="at least 28"):
        _tiny(crop_size=24)
    with pytest.raises(DatasetError, match="one label each"):
        GreyImages(np.zeros((3, 28, 28)), [0, 1], np.zeros((1, 28, 28)), [0], ["a", "b"])


@pytest.mark.skipif(not fashion.available(), reason="Fashion-MNIST's IDX files are neither in the kernels_lib cache "
                    f"nor in {fashion.SYSTEM_DIR} (apt-get download dataset-fashion-mnist; see kernels_lib.training.fashion)")
def test_the_debian_files_give_ten_balanced_classes_and_a_run_trains_on_them(tmp_path):
    data = training_data("fashion-mnist", crop_size=32, crops_per_epoch=64, augment=True, val_size=100)
    assert data.n_classes == 10 and len(data.train_labels) == 60000 and data.n_validation == 100
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    config = TrainConfig("fm", data="fashion-mnist", width=8, depth=2, crops_per_epoch=64, batch_size=32, epochs=1,
                         data_options={"val_size": 100}, device="cpu")
    result = train(config, run_dir=tmp_path / "fm", progress=False)
    assert result.provenance["data"]["n_classes"] == 10 and result.history[-1]["val_accuracy"] is not None


# ---------------------------------------------------------------------------------------------
# The study's measures
# ---------------------------------------------------------------------------------------------

def test_nearest_cosine_is_one_for_a_bank_against_itself_and_ignores_degenerate_kernels():
    rng = np.random.default_rng(2)
    bank = rng.standard_normal((10, 7, 7))
    assert study.nearest_cosine(bank, bank) == pytest.approx(1.0)
    with_constant = np.concatenate([bank, np.ones((1, 7, 7))])
    assert study.nearest_cosine(with_constant, bank) == pytest.approx(1.0)
    assert study.nearest_cosine(-bank, bank) < 0.9                 # sign is kept: Off is not On
    assert study.nearest_cosine(np.ones((2, 7, 7)), bank) is None


def test_share_distance_is_zero_for_equal_mixes_one_for_disjoint_ones_and_undefined_for_none():
    p = {"on": 0.5, "unclustered": 0.5}
    assert study.share_distance(p, dict(p)) == 0.0
    assert study.share_distance(p, {"off": 1.0}) == pytest.approx(1.0)
    assert study.share_distance(p, {"on": 1.0}) == pytest.approx(0.5)
    assert study.share_distance({}, p) is None


def test_the_fit_summary_finds_drawn_first_derivatives_on_the_axes_and_their_sigma():
    # Kernels drawn by the DoG generator (not the fit's dictionary): first derivatives along x and y at σ 1.
    x, y = dog.kernel_grid(7)
    kernels = np.stack([dog.evaluate(name, x, y, sigma=1.0) for name in ("on-dx", "on-dy", "off-dx", "off-dy")])
    summary = study.fit_summary(kernels)
    assert summary["fit_clustered"] == 1.0 and summary["n_first_derivatives_fit"] == 4
    assert summary["first_derivative_share_near_axis"] == 1.0
    assert summary["median_sigma"] == pytest.approx(1.0, abs=0.15)


def test_settings_of_a_longer_study_keep_the_warm_up_share_and_the_default_runs_length():
    """`--epochs 25` is the default runs' schedule: 25 epochs of 6,400 crops, one warm-up epoch (4 %)."""
    assert study.settings_for(1) == study.SETTINGS
    full = study.study_config("photos", 0.05, 0, study.settings_for(25))
    base = study.DEFAULT_RUNS["kaiming-7x7"]
    assert (full.epochs, full.crops_per_epoch, full.warmup_epochs) == (base.epochs, base.crops_per_epoch,
                                                                      base.warmup_epochs)
    with pytest.raises(study.StudyError, match="at least 1"):
        study.settings_for(0)


def test_a_study_config_differs_from_the_default_run_only_where_the_study_says():
    config = study.study_config("photos-iid", 0.5, 1)        # the default runs train at 0.05
    base = study.DEFAULT_RUNS["kaiming-7x7"]
    changed = {k for k, v in config.to_dict().items() if v != base.to_dict()[k]}
    assert {"run", "data", "weight_decay", "seed"} <= changed <= {"run", "data", "weight_decay", "seed",
                                                                  "snapshot_epochs", *study.SETTINGS}
    assert config.epochs * config.crops_per_epoch < base.epochs * base.crops_per_epoch


#: A few steps of a small net on the scikit-image photographs (no download).
TINY = {"epochs": 1, "crops_per_epoch": 64, "batch_size": 32, "width": 8, "depth": 2, "crop_size": 16,
        "data_options": {"keys": list(photos.SKIMAGE_KEYS), "short_side": 96}}


def test_a_tiny_study_records_every_cell_and_its_twins_and_resumes_without_retraining(tmp_path):
    path = tmp_path / "study" / "seed0.json"
    result = study.run_study(path, data=("photos", "photos-iid"), weight_decays=(0.0, 0.5), seeds=(0,),
                             settings=TINY, runs_dir=tmp_path / "runs", progress=False)
    assert [(r["data"], r["weight_decay"]) for r in result["runs"]] == [
        ("photos", 0.0), ("photos", 0.5), ("photos-iid", 0.0), ("photos-iid", 0.5)]
    assert [t["data"] for t in result["twins"]] == ["photos", "photos-iid"]
    for run in result["runs"]:
        assert run["steps"] == 2 and 0 <= run["val_accuracy"] <= 1
        # two steps at the full rate (a one-step warm-up, then the cosine's first step): lr·wd·2
        assert run["integrated_weight_decay"] == pytest.approx(1e-2 * run["weight_decay"] * 2)
        assert run["nn_cosine_to_real"] is not None and -1 <= run["nn_cosine_symmetric"] <= 1
    for twin in result["twins"]:
        assert twin["clustered"] == 0.0            # Kaiming noise at step 0 is not DoG-shaped
    written = path.read_bytes()
    again = study.run_study(path, data=("photos", "photos-iid"), weight_decays=(0.0, 0.5), seeds=(0,),
                            settings=TINY, runs_dir=tmp_path / "elsewhere", progress=False)
    assert path.read_bytes() == written and not (tmp_path / "elsewhere").exists()
    assert again["runs"] == json.loads(written)["runs"]
    frame = study.study_frame(path.parent)
    table = study.cell_table(frame, "clustered", data=("photos", "photos-iid"))
    assert list(table.index) == ["photos", "photos-iid", "random init"] and list(table.columns) == [0.0, 0.5]
    with pytest.raises(study.StudyError, match="settings"):
        study.run_study(path, data=("photos",), weight_decays=(0.0,), seeds=(0,), settings={**TINY, "epochs": 2},
                        runs_dir=tmp_path / "runs", progress=False)
