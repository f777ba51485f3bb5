"""Issue 18's factorial at GPU scale: data × AdamW weight decay × seed, the same DepthwiseNet and steps in
every cell; per run the kernels' % clustered, class shares, first-derivative share and median template
cosine (`training.clustering_summary`), trained and at initialisation (the random-init twin, the control),
and how much the net uses its depthwise kernels (`training.ablation.depthwise_ablation`: validation accuracy
with them replaced by the identity or reset to their initialisation).

    python benchmarks/gpu_training_study.py                 # one GPU: 3 data × 5 weight decays × 2 seeds
    python benchmarks/gpu_training_study.py --tiny          # CPU, tiny settings, seconds (tests/test_gpu_study.py)
    torchrun --nproc_per_node 4 benchmarks/gpu_training_study.py   # the same runs over 4 GPUs (DDP)

Scale "gpu": 64×64 crops of the pinned photographs, width 128, depth 4, 7×7 depthwise kernels, 2×2 patches,
batch 256, 12,288 crops an epoch, 15 epochs (720 steps, 184,320 crops a run), lr 1e-2 with the loop's
warm-up and cosine; sized for about ten minutes on one GPU for the 30 runs by an estimate (about 20 s a
run, bounded by the CPU cropping), NOT yet measured on a GPU: the JSON records each run's seconds, and
--epochs / --crops-per-epoch shrink it. Each data set is built once and shared by its runs.

Data: "photos", "photos-phase", "photos-iid" (`training.datasets`) and "fashion-mnist" (`training.fashion`);
a data set that cannot be loaded is left out with the reason in the JSON. The device machine has no
internet: carry the caches (data/cache/photos, and data/cache for Fashion-MNIST's files) with the repository.

The JSON (default benchmarks/results/gpu_training_study.json; --tiny: gpu_training_study_tiny.json) is
rewritten atomically after every run, so an interrupted study keeps the runs it finished.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from kernels_lib import training
from kernels_lib.fileio import write_json
from kernels_lib.training import distributed
from kernels_lib.training.ablation import depthwise_ablation
from kernels_lib.training.datasets import DatasetUnavailableError, training_data
from kernels_lib.training.loop import integrated_weight_decay
from kernels_lib.training.photos import SKIMAGE_KEYS

RESULTS = Path(__file__).resolve().parent / "results"
DATA = ("photos", "photos-phase", "photos-iid", "fashion-mnist")
WEIGHT_DECAYS = (0.0, 0.05, 0.2, 0.5, 1.0)
SEEDS = (0, 1)
SCALES = {
    "gpu": {"crop_size": 64, "width": 128, "depth": 4, "kernel_size": 7, "patch_size": 2, "batch_size": 256,
            "crops_per_epoch": 12288, "epochs": 15, "num_threads": None, "device": "auto"},
    "tiny": {"crop_size": 32, "width": 8, "depth": 2, "kernel_size": 7, "patch_size": 2, "batch_size": 32,
             "crops_per_epoch": 64, "epochs": 2, "num_threads": 1, "device": "cpu",
             "data_options": {"keys": list(SKIMAGE_KEYS), "short_side": 96}},
}


def measures(summary: dict, k: int) -> dict:
    """The study's numbers from one snapshot's clustering summary; None where undefined (no reference)."""
    entry = summary[f"{k}x{k}"]
    clustered = entry["clustered"]
    return {"clustered": clustered, "shares": entry["shares"],
            "first_derivative_share": None if clustered is None else entry["shares"].get("1st-derivative", 0.0),
            "template_cosine_median": entry.get("template_cosine_median")}


def load_data(names, scale: dict) -> tuple[dict, dict]:
    """{name: data} for the names that load, {name: why not} for the others."""
    loaded, skipped = {}, {}
    for name in names:
        options = {"crop_size": scale["crop_size"], "crops_per_epoch": scale["crops_per_epoch"],
                   **(scale.get("data_options", {}) if name.startswith("photos") else {})}
        try:
            loaded[name] = training_data(name, **options)
        except DatasetUnavailableError as err:
            skipped[name] = str(err)
    return loaded, skipped


def run_cell(data_name: str, data, weight_decay: float, seed: int, scale: dict, work: Path) -> dict:
    """Train one cell of the factorial and return its row."""
    names = ("crop_size", "width", "depth", "kernel_size", "patch_size", "batch_size", "crops_per_epoch", "epochs",
             "num_threads", "device")
    options = scale.get("data_options", {}) if data_name.startswith("photos") else {}
    config = training.TrainConfig(run=f"{data_name}-wd{weight_decay:g}-seed{seed}", data=data_name,
                                  weight_decay=weight_decay, seed=seed, data_options=options,
                                  **{n: scale[n] for n in names})
    started = time.perf_counter()
    result = training.train(config, run_dir=work / config.run, progress=False, data=data)
    seconds = time.perf_counter() - started
    last = result.history[-1]
    steps_per_epoch = math.ceil(data.crops_per_epoch / config.batch_size)
    k = scale["kernel_size"]
    ablated = depthwise_ablation(result, data, recalibration_batches=20, device=str(next(result.model.parameters()).device))
    return {"data": data_name, "weight_decay": weight_decay, "seed": seed, "lr": config.lr,
            "integrated_weight_decay": round(integrated_weight_decay(config, steps_per_epoch), 4),
            "val_accuracy": last["val_accuracy"], "train_loss": last["train_loss"],
            "trained": measures(result.snapshots[-1].clustering, k),
            "random_init": measures(result.snapshots[0].clustering, k),
            "depthwise_ablation": {key: ablated[key] for key in ("majority_share", "accuracy", "accuracy_recalibrated")},
            "seconds": round(seconds, 2), "training_images_per_second": round(
                config.epochs * data.crops_per_epoch / sum(h.get("train_seconds", 0.0) for h in result.history), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny CPU settings: checks the script, measures nothing")
    parser.add_argument("--data", nargs="+", default=list(DATA))
    parser.add_argument("--weight-decays", nargs="+", type=float, default=list(WEIGHT_DECAYS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--epochs", type=int, help="override the scale's epochs")
    parser.add_argument("--crops-per-epoch", type=int, help="override the scale's crops per epoch")
    parser.add_argument("--out", type=Path, help="the JSON (default under benchmarks/results/)")
    parser.add_argument("--work-dir", type=Path, help="where the run folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    scale_name = "tiny" if args.tiny else "gpu"
    scale = {**SCALES[scale_name], **{k: v for k, v in (("epochs", args.epochs),
                                                         ("crops_per_epoch", args.crops_per_epoch)) if v}}
    out = args.out or RESULTS / f"gpu_training_study{'_tiny' if args.tiny else ''}.json"
    place = distributed.place_from_environment()
    loaded, skipped = load_data(args.data, scale)
    device = "cuda" if scale["device"] == "auto" and torch.cuda.is_available() else scale["device"]
    report = {"scale": scale_name, "settings": scale, "data": list(loaded), "skipped_data": skipped,
              "weight_decays": args.weight_decays, "seeds": args.seeds, "processes": place.world_size,
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": device,
                          "device_name": torch.cuda.get_device_name() if device == "cuda" else None,
                          "load_average_start": os.getloadavg()},
              "runs": [], "complete": False}
    started = time.perf_counter()
    # one process group for all the runs (each `train` would otherwise join and leave one of its own)
    with tempfile.TemporaryDirectory() as scratch, distributed.process_group(
            place, distributed.device_for(torch.device(device), place)):
        work = args.work_dir or Path(scratch)
        for data_name, data in loaded.items():
            for weight_decay in args.weight_decays:
                for seed in args.seeds:
                    row = run_cell(data_name, data, weight_decay, seed, scale, work)
                    report["runs"].append(row)
                    report["elapsed_s"] = round(time.perf_counter() - started, 1)
                    if place.main:
                        print(f"{data_name:13s} wd {weight_decay:<5g} seed {seed}: clustered {row['trained']['clustered']}"
                              f" (init {row['random_init']['clustered']}), 1st derivatives "
                              f"{row['trained']['first_derivative_share']}, val acc {row['val_accuracy']}, "
                              f"{row['seconds']} s", flush=True)
                        write_json(out, report, indent=1)
    report.update(complete=True, load_average_end=os.getloadavg())
    if place.main:
        write_json(out, report, indent=1)
        print(f"wrote {out}: {len(report['runs'])} runs in {report['elapsed_s']} s; left out: {sorted(skipped) or 'none'}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
