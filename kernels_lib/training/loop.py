"""Train depthwise CNNs and record their kernels as they learn: the paper's appendix experiments.

`train(config)` trains the built-in `nets.DepthwiseNet` or a timm model on the data a
`TrainConfig` names (`datasets.training_data`), seeded, on CUDA when present and on the CPU
otherwise (the default runs pin the CPU), with a tqdm bar showing loss and accuracy. At each epoch of
`snapshot_epochs` it writes a `KernelSnapshot`: every depthwise kernel as one Parquet file of
the kernel database (`records.kernel_table` + `store.write_kernels`), model ``<run>@epoch<N>``,
source "training", the run's provenance in the file's metadata, so every notebook that reads a
kernel database can analyse a training run. It also classifies each snapshot with the paper's
reference autoencoders (7×7 at 0.3, 5×5 at 0.2) and records % clustered and class shares.

A run folder (default data/training/<run>) holds `checkpoint.pt` (written atomically at each
snapshot, at the end and at least once a minute; `resume=True` continues from it with the same
result as an uninterrupted run),
`provenance.json` (config, data hashes, library versions, command, timings, history) and
`kernels/` (the snapshots). On the CPU the same config and thread count give the same bytes. Under
`torchrun` a run is shared by N processes (see `distributed`) and reaches the same weights to float rounding.

Weights tags: a snapshot at epoch 0 is untrained, so its tag starts with "random-init" (the
twin prefix every consumer treats as the untrained control), e.g. "random-init-dog-seed0";
later snapshots are "<init>-seed<N>", e.g. "kaiming-seed0".
"""
from __future__ import annotations

import dataclasses
import importlib.metadata as md
import io
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from . import distributed, nets
from .datasets import training_data
from ..errors import KernelsLibError
from ..fileio import write_json
from .photos import write_bytes
from ..paths import TRAINING_DIR
from ..records import kernel_table
from ..sources.module import conv_layers
from ..database.store import kernel_file_name, read_kernels, read_provenance, write_kernels
from .labels import clustering_summary

#: Where run folders go by default (the committed default runs live here).
RUNS_DIR = TRAINING_DIR
SOURCE = "training"
CHECKPOINT = "checkpoint.pt"
PROVENANCE = "provenance.json"
#: A checkpoint is written at every snapshot, at the last epoch, and otherwise at most this often.
CHECKPOINT_SECONDS = 60.0
INITS = ("kaiming", "dog")
#: Built-in network defaults (the colleague's trial: 48 channels, 4 blocks, 7×7, 2×2 patches).
BUILT_IN_DEFAULTS = {"kernel_size": 7, "width": 48, "depth": 4, "patch_size": 2}


class TrainingError(KernelsLibError, ValueError):
    """A run that cannot go ahead as configured; the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result (the device and thread count decide its float rounding).

    Built-in network: kernel_size, width, depth, patch_size (None: `BUILT_IN_DEFAULTS`), other
    `nets.DepthwiseNet` options (padding_mode) in `model_options`; a timm model takes `model_options` only. Photograph data: crop_size, n_photos (the first n of the
    corpus), fixed_crops (the overfitting mode: this many crops per photograph, drawn once),
    augment (left-right flips), crops_per_epoch; other data options go in `data_options`.
    Snapshots are written at epoch 0 and `epochs` and at every epoch in `snapshot_epochs`.
    The optimiser defaults (AdamW, lr 1e-2, weight decay 0.05, batch 64, 25 epochs of 6,400 crops) are
    the CPU-scale settings of the default runs; see `DEFAULT_RUNS` for why this weight decay.
    """

    run: str
    data: str = "photos"
    model: str = nets.BUILT_IN
    kernel_size: int | None = None
    width: int | None = None
    depth: int | None = None
    patch_size: int | None = None
    model_options: dict = field(default_factory=dict)
    init: str = "kaiming"
    dog_mix: dict | None = None
    crop_size: int = 32
    n_photos: int | None = None
    fixed_crops: int | None = None
    augment: bool = True
    crops_per_epoch: int = 6400
    data_options: dict = field(default_factory=dict)
    epochs: int = 25
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    seed: int = 0
    snapshot_epochs: tuple[int, ...] = ()
    device: str = "auto"
    num_threads: int | None = 1

    def __post_init__(self):
        # Plain JSON values throughout, so a config read back from a checkpoint equals the one written.
        for name in ("model_options", "data_options", "dog_mix"):
            object.__setattr__(self, name, json.loads(json.dumps(getattr(self, name))))
        object.__setattr__(self, "snapshot_epochs", tuple(int(e) for e in self.snapshot_epochs))
        if not self.run or "/" in self.run or "@" in self.run:
            raise TrainingError(f"run name must be non-empty without '/' or '@', got {self.run!r}")
        if self.init not in INITS:
            raise TrainingError(f"init must be one of {INITS}, got {self.init!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        bad = [e for e in self.snapshot_epochs if not 0 <= e <= self.epochs]
        if bad:
            raise TrainingError(f"snapshot epochs {bad} lie outside 0..{self.epochs}")
        given = {k: getattr(self, k) for k in BUILT_IN_DEFAULTS if getattr(self, k) is not None}
        if self.model != nets.BUILT_IN and given:
            raise TrainingError(f"{sorted(given)} apply to the built-in network only; pass timm options in "
                                f"model_options for {self.model!r}")

    @property
    def snapshots(self) -> tuple[int, ...]:
        return tuple(sorted({0, self.epochs, *self.snapshot_epochs}))

    def network_options(self) -> dict:
        if self.model == nets.BUILT_IN:
            explicit = {k: getattr(self, k) if getattr(self, k) is not None else v for k, v in BUILT_IN_DEFAULTS.items()}
            return {**explicit, **self.model_options}
        return dict(self.model_options)

    def data_arguments(self) -> dict:
        options = {"crop_size": self.crop_size, "crops_per_epoch": self.crops_per_epoch, **self.data_options}
        if self.data.startswith("photos"):
            options.update(n_photos=self.n_photos, fixed_crops=self.fixed_crops, flip=self.augment)
        elif self.n_photos is not None or self.fixed_crops is not None:
            raise TrainingError("n_photos and fixed_crops apply to the photograph corpora only")
        else:
            options["augment"] = self.augment
        return options

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, record: dict) -> "TrainConfig":
        return cls(**record)

    def tag(self, epoch: int) -> str:
        """Weights tag of the snapshot at `epoch` (epoch 0 is untrained: the random-init prefix)."""
        return f"random-init-{self.init}-seed{self.seed}" if epoch == 0 else f"{self.init}-seed{self.seed}"


def overfitting(config: TrainConfig, n_photos: int = 4, fixed_crops: int = 64, epochs: int | None = None) -> TrainConfig:
    """Appendix H's mode: few classes (photographs), a fixed small training set, no augmentation, no
    weight decay, many epochs."""
    return dataclasses.replace(config, n_photos=n_photos, fixed_crops=fixed_crops, augment=False, weight_decay=0.0,
                               epochs=epochs or config.epochs)


@dataclass(frozen=True)
class KernelSnapshot:
    """The depthwise kernels of a run at one epoch, as written to the kernel database."""

    run: str
    epoch: int
    step: int
    model: str              # "<run>@epoch<N>"
    weights_tag: str
    path: Path
    n_kernels: int
    clustering: dict        # % clustered and class shares per kernel size (see `clustering_summary`)


@dataclass
class TrainResult:
    config: TrainConfig
    model: nn.Module
    run_dir: Path
    snapshots: list[KernelSnapshot]
    history: list[dict]
    provenance: dict



# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def library_versions() -> dict:
    names = ["torch", "torchvision", "timm", "numpy", "pillow", "scikit-image", "pandas", "pyarrow"]
    versions = {"python": platform.python_version(), "kernels_lib": __version__}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} asked for, but torch sees no CUDA device; use device='cpu' or 'auto'")
    return torch.device(name)


def build_model(config: TrainConfig, n_classes: int) -> nn.Module:
    """The run's network with its initial weights (seeded: the same config gives the same weights)."""
    torch.manual_seed(config.seed)
    model = nets.create_model(config.model, n_classes, **config.network_options())
    if not nets.depthwise_convs(model):
        raise TrainingError(f"{config.model!r} has no depthwise convolution: nothing to study")
    if config.init == "dog":
        nets.dog_initialise(model, seed=config.seed, mix=config.dog_mix)
    return model


def _schedule(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = max(1, min(round(config.warmup_epochs * steps_per_epoch), total // 10 or 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def integrated_weight_decay(config: TrainConfig, steps_per_epoch: int) -> float:
    """Σ lr·wd over the run's steps: AdamW shrinks every weight by about exp(−Σ lr·wd) in all."""
    factor = _schedule(config, steps_per_epoch)
    return config.lr * config.weight_decay * sum(factor(step) for step in range(config.epochs * steps_per_epoch))


@torch.no_grad()
def evaluate(model: nn.Module, data, device, batch_size: int = 256, memory_format=torch.contiguous_format,
             place: distributed.Place | None = None) -> dict:
    """Loss and accuracy on the data's validation set (None for an empty one). With `place` (a process of a
    distributed run) each process takes every N-th batch and the sums are shared."""
    model.eval()
    loss = correct = count = 0.0
    batches = data.validation_batches(batch_size)
    if place is not None:
        batches = itertools.islice(batches, place.rank, None, place.world_size)
    for x, y in batches:
        x, y = x.to(device, memory_format=memory_format), y.to(device)
        logits = model(x)
        loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        count += len(y)
    model.train()
    loss, correct, count = distributed.all_sum([loss, correct, count], place or distributed.Place())
    if not count:
        return {"val_loss": None, "val_accuracy": None}
    return {"val_loss": round(loss / count, 5), "val_accuracy": round(correct / count, 5)}


def _snapshot(model, config: TrainConfig, epoch: int, step: int, kernel_db: Path, metadata: dict,
              place: distributed.Place) -> KernelSnapshot:
    """Rank 0 writes and labels the snapshot; every process gets its record."""
    snapshot = None
    if place.main:
        name = f"{config.run}@epoch{epoch}"
        tag = config.tag(epoch)
        table = kernel_table(conv_layers(model), name, tag, SOURCE)
        summary = clustering_summary(table)
        path = write_kernels(table, kernel_db / kernel_file_name(name, tag),
                             {**metadata, "model": name, "weights_tag": tag, "source": SOURCE, "epoch": epoch,
                              "step": step, "clustering": summary})
        snapshot = KernelSnapshot(config.run, epoch, step, name, tag, path, len(table), summary)
    return distributed.from_main(snapshot, place)


def training_step(model: nn.Module, optimiser, x: torch.Tensor, y: torch.Tensor,
                  loss_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (cross-entropy); returns the detached loss and the logits. loss_scale: in a
    distributed run, the summed loss is multiplied by it (`distributed.loss_scale`) instead of averaged."""
    logits = model(x)
    if loss_scale is None:
        loss = nn.functional.cross_entropy(logits, y)
    else:
        loss = nn.functional.cross_entropy(logits, y, reduction="sum") * loss_scale
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach(), logits.detach()


def _snapshot_record(snapshot: KernelSnapshot, run_dir: Path) -> dict:
    """A snapshot as plain data; its file relative to the run folder when inside it (the folder can move)."""
    path = snapshot.path.resolve()
    inside = path.is_relative_to(run_dir.resolve())
    return {**dataclasses.asdict(snapshot), "path": str(path.relative_to(run_dir.resolve()) if inside else path)}


def _snapshot_from(record: dict, run_dir: Path) -> KernelSnapshot:
    return KernelSnapshot(**{**record, "path": run_dir / record["path"]})


def _save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def _write_provenance(run_dir: Path, provenance: dict) -> None:
    write_json(run_dir / PROVENANCE, provenance, indent=1, sort_keys=True)


def relabel_run(run_dir) -> TrainResult:
    """Label a run's snapshots again with the current reference autoencoders (after they are rebuilt, the
    % clustered recorded while training is stale): the clustering in each snapshot's kernel file, the
    checkpoint and provenance.json are rewritten atomically; weights, kernels and timings are unchanged."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise TrainingError(f"{run_dir} holds no {CHECKPOINT}; train the run first (kernels_lib.training.train)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    clustering = {}
    for record in state["snapshots"]:
        file = run_dir / record["path"]
        table = read_kernels(file)
        metadata = {k: v for k, v in read_provenance(file).iloc[0].to_dict().items() if k not in ("file", "rows")}
        clustering[record["epoch"]] = record["clustering"] = clustering_summary(table)
        write_kernels(table, file, {**metadata, "clustering": record["clustering"]})
    for entry in state["history"]:
        if entry["epoch"] in clustering:
            entry["clustering"] = clustering[entry["epoch"]]
    _save_checkpoint(path, state)
    provenance = json.loads((run_dir / PROVENANCE).read_text())
    provenance["history"] = state["history"]
    _write_provenance(run_dir, provenance)
    return load_run(run_dir)


def train(config: TrainConfig, run_dir=None, kernel_db=None, resume: bool = False, progress: bool = True,
          command: str | None = None, data=None, until_epoch: int | None = None, prepare=None) -> TrainResult:
    """Train one run and write its checkpoint, provenance and kernel snapshots (see the module docstring).

    run_dir: default RUNS_DIR/<run>. kernel_db: where snapshots go (default run_dir/kernels).
    resume: continue from run_dir's checkpoint (its config must equal `config`); otherwise an existing
    checkpoint is an error, so a finished run is never overwritten by accident. data: an already built
    data object (default `datasets.training_data(config.data, ...)`). until_epoch: stop after this epoch
    (the checkpoint is written; `resume=True` goes on), e.g. to split a long run into sittings.
    prepare: called with the freshly built network before training (e.g. to set and freeze its depthwise
    kernels, `frozen`); what it returns is recorded in the provenance as "prepared". The config does not
    know it, so a resumed run must be given the same one.
    """
    run_dir = Path(run_dir) if run_dir is not None else RUNS_DIR / config.run
    kernel_db = Path(kernel_db) if kernel_db is not None else run_dir / "kernels"
    checkpoint_path = run_dir / CHECKPOINT
    state = None
    if checkpoint_path.is_file():
        if not resume:
            raise TrainingError(f"{checkpoint_path} exists: pass resume=True to continue it, or choose another "
                                "run name or folder (delete the folder to start again)")
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state["config"] != config.to_dict():
            raise TrainingError(f"{checkpoint_path} was written by another config; differences: "
                                f"{_differences(state['config'], config.to_dict())}")
    place = distributed.place_from_environment()
    device = distributed.device_for(_device(config.device), place)
    data = data if data is not None else training_data(config.data, **config.data_arguments())
    smallest = min(config.batch_size, data.crops_per_epoch % config.batch_size or config.batch_size)
    if place.world_size > smallest:
        raise TrainingError(f"{place.world_size} processes cannot share batches of {config.batch_size} (the last of an "
                            f"epoch of {data.crops_per_epoch}); use fewer processes or another batch size")
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        with distributed.process_group(place, device):
            return _run(config, run_dir, kernel_db, state, progress, command, data, until_epoch or config.epochs,
                        place, device, prepare)
    finally:
        torch.set_num_threads(previous_threads)


def _differences(old: dict, new: dict) -> dict:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _run(config, run_dir, kernel_db, state, progress, command, data, last_epoch, place, device, prepare) -> TrainResult:
    net = build_model(config, data.n_classes)
    prepared = prepare(net) if prepare is not None else None
    net = net.to(device)
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    if state is not None:
        net.load_state_dict(state["model"])
    model, distribution = distributed.wrap(net, place, device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(data.crops_per_epoch / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(config, steps_per_epoch))
    provenance = {
        "config": config.to_dict(), "data": data.provenance(), "libraries": library_versions(),
        "command": command or shlex.join([sys.executable, *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": str(device),
                    "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "n_parameters": nets.count_parameters(net), "steps_per_epoch": steps_per_epoch,
    }
    if distribution:
        provenance["distributed"] = distribution
    if prepared is not None:
        provenance["prepared"] = prepared
    metadata = {"kernels_lib_version": __version__, "run": config.run, "config": config.to_dict(),
                "data": data.provenance(), "libraries": provenance["libraries"]}
    history, snapshots, start_epoch, elapsed = [], [], 0, 0.0
    if state is not None:
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch, elapsed = state["history"], state["epoch"] + 1, state["elapsed_s"]
        snapshots = [_snapshot_from(record, run_dir) for record in state["snapshots"]]
    elif 0 in config.snapshots:
        snapshots.append(_snapshot(net, config, 0, 0, kernel_db, metadata, place))
        history.append({"epoch": 0, "step": 0, **evaluate(net, data, device, memory_format=memory_format, place=place),
                        "clustering": snapshots[-1].clustering})
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc=config.run,
               unit="step", disable=not progress or not place.main)
    share = {"place": place} if place.distributed else {}
    model.train()
    saved = time.perf_counter()
    for epoch in range(max(1, start_epoch), min(last_epoch, config.epochs) + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        loss_sum = correct = seen = 0.0
        for index, (x, y) in enumerate(data.epoch_batches(epoch, config.batch_size, config.seed, **share)):
            x, y = x.to(device, memory_format=memory_format), y.to(device)
            scale = distributed.loss_scale(min(config.batch_size, data.crops_per_epoch - index * config.batch_size), place)
            loss, logits = training_step(model, optimiser, x, y, scale)
            scheduler.step()
            loss_sum += float(loss) * len(y) if scale is None else float(loss) / scale
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], place)
        record = {"epoch": epoch, "step": epoch * steps_per_epoch, "train_loss": round(loss_sum / seen, 5),
                  "train_accuracy": round(correct / seen, 5), "lr": scheduler.get_last_lr()[0],
                  "train_seconds": round(train_seconds, 3), "train_cpu_seconds": round(train_cpu_seconds, 3),
                  "images_per_second": round(seen / train_seconds, 1), "load_average": round(os.getloadavg()[0], 2),
                  **evaluate(net, data, device, memory_format=memory_format, place=place)}
        if epoch in config.snapshots:
            snapshots.append(_snapshot(net, config, epoch, record["step"], kernel_db, metadata, place))
            record["clustering"] = snapshots[-1].clustering
        elapsed += time.perf_counter() - started
        record["elapsed_s"] = round(elapsed, 3)
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_accuracy']:.3f}",
                        val=f"{record['val_accuracy']:.3f}" if record["val_accuracy"] is not None else "-")
        if place.main and (epoch in config.snapshots or epoch == last_epoch
                           or time.perf_counter() - saved > CHECKPOINT_SECONDS):
            saved = time.perf_counter()
            _save(run_dir, provenance, snapshots, history, elapsed, epoch, {
                "config": config.to_dict(), "epoch": epoch, "n_classes": data.n_classes, "model": net.state_dict(),
                "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "history": history, "elapsed_s": elapsed})
    bar.close()
    distributed.barrier(place)      # the others return once rank 0's files are written
    return TrainResult(config, net, run_dir, snapshots, history, provenance)


def _save(run_dir: Path, provenance: dict, snapshots, history, elapsed: float, epoch: int, state: dict) -> None:
    """The checkpoint (with the snapshots so far) and the provenance, each written atomically."""
    _save_checkpoint(run_dir / CHECKPOINT, {**state, "snapshots": [_snapshot_record(s, run_dir) for s in snapshots]})
    provenance.update(history=history, elapsed_s=round(elapsed, 3), epochs_done=epoch,
                      snapshots=[{k: v for k, v in _snapshot_record(s, run_dir).items() if k != "clustering"}
                                 for s in snapshots])
    _write_provenance(run_dir, provenance)


def load_run(run_dir, device: str = "cpu") -> TrainResult:
    """A finished (or interrupted) run from its folder: config, model at its last epoch, history, snapshots."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise TrainingError(f"{run_dir} holds no {CHECKPOINT}; train the run first (kernels_lib.training.train)")
    state = torch.load(path, map_location=device, weights_only=False)
    config = TrainConfig.from_dict(state["config"])
    provenance = json.loads((run_dir / PROVENANCE).read_text()) if (run_dir / PROVENANCE).is_file() else {}
    model = nets.create_model(config.model, state["n_classes"], **config.network_options())
    model.load_state_dict(state["model"])
    model.eval()
    snapshots = [_snapshot_from(record, run_dir) for record in state["snapshots"]]
    return TrainResult(config, model, run_dir, snapshots, state["history"], provenance)
