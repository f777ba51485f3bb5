"""The data × weight-decay factorial study: do natural images or the training recipe make DoG-shaped kernels?

The same network (the default 7×7 `DepthwiseNet` of `default_runs`) and the same number of steps are
trained on each of four data — photographs, their phase-scrambled and i.i.d.-noise controls, and
Fashion-MNIST (real images, not natural scenes) — at each of several AdamW weight decays, with several
seeds. Every run is measured on its final depthwise kernels, and each (data, seed) also on its untrained
network (the epoch-0 snapshot, the random-init twin):

- the reference autoencoder's % clustered, merged class shares, the first-derivative share, and the
  median cosine to the nearest analytic template (`labels.clustering_summary`);
- the direct DoG-family fit (`analysis.fit.fit_kernels`): % the fit clusters, median fitted σ, the
  first derivatives' orientations (share within 11.25° of an image axis; 0.25 for uniform θ);
- closeness to real trained kernels: the only trained 7×7 kernels installable offline, PP-OCRv6's
  text detector (384 kernels, `REAL_BANK`). Two measures: the total-variation distance between the two
  banks' class-share distributions (0 = the same mix of classes, 1 = disjoint; what the paper compares),
  and the symmetric mean nearest-neighbour cosine of the mean-centred kernels (threshold-free and
  autoencoder-free: each run kernel's best match among the real ones and each real kernel's best match
  among the run's, averaged both ways; sign kept, as On and Off differ after batch norm and ReLU);
- Σ lr·wd (`loop.integrated_weight_decay`), validation accuracy, seconds and the load average.

`run_study` writes one JSON file (atomically, after every run) and skips the runs it already holds, so a
stopped study resumes where it was. `study_frame` reads it back as a table for the notebook.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import crosscheck, fit as fitting
from ..errors import KernelsLibError
from ..fileio import write_json
from ..paths import TRAINING_DIR, cache_dir
from ..preprocess import centre_normalise, degenerate_mask
from ..records import kernel_table
from ..database.store import read_kernels
from ..vocab import UNCLUSTERED, order_classes, paper_threshold
from .datasets import training_data
from .default_runs import DEFAULT_RUNS
from .labels import clustering_summary
from .loop import TrainConfig, integrated_weight_decay, train

DATA = ("photos", "photos-phase", "photos-iid", "fashion-mnist")
WEIGHT_DECAYS = (0.0, 0.05, 0.2, 0.5, 1.0)
SEEDS = (0, 1)
STUDY_DIR = TRAINING_DIR / "factorial"
FIRST_DERIVATIVE = "1st-derivative"
#: The CPU-sized settings of the committed study: 100 steps of batch 64 (one epoch of the default runs'
#: 6,400 crops; they train 25 such epochs, 2,500 steps), with the learning rate's cosine schedule squeezed
#: into those 100 steps, so one run takes about 20 s of one CPU thread (the 32 runs had to fit 50 minutes
#: of a shared, loaded machine). The warm-up is the default runs' share of the schedule (4 %).
#: Fashion-MNIST is validated on a seeded 1,000 of its test images (the photographs have ~600 crops).
SETTINGS = {"epochs": 1, "crops_per_epoch": 6400, "warmup_epochs": 0.04}
DATA_OPTIONS = {"fashion-mnist": {"val_size": 1000}}
#: The real trained 7×7 kernels: (wheel key, member) of PP-OCRv6's small text detector (ONNX).
REAL_BANK = ("rapidocr", "rapidocr/models/PP-OCRv6_det_small.onnx")
KERNEL_SIZE = 7


class StudyError(KernelsLibError, ValueError):
    """A study file that does not match the study asked for; the message says what to do."""


def study_config(data: str, weight_decay: float, seed: int, settings: dict | None = None) -> TrainConfig:
    """The run of one cell: the default 7×7 Kaiming run's config with the study's data, weight decay, seed
    and (shorter) `settings` (default `SETTINGS`)."""
    changes = {"data_options": DATA_OPTIONS.get(data, {}), **(settings or SETTINGS)}
    return dataclasses.replace(DEFAULT_RUNS["kaiming-7x7"], run=f"{data}-wd{weight_decay:g}-seed{seed}", data=data,
                               weight_decay=float(weight_decay), seed=int(seed), snapshot_epochs=(), **changes)


def _number(value) -> float | None:
    """A float for the JSON file; None for an undefined number (NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


@lru_cache(maxsize=None)
def real_kernels() -> np.ndarray:
    """The PP-OCRv6 text detector's 7×7 depthwise kernels [384, 7, 7] (`REAL_BANK`), from its pinned wheel."""
    from ..sources.onnx_source import read_onnx
    from ..sources.wheels import wheel_file

    table = kernel_table(list(read_onnx(wheel_file(*REAL_BANK)).layers), "PP-OCRv6_det_small", "trained", "onnx")
    return kernel_stack(table)


def kernel_stack(table: pd.DataFrame, k: int = KERNEL_SIZE) -> np.ndarray:
    """The k×k kernels of a kernel table as [N, k, k]."""
    rows = table[(table["kh"] == k) & (table["kw"] == k)]
    return np.stack(rows["kernel"].to_numpy()).reshape(len(rows), k, k).astype(np.float64)


def nearest_cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean over the kernels of `a` of the largest mean-centred cosine to a kernel of `b` (degenerate
    kernels left out; None if either side has none)."""
    a, b = (x.reshape(len(x), -1) for x in (a, b))
    a, b = a[~degenerate_mask(a)], b[~degenerate_mask(b)]
    if not len(a) or not len(b):
        return None
    return float((centre_normalise(a) @ centre_normalise(b).T).max(axis=1).mean())


def share_distance(p: dict, q: dict) -> float | None:
    """Total-variation distance ½ Σ |p − q| between two class-share distributions (None if either is empty)."""
    if not p or not q:
        return None
    return 0.5 * sum(abs(p.get(name, 0.0) - q.get(name, 0.0)) for name in set(p) | set(q))


def fit_summary(kernels: np.ndarray) -> dict:
    """The direct DoG-family fit of [N, 7, 7] kernels: % it clusters (the paper's threshold), median σ of
    the DoG-family kinds it clusters, the first derivatives' count and share near an image axis."""
    fit = fitting.fit_kernels(kernels)
    labels = fitting.fit_labels(fit, kernel_size=kernels.shape[1])
    usable = ~fit["degenerate"].to_numpy(dtype=bool)
    clustered = usable & (labels != UNCLUSTERED)
    chosen = fit[clustered]
    sigma = chosen.loc[chosen["kind"].isin(crosscheck.SIGMA_KINDS), "sigma"]
    axis = crosscheck.axis_preference(chosen.loc[chosen["kind"] == "d1", "theta"])
    return {"fit_clustered": _number(clustered.sum() / usable.sum()) if usable.any() else None,
            "fit_cosine_median": _number(np.median(fit.loc[usable, "cosine"])) if usable.any() else None,
            "fit_kinds": {str(k): round(float(v), 4) for k, v in
                          chosen["kind"].value_counts(normalize=True).sort_index().items()},
            "median_sigma": _number(sigma.median()) if len(sigma) else None,
            "n_first_derivatives_fit": axis["n"],
            "first_derivative_share_near_axis": _number(axis["share_near_axis"])}


def kernel_measures(table: pd.DataFrame, reference: dict) -> dict:
    """Every measure of one bank of 7×7 kernels (a snapshot's kernel table); `reference` is `real_reference()`."""
    summary = clustering_summary(table)[f"{KERNEL_SIZE}x{KERNEL_SIZE}"]
    kernels = kernel_stack(table)
    real = real_kernels()
    to_real, from_real = nearest_cosine(kernels, real), nearest_cosine(real, kernels)
    shares = summary["shares"]
    return {"clustered": summary["clustered"], "shares": shares,
            "first_derivative_share": shares.get(FIRST_DERIVATIVE, 0.0) if shares else None,
            "template_cosine_median": summary.get("template_cosine_median"),
            **fit_summary(kernels),
            "share_distance_to_real": share_distance(shares, reference["shares"]),
            "nn_cosine_to_real": to_real, "nn_cosine_from_real": from_real,
            "nn_cosine_symmetric": None if to_real is None or from_real is None else (to_real + from_real) / 2}


def real_reference() -> dict:
    """The real bank's own class shares and measures (what every run is compared with)."""
    real = real_kernels()
    table = pd.DataFrame({"kh": KERNEL_SIZE, "kw": KERNEL_SIZE, "layer": 0, "kernel": list(real.reshape(len(real), -1))})
    summary = clustering_summary(table)[f"{KERNEL_SIZE}x{KERNEL_SIZE}"]
    return {"model": REAL_BANK[1], "wheel": REAL_BANK[0], "n_kernels": len(real), "clustered": summary["clustered"],
            "shares": summary["shares"], "first_derivative_share": summary["shares"].get(FIRST_DERIVATIVE, 0.0),
            "template_cosine_median": summary["template_cosine_median"], **fit_summary(real),
            "threshold": paper_threshold(KERNEL_SIZE)}


def _key(record: dict) -> tuple:
    return record["data"], float(record.get("weight_decay", -1.0)), int(record["seed"])


def run_cell(config: TrainConfig, data, runs_dir: Path, reference: dict, twin: bool = True) -> tuple[dict, dict | None]:
    """Train one cell and measure it: (the run's record, its random-init twin's record, or None without `twin`).
    A run already finished in `runs_dir` is measured again without training (e.g. after a new reference
    autoencoder): `wall_seconds` and `cpu_seconds` time this call, `train_seconds` the run's training."""
    started, cpu = time.perf_counter(), time.process_time()
    result = train(config, run_dir=runs_dir / config.run, data=data, progress=False, resume=True)
    twin_snapshot, final = result.snapshots[0], result.snapshots[-1]
    steps_per_epoch = result.provenance["steps_per_epoch"]
    last = result.history[-1]
    common = {"data": config.data, "seed": config.seed}
    run = {**common, "weight_decay": config.weight_decay, "run": config.run,
           "integrated_weight_decay": integrated_weight_decay(config, steps_per_epoch),
           "steps": config.epochs * steps_per_epoch, "val_accuracy": last["val_accuracy"],
           "train_accuracy": last["train_accuracy"],
           **kernel_measures(read_kernels(final.path), reference)}
    if twin:
        twin = {**common, "val_accuracy": result.history[0]["val_accuracy"],
                **kernel_measures(read_kernels(twin_snapshot.path), reference)}
    run.update(wall_seconds=round(time.perf_counter() - started, 1), cpu_seconds=round(time.process_time() - cpu, 1),
               train_seconds=round(sum(h.get("train_seconds", 0.0) for h in result.history), 1),
               load_average=round(os.getloadavg()[0], 2))
    return run, twin


def run_study(path, data=DATA, weight_decays=WEIGHT_DECAYS, seeds=SEEDS, settings: dict | None = None,
              runs_dir=None, progress: bool = True) -> dict:
    """Train and measure every (seed, data, weight decay) cell not yet in the JSON file at `path`, writing the
    file atomically after each. Seeds go outermost, so a stopped study has whole seeds first. Run folders
    (checkpoints, snapshots) go to `runs_dir` (default the cache's factorial-runs/<N>-epochs/: runs of another length
    have the same names)."""
    path = Path(path)
    settings = dict(settings or SETTINGS)
    runs_dir = Path(runs_dir) if runs_dir is not None else cache_dir("factorial-runs") / f"{settings['epochs']}-epochs"
    study = _read(path, settings)
    done = {_key(r) for r in study["runs"]}
    twins = {_key(r) for r in study["twins"]}
    loaded = {}
    for seed in seeds:
        for name in data:
            for wd in weight_decays:
                config = study_config(name, wd, seed, settings)
                if _key(dataclasses.asdict(config)) in done:
                    continue
                if name not in loaded:
                    loaded.clear()
                    loaded[name] = training_data(name, **config.data_arguments())
                needs_twin = (name, -1.0, seed) not in twins
                run, twin = run_cell(config, loaded[name], runs_dir, study["reference"], needs_twin)
                study["runs"].append(run)
                done.add(_key(run))
                if twin:
                    study["twins"].append(twin)
                    twins.add(_key(twin))
                save_progress(path, study, run, progress,
                              f"1st derivatives {run['first_derivative_share']}, val acc {run['val_accuracy']}, "
                              f"Σ lr·wd {run['integrated_weight_decay']:.3f}")
    return study


def save_progress(path, record: dict, run: dict, progress: bool, details: str) -> None:
    """Write the whole `record` atomically after each run (a stopped study resumes from it) and, with
    `progress`, print the run's % clustered, `details`, its time and the load average."""
    write_json(path, record, indent=1)
    if progress:
        clustered = "-" if run["clustered"] is None else f"{100 * run['clustered']:.1f} %"
        print(f"{run['run']}: clustered {clustered}, {details}, {run['wall_seconds']} s wall, load {run['load_average']}",
              flush=True)


def _read(path: Path, settings: dict) -> dict:
    """The study so far at `path`, or a new one (with the real bank's reference measures)."""
    if path.is_file():
        study = json.loads(path.read_text())
        if study.get("settings") != settings:
            raise StudyError(f"{path} was made with settings {study.get('settings')}, not {settings}; pass another "
                             "path, or delete the file to start again")
        return study
    return {"settings": settings, "network": DEFAULT_RUNS["kaiming-7x7"].network_options(),
            "reference": real_reference(), "runs": [], "twins": []}


def study_files(folder=STUDY_DIR) -> list[Path]:
    """The study's JSON files in `folder` (one per seed when the seeds ran side by side), sorted."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise StudyError(f"no study JSON in {folder}; run `python -m kernels_lib.training.study` first")
    return files


def study_frame(folder=STUDY_DIR) -> pd.DataFrame:
    """Every run and twin of the study files in `folder` as one table (twins: weight_decay NaN, kind "random init")."""
    runs, twins = [], []
    for path in study_files(folder):
        study = json.loads(path.read_text())
        runs += study["runs"]
        twins += study["twins"]
    keys = [_key(r) for r in runs]
    if len(set(keys)) != len(keys):
        raise StudyError(f"the study files in {folder} hold some runs twice (the same data, weight decay and seed); "
                         "keep each seed in one file")
    return pd.concat([pd.DataFrame(runs).assign(kind="trained"),
                      pd.DataFrame(twins).assign(kind="random init", weight_decay=np.nan)], ignore_index=True)


def study_meta(folder=STUDY_DIR) -> dict:
    """The study's settings, network and the real bank's measures (`real_reference`); every file must agree."""
    heads = [{k: v for k, v in json.loads(path.read_text()).items() if k not in ("runs", "twins")}
             for path in study_files(folder)]
    if any(head != heads[0] for head in heads[1:]):
        raise StudyError(f"the study files in {folder} were made with different settings; keep one study per folder")
    return heads[0]


def run_scale(frame: pd.DataFrame, meta: dict) -> str:
    """The scale of the study's runs in words, for figure titles: network, kernel size, steps, CPU."""
    net, steps = meta["network"], sorted(frame.loc[frame["kind"] == "trained", "steps"].unique())
    return (f"DepthwiseNet {net['width']} wide × {net['depth']} blocks, {net['kernel_size']}×{net['kernel_size']} "
            f"kernels, {'/'.join(f'{int(n):,}' for n in steps)} steps on CPU")


def cell_table(frame: pd.DataFrame, value: str, data=DATA) -> pd.DataFrame:
    """Mean of `value` over seeds: one row per data (in `data` order, then "random init" for the twins,
    averaged over data), one column per weight decay."""
    trained = frame[frame["kind"] == "trained"]
    table = trained.pivot_table(index="data", columns="weight_decay", values=value, aggfunc="mean")
    table = table.reindex([d for d in data if d in table.index])
    twins = frame[frame["kind"] == "random init"]
    if len(twins):
        table.loc["random init"] = float(pd.to_numeric(twins[value], errors="coerce").mean())
    return table


def main(argv=None) -> None:
    """Run the study's cells of some seeds into STUDY_DIR/seed<...>.json (two seeds can run side by side)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--weight-decays", type=float, nargs="+", default=list(WEIGHT_DECAYS))
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"],
                        help="epochs of 100 steps (default 1; 25 is the default runs' length, warm-up kept at 4 %%)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default STUDY_DIR/seed<N>.json)")
    args = parser.parse_args(argv)
    out = args.out or STUDY_DIR / f"seed{'-'.join(str(s) for s in args.seeds)}.json"
    run_study(out, data=tuple(args.data), weight_decays=tuple(args.weight_decays), seeds=tuple(args.seeds),
              settings=settings_for(args.epochs))


def settings_for(epochs: int) -> dict:
    """The study's settings for runs of `epochs` epochs of 6,400 crops, the warm-up the same share (4 %)
    of the schedule as in the default runs (1 of 25 epochs) and the committed study (0.04 of 1)."""
    if epochs < 1:
        raise StudyError(f"epochs must be at least 1, not {epochs}")
    return {**SETTINGS, "epochs": int(epochs), "warmup_epochs": round(SETTINGS["warmup_epochs"] * epochs, 6)}


if __name__ == "__main__":
    main()


def cell_values(table: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> dict:
    """A `cell_table` as {weight decay: {data: value × scale}} for a results file; None for an empty cell."""
    scaled = (table * scale).round(digits)
    return {wd: {name: (None if pd.isna(v) else float(v)) for name, v in scaled[wd].items()} for wd in scaled.columns}


def share_table(frame: pd.DataFrame, weight_decay: float, reference: dict | None = None, data=DATA) -> pd.DataFrame:
    """Merged class shares (mean over seeds): one row per data trained at `weight_decay`, then the random-init
    twins (mean over data and seeds), then the real bank's (`reference`, when given); columns in class order."""
    def mean_shares(rows: pd.DataFrame) -> pd.Series:
        return pd.DataFrame(list(rows["shares"])).fillna(0.0).mean()

    trained = frame[(frame["kind"] == "trained") & np.isclose(frame["weight_decay"], weight_decay)]
    rows = {name: mean_shares(trained[trained["data"] == name]) for name in data if (trained["data"] == name).any()}
    rows["random init"] = mean_shares(frame[frame["kind"] == "random init"])
    if reference is not None:
        rows["PP-OCRv6 det (real)"] = pd.Series(reference["shares"])
    table = pd.DataFrame(rows).T.fillna(0.0)
    return table[order_classes(list(table.columns))]


def weight_decay_labels(frame: pd.DataFrame) -> list[str]:
    """Column labels of a `cell_table`: each weight decay with its Σ lr·wd over the run."""
    trained = frame[frame["kind"] == "trained"]
    sums = trained.groupby("weight_decay")["integrated_weight_decay"].mean()
    return [f"{wd:g}\nΣ {total:.2f}" for wd, total in sums.items()]


#: Measures of `summary_table` (column: source field, scale).
SUMMARY_MEASURES = {"clustered_pct": ("clustered", 100), "first_derivative_pct": ("first_derivative_share", 100),
                    "template_cosine_median": ("template_cosine_median", 1),
                    "fit_clustered_pct": ("fit_clustered", 100), "median_sigma": ("median_sigma", 1),
                    "nn_cosine_symmetric": ("nn_cosine_symmetric", 1),
                    "share_distance_to_real": ("share_distance_to_real", 1), "val_accuracy_pct": ("val_accuracy", 100)}


def summary_table(frame: pd.DataFrame, data=DATA) -> pd.DataFrame:
    """One row per data and weight decay, then one per data for its random-init twins: the mean over seeds of
    each `SUMMARY_MEASURES` (None where undefined), the seed count, and the spread of % clustered over seeds."""
    rows = []
    for (kind, name, wd), part in frame.groupby(["kind", "data", frame["weight_decay"].fillna(-1.0)], sort=False):
        row = {"data": name, "kind": kind, "weight_decay": None if wd < 0 else wd,
               "integrated_weight_decay": part["integrated_weight_decay"].mean() if wd >= 0 else None,
               "n_seeds": int(part["seed"].nunique())}
        for column, (source, scale) in SUMMARY_MEASURES.items():
            values = pd.to_numeric(part[source], errors="coerce") * scale
            row[column] = values.mean() if values.notna().any() else None
        clustered = pd.to_numeric(part["clustered"], errors="coerce") * 100
        row["clustered_pct_min"], row["clustered_pct_max"] = clustered.min(), clustered.max()
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(data)}
    table["_order"] = table["data"].map(order).fillna(len(order)) + (table["kind"] != "trained") * 0.5
    return table.sort_values(["kind", "_order", "weight_decay"], ascending=[False, True, True],
                             na_position="last").drop(columns="_order").reset_index(drop=True)
