"""How far the set's own 5×5 autoencoder moves with its seed alone, under the old and the new training
defaults: the control that issue 16's "within one point" check needs before a difference between the
two defaults can be read as the defaults' doing.

    nice -n 19 .venv/bin/python benchmarks/own_autoencoder_seeds.py --db data/kernels/offline \\
        --seeds 0 1 2 --out benchmarks/results/own_autoencoder_seeds.json

For each setting (the old rule: epochs over the corpus, batches of 256 at lr 1e-3, one thread, at most
45 epochs, as the committed figures' autoencoder before the change; the new: `autoencoder.TRAINING_DEFAULTS`
on every core) and each seed, notebook 05's `per_set.train_own` trains on the set's trained 5×5 kernels
(twins left out; the seed also orders the batches and initialises the weights), then
`score_own_autoencoder.score` labels its spectrum, scores it on the independent ground truth (seed 101)
and classifies the set's kernels. Reported: per setting the spread over seeds (max − min) of the
ground-truth accuracy and of each model's % clustered, and the difference between the settings' means.
An autoencoder already trained (its directory has a provenance) is reused, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from kernels_lib.fileio import write_json
from kernels_lib.method import autoencoder, per_set
from kernels_lib.paths import BUILD_DIR

SETTINGS = {
    "old": {"lr": 1e-3, "batch_size": 256, "max_epochs": 45, "patience": 3, "min_delta": 1e-4, "lr_drops": 2,
            "num_threads": 1},
    "new": {},          # autoencoder.TRAINING_DEFAULTS, every core
}
KERNEL_SIZE = 5


def _scorer():
    path = Path(__file__).with_name("score_own_autoencoder.py")
    spec = importlib.util.spec_from_file_location("score_own_autoencoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spread(values: list[float | None]) -> float | None:
    """max − min of the defined values (None when fewer than two are defined)."""
    known = [v for v in values if v is not None]
    return round(max(known) - min(known), 2) if len(known) > 1 else None


def mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 2) if known else None


def summarise(rows: dict[str, dict[int, dict]]) -> dict:
    """Per setting: spreads over seeds; between settings: difference of the means, per model."""
    out = {}
    for name, by_seed in rows.items():
        scored = list(by_seed.values())
        models = scored[0]["clustered_pct_per_model"]
        out[name] = {
            "seeds": sorted(by_seed),
            "ground_truth_accuracy_pct": [round(100 * r["ground_truth"]["accuracy_merged"], 2) for r in scored],
            "ground_truth_spread_points": spread([100 * r["ground_truth"]["accuracy_merged"] for r in scored]),
            "clustered_pct_spread_points": {m: spread([r["clustered_pct_per_model"][m] for r in scored])
                                            for m in models},
            "clustered_pct_mean": {m: mean([r["clustered_pct_per_model"][m] for r in scored]) for m in models},
        }
        out[name]["largest_clustered_pct_spread_points"] = max(
            (v for v in out[name]["clustered_pct_spread_points"].values() if v is not None), default=None)
    if {"old", "new"} <= out.keys():
        old, new = out["old"], out["new"]
        out["new_minus_old_points"] = {
            "ground_truth_accuracy": round(float(np.mean(new["ground_truth_accuracy_pct"])
                                                 - np.mean(old["ground_truth_accuracy_pct"])), 2),
            "clustered_pct_per_model": {m: None if old["clustered_pct_mean"][m] is None
                                        or new["clustered_pct_mean"][m] is None
                                        else round(new["clustered_pct_mean"][m] - old["clustered_pct_mean"][m], 2)
                                        for m in old["clustered_pct_mean"]}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True, help="the set's kernel database (data/kernels/<set>)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--work", type=Path, default=BUILD_DIR / "own_autoencoder_seeds")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    scorer = _scorer()
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows: dict[str, dict[int, dict]] = {}
    for name in args.settings:
        for seed in args.seeds:
            folder = args.work / f"{name}-seed{seed}"
            directory = folder / f"{KERNEL_SIZE}x{KERNEL_SIZE}"
            if not (directory / autoencoder.PROVENANCE_FILE).is_file():
                print(f"training {name} seed {seed} ...", flush=True)
                per_set.train_own(args.db, KERNEL_SIZE, folder, seed=seed, progress=False, **SETTINGS[name])
            rows.setdefault(name, {})[seed] = row = scorer.score(directory, args.db)
            print(f"{name} seed {seed}: ground truth {row['ground_truth']['accuracy_merged']:.4f}, "
                  f"{row['samples_seen']:,} kernels seen in {row['train_seconds']} s", flush=True)
    record = {"what": "the set's own 5x5 autoencoder under the old and the new training defaults, several seeds",
              "database": str(args.db), "load_before": load_before, "settings": SETTINGS,
              "runs": {name: {str(seed): row for seed, row in by_seed.items()} for name, by_seed in rows.items()},
              "summary": summarise(rows), "load_after": [round(v, 2) for v in os.getloadavg()]}
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
