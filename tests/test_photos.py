"""The photograph corpus and the training data built from it.

Fast tests use the scikit-image photographs (inside the installed wheel) and local file://
"mirrors"; the slow ones fetch the Debian packages for real (deb.debian.org, ~170 MB on the first
run, then the kernels_lib cache): `test_every_pinned_photograph_matches_its_pin` through the shared
cache, `test_a_debian_package_fetched_from_scratch` into an empty cache.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from kernels_lib.training import datasets, photos
from kernels_lib.errors import CorruptFileError, KernelsLibError


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELS_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_pins_are_well_formed():
    keys = [p.key for p in photos.PHOTOS]
    assert len(keys) == len(set(keys)) == 50
    for pin in photos.PHOTOS:
        assert pin.origin in photos.DEBS or pin.origin == photos.SKIMAGE
        assert len(pin.sha256) == 64 and int(pin.sha256, 16) >= 0
    assert len({p.sha256 for p in photos.PHOTOS}) == len(keys), "two pins name the same file"
    for deb in photos.DEBS.values():
        assert deb.filename.startswith(deb.name + "_") and deb.filename.endswith("_all.deb")
        assert any(p.origin == deb.name for p in photos.PHOTOS), f"{deb.name} is pinned but contributes nothing"
    dropped = " ".join(f"{source} {files}" for source, files, _ in photos.DROPPED)
    for pin in photos.PHOTOS:
        assert pin.member.rsplit("/", 1)[-1] not in dropped, f"{pin.key} is both kept and dropped"


def test_skimage_photographs_fetch_into_an_empty_cache_and_decode(empty_cache):
    path = photos.photo_file("coffee")
    assert path.is_relative_to(empty_cache)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == photos.photo("coffee").sha256
    [image] = photos.load_photos(["coffee"], short_side=100)
    assert image.pixels.shape == (100, 150, 3) and image.pixels.dtype == np.float32
    assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0
    [grey] = photos.load_photos(["camera"], short_side=None)        # grey: R = G = B, never enlarged
    assert grey.pixels.shape == (512, 512, 3)
    np.testing.assert_array_equal(grey.pixels[..., 0], grey.pixels[..., 2])


def test_a_damaged_cached_photograph_is_replaced(empty_cache):
    path = photos.photo_file("chelsea")
    path.write_bytes(b"not a png")
    again = photos.photo_file("chelsea")
    assert hashlib.sha256(again.read_bytes()).hexdigest() == photos.photo("chelsea").sha256


def test_unknown_photograph_names_close_keys():
    with pytest.raises(KernelsLibError, match="did you mean .*coffee"):
        photos.photo("cofee")


def test_unreachable_archive_says_what_was_tried_and_how_to_fix(empty_cache):
    mirror = "http://127.0.0.1:9/debian"
    with pytest.raises(photos.PhotosUnavailableError) as err:
        photos.deb_path("lomiri-wallpapers-20.04", mirrors=(mirror,), timeout=2, use_apt=False)
    message = str(err.value)
    deb = photos.DEBS["lomiri-wallpapers-20.04"]
    assert f"{mirror}/{deb.pool_path}" in message
    assert f"apt-get download {deb.name}={deb.version}" in message and deb.sha256 in message
    assert str(empty_cache) in message


def _build_deb(folder, members: dict[str, bytes]):
    """A real .deb built by dpkg-deb (the reference packer) holding `members`."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = folder / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: fake\nVersion: 1\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: test\n")
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    out = folder / "fake_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zxz", str(root), str(out)], check=True, capture_output=True)
    return out


def test_deb_members_are_read_without_dpkg(tmp_path):
    blob = np.random.default_rng(0).bytes(5000)
    deb = _build_deb(tmp_path, {"usr/share/a.jpg": blob, "usr/share/b.txt": b"b"})
    assert photos.read_deb_members(deb, ["usr/share/a.jpg"]) == {"usr/share/a.jpg": blob}
    with pytest.raises(CorruptFileError, match="no regular file"):
        photos.read_deb_members(deb, ["usr/share/missing.jpg"])
    (tmp_path / "junk.deb").write_bytes(b"junk")
    with pytest.raises(CorruptFileError, match="not a readable .deb"):
        photos.read_deb_members(tmp_path / "junk.deb", ["x"])


def test_a_download_with_the_wrong_hash_is_discarded(empty_cache, tmp_path):
    deb = photos.DEBS["lomiri-wallpapers-20.04"]
    archive = tmp_path / "archive"
    (archive / deb.pool_path).parent.mkdir(parents=True)
    (archive / deb.pool_path).write_bytes(b"an impostor")
    with pytest.raises(photos.PhotosUnavailableError, match="expected .*discarded"):
        photos.deb_path(deb.name, mirrors=(archive.as_uri(),), use_apt=False)
    assert not list((empty_cache / "photos" / "debs").glob("*.deb"))


@pytest.mark.slow
def test_every_pinned_photograph_matches_its_pin():
    for path, pin in zip(photos.fetch_photos(), photos.PHOTOS):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256
        with Image.open(path) as image:
            assert min(image.size) >= 172


@pytest.mark.slow
def test_a_debian_package_fetched_from_scratch(empty_cache):
    """The real path: deb.debian.org → sha256 → Python ar/tar reading → photograph → .deb removed."""
    path = photos.photo_file("Kleiber")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == photos.photo("Kleiber").sha256
    assert not list((empty_cache / "photos" / "debs").glob("*.deb"))


# ---------------------------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------------------------

def test_phase_scrambling_keeps_the_power_spectrum_and_loses_the_picture():
    image = photos.load_photos(["astronaut"], short_side=128)[0].pixels
    scrambled = photos.phase_scrambled(image, seed=1)
    amplitude = np.abs(np.fft.rfft2(image, axes=(0, 1)))
    np.testing.assert_allclose(np.abs(np.fft.rfft2(scrambled, axes=(0, 1))), amplitude, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(scrambled.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1e-5)
    assert abs(np.corrcoef(scrambled[..., 0].ravel(), image[..., 0].ravel())[0, 1]) < 0.2
    np.testing.assert_array_equal(scrambled, photos.phase_scrambled(image, seed=1))
    assert not np.array_equal(scrambled, photos.phase_scrambled(image, seed=2))


def test_iid_noise_keeps_mean_and_std_and_nothing_spatial():
    image = photos.load_photos(["astronaut"], short_side=128)[0].pixels
    noise = photos.iid_noise(image, seed=0)
    np.testing.assert_allclose(noise.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=0.01)
    np.testing.assert_allclose(noise.std(axis=(0, 1)), image.std(axis=(0, 1)), rtol=0.02)
    neighbours = np.corrcoef(noise[:, :-1, 0].ravel(), noise[:, 1:, 0].ravel())[0, 1]
    assert abs(neighbours) < 0.05


# ---------------------------------------------------------------------------------------------
# Crops and the region split
# ---------------------------------------------------------------------------------------------

def _synthetic_crops(**options):
    rng = np.random.default_rng(3)
    images = [rng.random((h, w, 3), dtype=np.float32) for h, w in [(96, 120), (120, 90), (70, 200)]]
    return datasets.PhotoCrops(images, ["a", "b", "c"], crop_size=16, **options)


@pytest.mark.parametrize("options", [{}, {"fixed_crops": 40, "flip": False}, {"val_fraction": 0.4, "gap": 0}])
def test_no_training_crop_touches_a_validation_band(options):
    """Mark every band (and its gap) with NaN in the pixels themselves; training batches must never see one."""
    data = _synthetic_crops(crops_per_epoch=2000, **options)
    for image, band in zip(data.images, data.bands):
        image[max(0, band.start - band.gap):band.stop + band.gap] = np.nan
    for epoch in range(3):
        for x, _ in data.epoch_batches(epoch, batch_size=256, seed=0):
            assert not np.isnan(x.numpy()).any()
    for x, _ in data.validation_batches(batch_size=64):          # validation crops lie inside the bands
        assert np.isnan(x.numpy()).all()


def test_training_positions_cover_both_sides_of_the_band():
    data = _synthetic_crops(crops_per_epoch=10)
    labels = np.zeros(5000, dtype=int)
    tops, lefts = data.sample_positions(labels, np.random.default_rng(0))
    band = data.bands[0]
    assert all(band.allows(int(t), data.crop_size) for t in tops)
    above, below, _ = data._allowed_tops(0)
    assert (tops < band.start).any() == (above > 0) and (tops >= band.stop).any() == (below > 0)
    assert lefts.min() == 0 and lefts.max() == data.images[0].shape[1] - data.crop_size


def test_batches_are_seeded_and_labelled_by_photograph():
    data = _synthetic_crops(crops_per_epoch=300)
    first = [(x.clone(), y.clone()) for x, y in data.epoch_batches(1, 128, seed=5)]
    again = list(data.epoch_batches(1, 128, seed=5))
    for (x1, y1), (x2, y2) in zip(first, again):
        assert (x1 == x2).all() and (y1 == y2).all()
    other = next(iter(data.epoch_batches(2, 128, seed=5)))[0]
    assert not (other == first[0][0]).all()
    assert sum(len(y) for _, y in first) == 300 and set(np.concatenate([y for _, y in first])) == {0, 1, 2}
    assert data.n_validation == sum(im.shape[1] // 16 for im in data.images)


def test_too_small_a_photograph_is_a_clear_error():
    with pytest.raises(datasets.DatasetError, match="too small.*short_side"):
        datasets.PhotoCrops([np.zeros((30, 64, 3)), np.zeros((64, 64, 3))], ["tiny", "ok"], crop_size=16)


def test_photo_crops_of_the_scikit_image_photographs_record_their_data():
    data = datasets.training_data("photos-phase", keys=photos.SKIMAGE_KEYS, short_side=96, crop_size=24)
    record = data.provenance()
    assert record["data"] == "photos-phase" and record["n_classes"] == len(photos.SKIMAGE_KEYS)
    assert [p["sha256"] for p in record["photos"]] == [photos.photo(k).sha256 for k in photos.SKIMAGE_KEYS]
    assert record["control_seed"] == 0 and len(record["corpus_sha256"]) == 64


# ---------------------------------------------------------------------------------------------
# Outside data
# ---------------------------------------------------------------------------------------------

def test_image_folder_is_split_by_whole_images(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = datasets.training_data(str(tmp_path), crop_size=16, crops_per_epoch=12)
    assert data.classes == ["cats", "dogs"] and data.n_validation == 4 and len(data.train) == 16
    assert not set(data.train.indices) & set(data.validation.indices)
    x, y = next(iter(data.epoch_batches(0, batch_size=12, seed=0)))
    assert x.shape == (12, 3, 16, 16) and set(y.tolist()) <= {0, 1}


def test_missing_torchvision_data_says_where_it_looked_and_what_it_needs(tmp_path):
    with pytest.raises(datasets.DatasetUnavailableError, match="internet once") as err:
        datasets.training_data("cifar10", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(datasets.DatasetUnavailableError, match="cannot be downloaded automatically"):
        datasets.training_data("imagenet", root=tmp_path)


def test_unknown_data_name_lists_what_exists(tmp_path):
    with pytest.raises(datasets.DatasetUnavailableError, match="did you mean .*photos-phase"):
        datasets.training_data("photos-phas")
