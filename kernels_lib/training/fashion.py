"""Fashion-MNIST: a real labelled image set that is not natural scenes, for the data × recipe study.

Zalando's 70,000 grey 28×28 photographs of clothing on a black background, 10 classes (MIT licence),
as Debian ships them in `dataset-fashion-mnist` (IDX files under /usr/share/datasets/fashion-mnist/).
Each file is pinned by sha256 and found, in order: in the kernels_lib cache, in the installed Debian
package, or inside the pinned .deb fetched on first use the way the photographs are (`photos.deb_path`:
the Debian archive, then `apt-get download`; no install, no root). A run sees the images the way it sees
photograph crops: `crop_size` square (the 28×28 image centred on black, shifted by up to `shift` px and
mirrored when training with augmentation), the grey value repeated in R, G, B, normalised by the
training pixels' mean and standard deviation.

- `read_idx(path)`          an IDX file (optionally gzipped) as a numpy array
- `fashion_file(name)`      one pinned IDX file, verified
- `fashion_mnist(...)`      the (train, validation) data object `training_data("fashion-mnist")` returns
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from . import photos
from .datasets import FASHION_MNIST, DatasetError, DatasetUnavailableError, batch_slices
from .distributed import Place
from ..errors import CorruptFileError
from ..fileio import sha256_file
from ..paths import cache_dir

DEB = photos.DebPackage(
    "dataset-fashion-mnist", "0.0~git20200523.55506a9-1",
    "pool/main/d/dataset-fashion-mnist/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0", 30900652,
    "MIT (Zalando SE; usr/share/doc/dataset-fashion-mnist/copyright)")
#: Where the installed Debian package puts the files (and where they sit inside the .deb).
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: IDX element types by their code (the third byte of the magic number); multi-byte types are big-endian.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format; gzipped when the name ends in .gz) as an array of its shape and type."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError) as err:
        raise CorruptFileError(f"{path} is not a readable gzip file ({err})") from err
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES:
        raise CorruptFileError(f"{path} is not an IDX file (magic bytes {data[:4].hex() or 'missing'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{path}: the IDX header promises {ndim} dimensions but the file ends first")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise CorruptFileError(f"{path}: shape {shape} of {dtype} needs {expected} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def available() -> bool:
    """Whether the four files are here without fetching anything (cache or installed package)."""
    return all(_local(name) is not None for name in FILES)


def _local(name: str) -> Path | None:
    for folder in (cache_dir(FASHION_MNIST), SYSTEM_DIR):
        if (folder / name).is_file() and sha256_file(folder / name) == FILES[name]:
            return folder / name
    return None


def fashion_file(name: str, **fetch_options) -> Path:
    """The pinned IDX file `name` (a key of `FILES`), verified: from the cache, the installed package, or
    the .deb (fetched on first use; its four files go to the cache and the .deb is deleted)."""
    if name not in FILES:
        raise DatasetError(f"no Fashion-MNIST file {name!r}; the files are {', '.join(FILES)}")
    found = _local(name)
    if found is not None:
        return found
    try:
        deb_file = photos.deb_path(DEB, **fetch_options)
    except photos.PhotosUnavailableError as err:
        raise DatasetUnavailableError(
            f"Fashion-MNIST is not here: not in {cache_dir(FASHION_MNIST)} nor in {SYSTEM_DIR}, and its Debian "
            f"package could not be fetched.\nTo fix, on a Debian or Ubuntu machine: `apt-get download {DEB.name}` "
            f"then `dpkg -x {DEB.filename} DIR` and copy DIR{SYSTEM_DIR}/*.gz to {cache_dir(FASHION_MNIST)} "
            f"(or `apt-get install {DEB.name}`).\n{err}") from err
    members = read_deb_files(deb_file)
    for other, payload in members.items():
        photos.write_bytes(cache_dir(FASHION_MNIST) / other, payload)
    deb_file.unlink(missing_ok=True)
    return cache_dir(FASHION_MNIST) / name


def read_deb_files(deb_file: Path) -> dict[str, bytes]:
    """The four IDX files inside the .deb, each checked against its pin."""
    inside = {f"{str(SYSTEM_DIR).lstrip('/')}/{name}": name for name in FILES}
    out = {}
    for member, payload in photos.read_deb_members(deb_file, inside).items():
        name = inside[member]
        digest = hashlib.sha256(payload).hexdigest()
        if digest != FILES[name]:
            raise CorruptFileError(f"{name} in {deb_file} has sha256 {digest}, expected {FILES[name]}")
        out[name] = payload
    return out


class GreyImages:
    """Labelled grey images as a run's data (the batch interface of `datasets.PhotoCrops`).

    Each image is centred on a black `crop_size` square; training images are shifted by up to `shift` px
    each way (and mirrored left-right with probability ½) when `augment`; `crops_per_epoch` of them are
    drawn per epoch (without replacement while the set is large enough). `val_size`: a seeded subset of
    the validation images (None: all of them). Grey values repeat in three channels, normalised by the
    training pixels' mean and standard deviation.
    """

    def __init__(self, train_images, train_labels, val_images, val_labels, classes, crop_size: int = 32,
                 crops_per_epoch: int = 6400, augment: bool = True, shift: int = 2, val_size: int | None = None,
                 split_seed: int = 0, name: str = FASHION_MNIST, provenance: dict | None = None):
        self.train_images, self.val_images = np.asarray(train_images, np.uint8), np.asarray(val_images, np.uint8)
        self.train_labels, self.val_labels = np.asarray(train_labels, np.int64), np.asarray(val_labels, np.int64)
        self.classes = list(classes)
        if self.train_images.ndim != 3 or len(self.train_images) != len(self.train_labels) \
                or len(self.val_images) != len(self.val_labels) or self.val_images.shape[1:] != self.train_images.shape[1:]:
            raise DatasetError(f"need [N, H, W] images with one label each, got {self.train_images.shape} / "
                               f"{self.train_labels.shape} and {self.val_images.shape} / {self.val_labels.shape}")
        height, width = self.train_images.shape[1:]
        self.crop_size, self.shift, self.augment = int(crop_size), int(shift) if augment else 0, bool(augment)
        if self.crop_size < max(height, width):
            raise DatasetError(f"crop_size {self.crop_size} is smaller than the {height}×{width} images; use at "
                               f"least {max(height, width)}")
        if val_size is not None:
            keep = np.sort(np.random.default_rng([split_seed, 3]).permutation(len(self.val_labels))[:int(val_size)])
            self.val_images, self.val_labels = self.val_images[keep], self.val_labels[keep]
        self.crops_per_epoch = int(crops_per_epoch)
        self.name = name
        pixels = self.train_images.astype(np.float64) / 255.0
        self.mean, self.std = float(pixels.mean()), float(pixels.std())
        self.settings = {"crop_size": self.crop_size, "shift": self.shift, "augment": self.augment,
                         "val_size": val_size, "split_seed": split_seed, "crops_per_epoch": self.crops_per_epoch}
        self._provenance = dict(provenance or {})

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_validation(self) -> int:
        return len(self.val_labels)

    def _canvas(self, images: np.ndarray, dy: np.ndarray, dx: np.ndarray, flips=None):
        """Images placed on black `crop_size` squares, offset by (dy, dx) from the centre, as a normalised
        [N, 3, crop, crop] tensor."""
        n, height, width = images.shape
        c = self.crop_size
        out = np.zeros((n, c, c), np.float32)
        tops, lefts = (c - height) // 2 + dy, (c - width) // 2 + dx
        for i in range(n):
            image = images[i, :, ::-1] if flips is not None and flips[i] else images[i]
            top, left = int(tops[i]), int(lefts[i])
            rows = slice(max(0, top), min(c, top + height))
            cols = slice(max(0, left), min(c, left + width))
            out[i, rows, cols] = image[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
        out = (out / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.repeat(out[:, None], 3, axis=1))

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, place: Place | None = None):
        """The training batches of one epoch; the same (seed, epoch) gives the same batches."""
        rng = np.random.default_rng([seed, epoch, 2])
        n, total = self.crops_per_epoch, len(self.train_labels)
        index = rng.permutation(total)[:n] if n <= total else rng.integers(0, total, n)
        dy, dx = rng.integers(-self.shift, self.shift + 1, (2, n))
        flips = rng.random(n) < 0.5 if self.augment else None
        for part in batch_slices(n, batch_size, place):
            chosen = index[part]
            x = self._canvas(self.train_images[chosen], dy[part], dx[part], None if flips is None else flips[part])
            yield x, torch.from_numpy(self.train_labels[chosen])

    def validation_batches(self, batch_size: int):
        """The validation images, centred, in order."""
        for start in range(0, self.n_validation, batch_size):
            images = self.val_images[start:start + batch_size]
            zero = np.zeros(len(images), np.int64)
            yield self._canvas(images, zero, zero), torch.from_numpy(self.val_labels[start:start + batch_size])

    def provenance(self) -> dict:
        return {"data": self.name, **self._provenance, **self.settings, "n_classes": self.n_classes,
                "classes": self.classes, "n_train": len(self.train_labels), "n_validation": self.n_validation,
                "mean": round(self.mean, 6), "std": round(self.std, 6)}


def fashion_mnist(crop_size: int = 32, crops_per_epoch: int = 6400, augment: bool = True, shift: int = 2,
                  val_size: int | None = None, split_seed: int = 0, **fetch_options) -> GreyImages:
    """Fashion-MNIST as a run's data: the 60,000 training images, validated on the 10,000 test images (or a
    seeded `val_size` of them). Options as `GreyImages`; fetch_options go to `photos.deb_path`."""
    paths = {name: fashion_file(name, **fetch_options) for name in FILES}
    arrays = {name: read_idx(path) for name, path in paths.items()}
    record = {"files": {name: FILES[name] for name in FILES}, "package": f"{DEB.name} {DEB.version}",
              "licence": DEB.licence}
    return GreyImages(arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"],
                      arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"], CLASSES,
                      crop_size=crop_size, crops_per_epoch=crops_per_epoch, augment=augment, shift=shift,
                      val_size=val_size, split_seed=split_seed, provenance=record)
