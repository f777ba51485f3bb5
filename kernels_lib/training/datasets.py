"""Training data for the appendix experiments: photograph crops, their controls, and outside data sets.

`PhotoCrops` turns a handful of photographs into a classification task — "which photograph is
this crop from" — with millions of distinct crops. Validation is split off by region: one
horizontal band of every photograph (at a seeded position) is validation, and no training crop
ever touches it or a guard `gap` around it, so validation measures generalisation to unseen
parts of the same photographs rather than recall of seen pixels.

`training_data(name)` resolves the data a run names: "photos" (the pinned corpus of
`kernels_lib.training.photos`), "photos-phase" and "photos-iid" (the same photographs phase-scrambled or
replaced by i.i.d. noise of the same mean and variance: the controls), "fashion-mnist" (`fashion`), a
folder in `ImageFolder` layout, or a torchvision data set by name (CIFAR-10/100, STL-10, Imagenette, ImageNet), which
needs internet once or a local copy.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from . import photos
from .distributed import Place, shard
from ..paths import cache_dir
from ..errors import KernelsLibError, did_you_mean

#: Channel statistics of ImageNet, the usual normalisation of the torchvision data sets.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Photograph corpora by name: the photographs themselves, or a control made from each of them.
PHOTO_CORPORA = {"photos": None, "photos-phase": photos.phase_scrambled, "photos-iid": photos.iid_noise}
#: Fashion-MNIST (kernels_lib.training.fashion): a real labelled set of grey clothing photographs, not natural scenes.
FASHION_MNIST = "fashion-mnist"
#: torchvision data sets by name: (class name, what a missing copy needs).
TORCHVISION = {
    "cifar10": ("CIFAR10", "internet once (download=True) or the extracted cifar-10-batches-py folder"),
    "cifar100": ("CIFAR100", "internet once (download=True) or the extracted cifar-100-python folder"),
    "stl10": ("STL10", "internet once (download=True) or the extracted stl10_binary folder"),
    "imagenette": ("Imagenette", "internet once (download=True) or the extracted imagenette2 folder"),
    "imagenet": ("ImageNet", "a local copy: ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
                             "ILSVRC2012_devkit_t12.tar.gz in the folder (it cannot be downloaded automatically)"),
}


class DatasetUnavailableError(KernelsLibError, FileNotFoundError):
    """Data a run names that is not here; the message says where it looked and what it needs."""


class DatasetError(KernelsLibError, ValueError):
    """Data that cannot serve as asked (e.g. photographs too small for the crop); the message says what to change."""


def batch_slices(n: int, batch_size: int, place: Place | None = None) -> Iterator[slice]:
    """The batches of an epoch of `n` items as slices; with `place` (a process of a distributed run), this
    process's contiguous share of each batch (`distributed.shard`)."""
    for start in range(0, n, batch_size):
        if place is None:
            yield slice(start, start + batch_size)
        else:
            own = shard(min(batch_size, n - start), place)
            yield slice(start + own.start, start + own.stop)


@dataclass(frozen=True)
class Band:
    """The validation rows [start, stop) of one photograph; training crops keep `gap` rows away from it."""

    start: int
    stop: int
    gap: int

    def allows(self, top: int, crop: int) -> bool:
        """Whether a training crop of rows [top, top + crop) stays clear of the band and its gap."""
        return top + crop <= self.start - self.gap or top >= self.stop + self.gap


class PhotoCrops:
    """Square crops of photographs, labelled by the photograph they come from; split by region.

    images: [H, W, 3] float arrays; classes: their names. Each photograph's validation band is
    `val_fraction` of its height (at least one crop) at a position drawn with `split_seed`;
    validation crops tile the band's middle rows without overlap, the same every time.
    Training crops are drawn anywhere else (uniformly over the allowed positions, photographs
    equally often), `crops_per_epoch` per epoch, mirrored left-right with probability ½ when
    `flip`. With `fixed_crops` (the overfitting mode) each photograph instead contributes that
    many crops drawn once with `split_seed`, and an epoch is one shuffled pass over them.
    Pixels are normalised by the channel mean and std of the training regions.
    """

    def __init__(self, images, classes, crop_size: int = 32, val_fraction: float = 0.2, gap: int | None = None,
                 split_seed: int = 0, crops_per_epoch: int = 6400, fixed_crops: int | None = None,
                 flip: bool = True, name: str = "photos", provenance: dict | None = None):
        self.images = [np.ascontiguousarray(im, dtype=np.float32) for im in images]
        self.classes = list(classes)
        if len(self.images) != len(self.classes) or len(self.images) < 2:
            raise DatasetError(f"need at least two photographs and one name each, got {len(self.images)} "
                               f"images and {len(self.classes)} names")
        if not 0 < val_fraction < 1:
            raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.crop_size = int(crop_size)
        self.gap = self.crop_size // 4 if gap is None else int(gap)
        self.flip = bool(flip)
        self.crops_per_epoch = int(crops_per_epoch)
        self.name = name
        self._provenance = dict(provenance or {})
        rng = np.random.default_rng([split_seed, 0])
        self.bands = [self._band(im.shape[0], val_fraction, rng, cls) for im, cls in zip(self.images, self.classes)]
        self.val_positions = [self._val_positions(im, band) for im, band in zip(self.images, self.bands)]
        self.settings = {"crop_size": self.crop_size, "val_fraction": val_fraction, "gap": self.gap,
                         "split_seed": split_seed, "crops_per_epoch": self.crops_per_epoch,
                         "fixed_crops": fixed_crops, "flip": self.flip}
        self.mean, self.std = self._train_statistics()
        self.fixed = None
        if fixed_crops is not None:
            fixed_rng = np.random.default_rng([split_seed, 1])
            labels = np.repeat(np.arange(len(self.images)), int(fixed_crops))
            self.fixed = (labels, *self.sample_positions(labels, fixed_rng))
            self.crops_per_epoch = len(labels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _band(self, height: int, fraction: float, rng, cls) -> Band:
        size = max(self.crop_size, round(fraction * height))
        fits = [s for s in range(height - size + 1)
                if s - self.gap >= self.crop_size or height - (s + size + self.gap) >= self.crop_size]
        if not fits:
            raise DatasetError(
                f"photograph {cls!r} is {height} px high: too small for a {size}-px validation band, a {self.gap}-px gap "
                f"and a {self.crop_size}-px training crop; use a larger short_side or a smaller crop_size")
        start = int(fits[rng.integers(len(fits))])
        return Band(start, start + size, self.gap)

    def _val_positions(self, image, band: Band) -> list[tuple[int, int]]:
        top = band.start + (band.stop - band.start - self.crop_size) // 2
        width = image.shape[1]
        if width < self.crop_size:
            raise DatasetError(f"a photograph {width} px wide cannot hold a {self.crop_size}-px crop")
        return [(top, left) for left in range(0, width - self.crop_size + 1, self.crop_size)]

    def _allowed_tops(self, index: int) -> tuple[int, int, int]:
        """Counts of allowed crop tops above the band, below it, and the first row below it."""
        height, band = self.images[index].shape[0], self.bands[index]
        above = max(0, band.start - band.gap - self.crop_size + 1)
        first_below = band.stop + band.gap
        below = max(0, height - self.crop_size - first_below + 1)
        return above, below, first_below

    def sample_positions(self, labels: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """(top, left) of training crops from the photographs `labels`, uniform over allowed positions."""
        tops = np.empty(len(labels), np.int64)
        lefts = np.empty(len(labels), np.int64)
        u, v = rng.random(len(labels)), rng.random(len(labels))
        for i, label in enumerate(labels):
            above, below, first_below = self._allowed_tops(label)
            pick = int(u[i] * (above + below))
            tops[i] = pick if pick < above else first_below + (pick - above)
            lefts[i] = int(v[i] * (self.images[label].shape[1] - self.crop_size + 1))
        return tops, lefts

    def _train_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        total, square, count = np.zeros(3), np.zeros(3), 0
        for image, band in zip(self.images, self.bands):
            rows = np.r_[0:max(0, band.start - band.gap), min(image.shape[0], band.stop + band.gap):image.shape[0]]
            part = image[rows].astype(np.float64)
            total += part.sum(axis=(0, 1))
            square += (part ** 2).sum(axis=(0, 1))
            count += part.shape[0] * part.shape[1]
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean ** 2, 1e-12))
        return mean.astype(np.float32), std.astype(np.float32)

    def _crops(self, labels, tops, lefts, flips=None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.crop_size
        batch = np.stack([self.images[label][top:top + c, left:left + c]
                          for label, top, left in zip(labels, tops, lefts)])
        if flips is not None and flips.any():
            batch[flips] = batch[flips, :, ::-1]
        batch = (batch - self.mean) / self.std
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def epoch_batches(self, epoch: int, batch_size: int, seed: int,
                      place: Place | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training batches of one epoch; the same (seed, epoch) gives the same batches. With `place` (a
        process of a distributed run), this process's contiguous share of each (`distributed.shard`)."""
        rng = np.random.default_rng([seed, epoch, 2])
        n = self.crops_per_epoch
        if self.fixed is not None:
            order = rng.permutation(n)
            labels, tops, lefts = (a[order] for a in self.fixed)
        else:
            labels = rng.integers(0, self.n_classes, n)
            tops, lefts = self.sample_positions(labels, rng)
        flips = rng.random(n) < 0.5 if self.flip else None
        for part in batch_slices(n, batch_size, place):
            yield self._crops(labels[part], tops[part], lefts[part], None if flips is None else flips[part])

    def validation_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation crops (tiles of each band), in photograph order."""
        items = [(label, top, left) for label, positions in enumerate(self.val_positions) for top, left in positions]
        for start in range(0, len(items), batch_size):
            labels, tops, lefts = zip(*items[start:start + batch_size])
            yield self._crops(np.array(labels), np.array(tops), np.array(lefts))

    @property
    def n_validation(self) -> int:
        return sum(len(p) for p in self.val_positions)

    def provenance(self) -> dict:
        """What a run needs to record to be repeated: the data, the split and the normalisation."""
        return {"data": self.name, **self._provenance, **self.settings, "n_classes": self.n_classes,
                "classes": self.classes, "n_validation": self.n_validation,
                "bands": [[b.start, b.stop] for b in self.bands],
                "mean": [round(float(v), 6) for v in self.mean], "std": [round(float(v), 6) for v in self.std]}


def photo_crops(corpus: str = "photos", keys=None, n_photos: int | None = None,
                short_side: int | None = photos.DEFAULT_SHORT_SIDE, control_seed: int = 0, **options) -> PhotoCrops:
    """`PhotoCrops` of the pinned photographs (all, those in `keys`, or the first `n_photos`).

    corpus: "photos", or a control — "photos-phase" (each photograph phase-scrambled) or
    "photos-iid" (i.i.d. noise with each photograph's mean and std), drawn with `control_seed`.
    options: those of `PhotoCrops` (crop_size, val_fraction, gap, split_seed, crops_per_epoch, fixed_crops, flip).
    """
    if corpus not in PHOTO_CORPORA:
        raise DatasetError(f"unknown photograph corpus {corpus!r}; choose from {', '.join(PHOTO_CORPORA)}")
    pins = photos.select(keys)
    if n_photos is not None:
        if not 2 <= n_photos <= len(pins):
            raise DatasetError(f"n_photos must be between 2 and {len(pins)}, got {n_photos}")
        pins = pins[:n_photos]
    images = photos.load_photos([p.key for p in pins], short_side)
    control = PHOTO_CORPORA[corpus]
    pixels = [im.pixels if control is None else control(im.pixels, seed=[control_seed, i])
              for i, im in enumerate(images)]
    record = {"short_side": short_side, "control_seed": control_seed if control else None,
              "photos": [{"key": im.key, "sha256": im.sha256, "decoded_sha256": im.array_sha256} for im in images],
              "corpus_sha256": hashlib.sha256("".join(im.array_sha256 for im in images).encode()).hexdigest()}
    return PhotoCrops(pixels, [im.key for im in images], name=corpus, provenance=record, **options)


# ---------------------------------------------------------------------------------------------
# Outside data: an ImageFolder path or a torchvision data set by name
# ---------------------------------------------------------------------------------------------

class TorchImageData:
    """A torch image data set pair (train, validation) with the batch interface `PhotoCrops` has."""

    def __init__(self, train, validation, classes, name: str, provenance: dict, crops_per_epoch: int | None = None):
        self.train, self.validation = train, validation
        self.classes = list(classes)
        self.name = name
        self._provenance = provenance
        self.crops_per_epoch = int(crops_per_epoch or len(train))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_validation(self) -> int:
        return len(self.validation)

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, place: Place | None = None):
        """As `PhotoCrops.epoch_batches`: the same (seed, epoch) gives the same batches, `place` a share of each."""
        generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        sampler = torch.utils.data.RandomSampler(self.train, num_samples=self.crops_per_epoch, generator=generator)
        if place is None:
            yield from torch.utils.data.DataLoader(self.train, batch_size=batch_size, sampler=sampler)
            return
        order = list(sampler)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        yield from torch.utils.data.DataLoader(self.train, batch_sampler=[b[shard(len(b), place)] for b in batches])

    def validation_batches(self, batch_size: int):
        yield from torch.utils.data.DataLoader(self.validation, batch_size=batch_size, shuffle=False)

    def provenance(self) -> dict:
        return {"data": self.name, **self._provenance, "n_classes": self.n_classes,
                "n_train": len(self.train), "n_validation": self.n_validation,
                "crops_per_epoch": self.crops_per_epoch}


def _transforms(crop_size: int, augment: bool):
    from torchvision import transforms as T

    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if augment:
        train = T.Compose([T.RandomResizedCrop(crop_size, scale=(0.35, 1.0)), T.RandomHorizontalFlip(), *normalise])
    else:
        train = T.Compose([T.Resize(crop_size), T.CenterCrop(crop_size), *normalise])
    val = T.Compose([T.Resize(math.ceil(crop_size / 0.875)), T.CenterCrop(crop_size), *normalise])
    return train, val


def image_folder(path, crop_size: int = 32, augment: bool = True, val_every: int = 5, split_seed: int = 0,
                 crops_per_epoch: int | None = None) -> TorchImageData:
    """Images in `ImageFolder` layout (one sub-folder per class). With `train/` and `val/` sub-folders
    those are the split; otherwise every `val_every`-th image of each class (after a seeded shuffle)
    is validation, whole images apart."""
    from torchvision.datasets import ImageFolder

    root = Path(path)
    train_tf, val_tf = _transforms(crop_size, augment)
    try:
        if (root / "train").is_dir() and (root / "val").is_dir():
            train, val = ImageFolder(root / "train", train_tf), ImageFolder(root / "val", val_tf)
            classes, split = train.classes, "train/ and val/ folders"
        else:
            full_train, full_val = ImageFolder(root, train_tf), ImageFolder(root, val_tf)
            rng = np.random.default_rng(split_seed)
            targets = np.array(full_train.targets)
            val_index = [int(i) for c in range(len(full_train.classes))
                         for i in rng.permutation(np.flatnonzero(targets == c))[::val_every]]
            train_index = sorted(set(range(len(targets))) - set(val_index))
            train = torch.utils.data.Subset(full_train, train_index)
            val = torch.utils.data.Subset(full_val, sorted(val_index))
            classes, split = full_train.classes, f"every {val_every}th image per class (seed {split_seed})"
    except (FileNotFoundError, RuntimeError) as err:
        raise DatasetUnavailableError(f"{root} is not a readable ImageFolder (one sub-folder of images per class): "
                                      f"{err}") from err
    return TorchImageData(train, val, classes, f"imagefolder:{root}",
                          {"path": str(root.resolve()), "split": split, "crop_size": crop_size, "augment": augment},
                          crops_per_epoch)


def torchvision_data(name: str, root=None, download: bool = False, crop_size: int = 32, augment: bool = True,
                     crops_per_epoch: int | None = None) -> TorchImageData:
    """A torchvision data set by name (see `TORCHVISION`), from `root` (default the cache's datasets/NAME).

    They need internet once (download=True) or a local copy; without either the error says so
    and names the folder it looked in.
    """
    import torchvision.datasets as tvd

    key = name.lower().replace("-", "")
    if key not in TORCHVISION:
        raise DatasetError(f"unknown torchvision data set {name!r}; known: {', '.join(TORCHVISION)}")
    class_name, needs = TORCHVISION[key]
    root = Path(root) if root is not None else cache_dir("datasets", key)
    cls = getattr(tvd, class_name)
    train_tf, val_tf = _transforms(crop_size, augment)
    splits = {"CIFAR10": ({"train": True}, {"train": False}), "CIFAR100": ({"train": True}, {"train": False}),
              "STL10": ({"split": "train"}, {"split": "test"}), "Imagenette": ({"split": "train"}, {"split": "val"}),
              "ImageNet": ({"split": "train"}, {"split": "val"})}[class_name]
    extra = {} if class_name == "ImageNet" else {"download": download}
    try:
        train = cls(str(root), transform=train_tf, **splits[0], **extra)
        val = cls(str(root), transform=val_tf, **splits[1], **extra)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise DatasetUnavailableError(
            f"{class_name} is not in {root} (torchvision said: {err}). It needs {needs}. "
            f"Pass root= to use a copy elsewhere.") from err
    classes = getattr(train, "classes", None) or [str(i) for i in range(int(max(train.targets)) + 1)]
    return TorchImageData(train, val, classes, key, {"root": str(root), "torchvision_class": class_name,
                                                      "crop_size": crop_size, "augment": augment}, crops_per_epoch)


def training_data(name: str, **options):
    """The data a run names: a photograph corpus, Fashion-MNIST, an ImageFolder path or a torchvision data set.

    options go to `photo_crops`, `fashion.fashion_mnist`, `image_folder` or `torchvision_data`.
    """
    if name in PHOTO_CORPORA:
        return photo_crops(name, **options)
    if name == FASHION_MNIST:
        from .fashion import fashion_mnist     # imports this module: loaded on demand

        return fashion_mnist(**options)
    if name.lower().replace("-", "") in TORCHVISION:
        return torchvision_data(name, **options)
    path = Path(name).expanduser()
    if path.is_dir():
        return image_folder(path, **options)
    raise DatasetUnavailableError(
        f"no data {name!r}: not a photograph corpus ({', '.join(PHOTO_CORPORA)}), not {FASHION_MNIST!r}, not a "
        f"torchvision data set ({', '.join(TORCHVISION)}) and not a folder (looked for {path.resolve()}); "
        f"{did_you_mean(name, [*PHOTO_CORPORA, FASHION_MNIST, *TORCHVISION])}".rstrip("; "))
