"""Training runs as the appendix notebooks show them (Appendices D, F, G, H, I).

`kernels_lib.training` trains and writes snapshots; this module classifies them
(`results.classify_kernels`, the same code as for any kernel database) and shapes what the
notebooks draw and record: Table 2 beside the paper's numbers, class shares per epoch, per layer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import nets
from ..analysis import results, tables
from ..database import store
from ..errors import AnalysisError
from .default_runs import PAPER_TABLE_2, run_summary
from .loop import TrainResult


def epoch_of(model: str) -> int:
    """The epoch of a snapshot from its model name, "<run>@epoch<N>"."""
    _, sep, epoch = str(model).rpartition("@epoch")
    if not sep or not epoch.isdigit():
        raise AnalysisError(f"{model!r} is not a training snapshot's model name (<run>@epoch<N>)")
    return int(epoch)


def classify_run(run: TrainResult, epochs=None) -> pd.DataFrame:
    """Every kernel of the run's snapshots (those at `epochs`, default all) classified by the reference
    autoencoders at the paper's thresholds (`results.RESULT_COLUMNS`) plus its `epoch`."""
    chosen = [s for s in run.snapshots if epochs is None or s.epoch in set(epochs)]
    if not chosen:
        raise AnalysisError(f"run {run.config.run!r} has no snapshot at epochs {list(epochs)}; it has "
                            f"{[s.epoch for s in run.snapshots]}")
    rows = results.classify_kernels([s.path for s in chosen], kmeans_clusters=None, progress=False)
    return rows.assign(epoch=rows["model"].map(epoch_of))


def snapshot_kernels(run: TrainResult, classified: pd.DataFrame, epoch: int, kernel_size: int):
    """The k×k kernels [N, k, k] of the snapshot at `epoch` and their rows of `classified` (from
    `classify_run`), in the same order (layer, channel)."""
    [snapshot] = [s for s in run.snapshots if s.epoch == epoch] or [None]
    if snapshot is None:
        raise AnalysisError(f"run {run.config.run!r} has no snapshot at epoch {epoch}; it has "
                            f"{[s.epoch for s in run.snapshots]}")
    meta, kernels = store.read_kernel_array(snapshot.path, kernel_size)
    rows = classified[(classified["epoch"] == epoch) & (classified["kh"] == kernel_size)]
    rows = rows.sort_values(["layer", "channel"]).reset_index(drop=True)
    order = meta[["layer", "channel"]].reset_index(drop=True)
    if len(rows) != len(order) or not (rows[["layer", "channel"]].to_numpy() == order.to_numpy()).all():
        raise AnalysisError(f"the classified rows of {snapshot.model} do not match its kernel file {snapshot.path}: "
                            "classify the run again (runs.classify_run)")
    return kernels, rows


def final_epoch(run: TrainResult) -> int:
    """The last snapshot's epoch (the final epoch of a finished run)."""
    return run.snapshots[-1].epoch


def snapshot_layer_proportions(classified: pd.DataFrame, epoch: int, kernel_size: int) -> pd.DataFrame:
    """Class shares per depthwise layer of the snapshot at `epoch` (rows of `classify_run`), as
    `tables.layer_proportions` gives them for any model."""
    rows = classified[classified["epoch"] == epoch]
    if not len(rows):
        raise AnalysisError(f"no classified snapshot at epoch {epoch}; epochs: {sorted(classified['epoch'].unique())}")
    return tables.layer_proportions(rows, rows["model"].iloc[0], rows["weights_tag"].iloc[0], kernel_size)


def gallery_classes(rows: pd.DataFrame, class_col: str = "merged") -> pd.Series:
    """The class a gallery shows each kernel under: its class if clustered, else "unclustered"
    (degenerate kernels keep "degenerate")."""
    clustered = rows["clustered"].fillna(False).astype(bool)
    return rows[class_col].where(clustered | rows["degenerate"], "unclustered").where(~rows["degenerate"], "degenerate")


def clustered_pct(rows: pd.DataFrame) -> float:
    """% of the non-degenerate kernels that were clustered; NaN when there is none."""
    usable = rows[~rows["degenerate"].astype(bool)]
    return float("nan") if usable.empty else 100.0 * float(usable["clustered"].astype(bool).mean())


def epoch_proportions(classified: pd.DataFrame, kernel_size: int, class_col: str = "merged") -> pd.DataFrame:
    """Figure 24: per snapshot epoch (rows, in order), each class's share among all its k×k kernels
    (unclustered and degenerate in their own columns; `tables.paper_bars` drops them)."""
    props = tables.model_proportions(classified, kernel_size, class_col=class_col)
    epochs = [epoch_of(name.split(".", 1)[0]) for name in props.index]
    return props.set_axis(pd.Index(epochs, name="epoch")).sort_index().fillna(0.0)


def clustered_over_epochs(classified: pd.DataFrame) -> pd.DataFrame:
    """Figure 25: % clustered (of non-degenerate kernels) at each snapshot epoch, overall and per layer."""
    rows = []
    for epoch, part in classified.groupby("epoch"):
        rows.append({"epoch": int(epoch), "clustered_pct": clustered_pct(part),
                     **{f"layer_{layer}": clustered_pct(p) for layer, p in part.groupby("layer")}})
    return pd.DataFrame(rows)


def table_2(kaiming: TrainResult, dog: TrainResult, classified: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Table 2 at this project's scale: per initialisation, validation accuracy and % clustered of the final
    snapshot (`classified`: {run name: `classify_run` rows}) beside the paper's ConvMixer-768/32 numbers."""
    rows = []
    for run in (kaiming, dog):
        summary = run_summary(run)
        final = classified[run.config.run]
        final = final[final["epoch"] == final_epoch(run)]
        k = summary["network"]["kernel_size"]
        paper = PAPER_TABLE_2[run.config.init]
        rows.append({
            "initialisation": run.config.init, "run": run.config.run,
            "network": f"DepthwiseNet {summary['network']['width']}-{summary['network']['depth']}, {k}×{k}"
            if run.config.model == nets.BUILT_IN else run.config.model,
            "data": f"{summary['data']} ({summary['n_classes']} classes)",
            "epochs": f"{summary['epochs_done']}/{summary['epochs']}",
            "val_accuracy_pct": None if summary["val_accuracy"] is None else 100.0 * summary["val_accuracy"],
            "clustered_pct": clustered_pct(final[final["kh"] == k]),
            "paper_val_accuracy_pct": paper["val_accuracy"], "paper_clustered_pct": paper["clustered"],
        })
    return pd.DataFrame(rows)


def chosen_layer_rows(table: pd.DataFrame, layers, per_row: int = 12, seed: int = 0,
                      classified: pd.DataFrame | None = None) -> list[tuple[str, np.ndarray]]:
    """Figure 20: random kernels of chosen depthwise layers of one model's kernel table (`records.kernel_table`
    rows, one weights tag), one row per layer, labelled with its index, size, count and — given `classified`
    rows of the same kernels — its % clustered. A layer the model lacks is an error naming those it has."""
    if table[["model", "weights_tag"]].drop_duplicates().shape[0] != 1:
        raise AnalysisError("chosen_layer_rows takes the kernels of one model and weights; filter the table first")
    present = sorted(int(v) for v in table["layer"].unique())
    missing = [int(layer) for layer in layers if int(layer) not in present]
    if missing:
        raise AnalysisError(f"{table['model'].iloc[0]} has no depthwise layer {missing}; its layers are "
                            f"{present[0]}–{present[-1]} (0 = first depthwise layer)")
    rng = np.random.default_rng(seed)
    rows = []
    for layer in layers:
        part = table[table["layer"] == int(layer)]
        kh, kw = int(part["kh"].iloc[0]), int(part["kw"].iloc[0])
        pick = np.sort(rng.choice(len(part), min(per_row, len(part)), replace=False))
        kernels = np.stack(part["kernel"].to_numpy()[pick]).reshape(-1, kh, kw)
        label = f"layer {int(layer)} ({kh}×{kw}, {len(part)} kernels"
        if classified is not None:
            share = clustered_pct(classified[classified["layer"] == int(layer)])
            label += ", clustered: " + ("undefined" if np.isnan(share) else f"{share:.0f}%")
        rows.append((label + ")", kernels))
    return rows


def central_energy_share(kernels, centre: int = 7) -> np.ndarray:
    """Appendix I's observation in one number per kernel: the share of its (mean-removed) energy inside the
    central `centre`×`centre` window. Noise spread evenly over a k×k kernel gives about (centre/k)²."""
    arr = np.asarray(kernels, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < centre:
        raise AnalysisError(f"expected square kernels [N, k, k] with k >= {centre}, got {arr.shape}")
    arr = arr - arr.mean(axis=(1, 2), keepdims=True)
    start = (arr.shape[1] - centre) // 2
    inner = (arr[:, start:start + centre, start:start + centre] ** 2).sum(axis=(1, 2))
    total = (arr ** 2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inner / total, np.nan)


def central_crop(kernels, size: int = 7) -> np.ndarray:
    """The central size×size window of each k×k kernel, e.g. to classify the middle of large kernels with the
    7×7 reference autoencoder (Appendix I: in RepLKNet the patterns sit in a small central area)."""
    arr = np.asarray(kernels)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < size or (arr.shape[1] - size) % 2:
        raise AnalysisError(f"expected square kernels [N, k, k] with odd k >= {size}, got {arr.shape}")
    start = (arr.shape[1] - size) // 2
    return np.ascontiguousarray(arr[:, start:start + size, start:start + size])
