"""Figures of the autoencoder-free cross-check (notebooks 16 and 17): agreement matrices of three
labellings, the fitted scale σ and orientation θ per layer of each model, and the share of kernels
that k greedily chosen prototypes explain. Every function takes tables and returns a Figure."""
from __future__ import annotations

import contextlib
import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..vocab import display_name

#: Colours of the two selections every σ/θ figure compares (trained kernels, their random-init twins).
GROUP_COLOURS = {"trained": "#1f618d", "random init": "#b3b6b7"}


def _group_colour(name: str) -> str:
    return GROUP_COLOURS["random init" if str(name).startswith("random init") else "trained"]


def _grid(n: int, ncols: int, width: float, height: float, title: str | None):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + (0.5 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, width=int(11 * width * ncols))), fontsize=10)
    return fig, axes[:n]


def _model_panels(table: pd.DataFrame, what: str, ncols: int, width: float, height: float, title: str | None):
    """One panel per model of `table`, and the selections (trained / random init) with their colours."""
    models = sorted(table["model"].unique())
    if not models:
        raise ValueError(f"no {what} to draw")
    selections = list(dict.fromkeys(table["selection"]))
    fig, axes = _grid(len(models), ncols, width, height, title)
    return fig, list(zip(axes, models)), selections, {s: _group_colour(s) for s in selections}


def _label_panel(ax, model: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(model, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)


def agreement_heatmaps(matrices: dict, title: str | None = None, ncols: int = 3) -> Figure:
    """One annotated heatmap per {panel title: counts (rows: one method's labels, columns: another's)};
    cells are coloured by the share of their row, so each row reads as "where did these go"."""
    import seaborn as sns

    if not matrices:
        raise ValueError("no agreement matrices to draw")
    fig, axes = _grid(len(matrices), ncols, 5.2, 4.4, title)
    for ax, (name, counts) in zip(axes, matrices.items()):
        counts = counts.astype(float)
        share = counts.div(counts.sum(axis=1).where(lambda s: s > 0), axis=0)
        sns.heatmap(share, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=counts.astype(int), fmt="d",
                    annot_kws={"fontsize": 6}, cbar=False, linewidths=0.4, linecolor="white")
        ax.set_xticks(np.arange(counts.shape[1]) + 0.5, [display_name(c) for c in counts.columns], rotation=40,
                      ha="right", fontsize=7)
        ax.set_yticks(np.arange(counts.shape[0]) + 0.5, [display_name(c) for c in counts.index], rotation=0, fontsize=7)
        ax.set_xlabel(counts.columns.name or "", fontsize=8)
        ax.set_ylabel(counts.index.name or "", fontsize=8)
        ax.set_title(name, fontsize=9)
    return fig


def sigma_by_layer(table: pd.DataFrame, title: str | None = None, ncols: int = 3) -> Figure:
    """Violins of the fitted σ per depthwise layer, one panel per model, trained kernels on the left
    half and their random-init twins on the right. `table`: model, layer, sigma, selection and
    optionally stride (layers of stride 2 are marked "/2" under their number)."""
    import seaborn as sns

    fig, panels, selections, palette = _model_panels(table, "fitted kernels", ncols, 5.0, 2.8, title)
    for i, (ax, model) in enumerate(panels):
        rows = table[table["model"] == model]
        order = sorted(rows["layer"].unique())
        sns.violinplot(data=rows, x="layer", y="sigma", hue="selection", hue_order=selections, order=order,
                       split=len(selections) == 2, inner="quart", cut=0, density_norm="width", palette=palette,
                       linewidth=0.6, ax=ax, legend=i == 0)
        if "stride" in rows:
            stride = rows.groupby("layer")["stride"].max()
            ax.set_xticks(range(len(order)), [f"{layer}\n/2" if stride[layer] == 2 else f"{layer}" for layer in order])
        _label_panel(ax, model, "depthwise layer (/2: stride 2)" if "stride" in rows else "depthwise layer", "σ (px)")
    if panels[0][0].get_legend() is not None:
        panels[0][0].legend(fontsize=6, loc="upper left", title=None, frameon=False)
    return fig


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
    """seaborn's strip-plot jitter draws from numpy's global generator: seed it for the block (the same table
    gives the same PNG bytes) and give the caller's state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def theta_by_layer(table: pd.DataFrame, title: str | None = None, ncols: int = 3, seed: int = 0) -> Figure:
    """Orientation θ of first derivatives against the layer, one dot per kernel, one panel per model;
    dotted lines mark the image axes (0°, 90°, 180°, 270°). `table`: model, layer, theta, selection;
    `seed`: the dots' horizontal jitter."""
    import seaborn as sns

    fig, panels, selections, palette = _model_panels(table, "first derivatives", ncols, 5.0, 2.8, title)
    for i, (ax, model) in enumerate(panels):
        rows = table[table["model"] == model]
        order = sorted(rows["layer"].unique())
        with _seeded_global_numpy(seed + i):
            sns.stripplot(data=rows, x="layer", y="theta", hue="selection", hue_order=selections, order=order,
                          dodge=len(selections) == 2, jitter=0.3, size=1.2, palette=palette, ax=ax,
                          legend=i == 0, rasterized=True)
        for axis in (0, 90, 180, 270, 360):
            ax.axhline(axis, color="black", lw=0.5, ls=":")
        ax.set_ylim(-5, 365)
        ax.set_yticks([0, 90, 180, 270, 360])
        _label_panel(ax, model, "depthwise layer", "θ (degrees)")
    if panels[0][0].get_legend() is not None:
        panels[0][0].legend(fontsize=6, loc="upper left", title=None, frameon=False, markerscale=4)
    return fig


def axis_distance(table: pd.DataFrame, title: str | None = None, ncols: int = 4, bins: int = 9) -> Figure:
    """Histograms (densities) of each first derivative's angle to the nearest image axis (0° on an axis,
    45° on a diagonal), one panel per model; the dashed line is what uniform orientations give.
    `table`: model, axis_distance, selection."""
    import seaborn as sns

    fig, panels, selections, palette = _model_panels(table, "first derivatives", ncols, 3.2, 2.4, title)
    for i, (ax, model) in enumerate(panels):
        rows = table[table["model"] == model]
        sns.histplot(data=rows, x="axis_distance", hue="selection", hue_order=selections, bins=np.linspace(0, 45, bins + 1),
                     stat="density", common_norm=False, element="step", fill=True, alpha=0.3, palette=palette,
                     ax=ax, legend=i == 0)
        ax.axhline(1 / 45, color="black", ls="--", lw=0.8)
        counts = rows.groupby("selection").size()
        label = ", ".join(f"{s.split(',')[0]} n={counts.get(s, 0)}" for s in selections)
        _label_panel(ax, f"{model}\n{label}", "angle to nearest axis (degrees)", "density")
    if panels[0][0].get_legend() is not None:
        sns.move_legend(panels[0][0], "upper right", fontsize=6, title=None, frameon=False)
    return fig


def coverage_curves(curves: pd.DataFrame, title: str | None = None) -> Figure:
    """Share of kernels within the threshold of one of the first k prototypes, against k: one panel
    per (pool, kernel size), one line per model (trained: coloured; random-init twins: grey, dashed),
    the pooled corpus in black. `curves`: pool, kernel_size, model, group, k, share; `elbow` (optional)
    marks each pooled curve's elbow."""
    panels = list(curves[["pool", "kernel_size"]].drop_duplicates().itertuples(index=False, name=None))
    if not panels:
        raise ValueError("no coverage curves to draw")
    fig, axes = _grid(len(panels), 2, 7.0, 3.8, title)
    for ax, (pool, k) in zip(axes, panels):
        rows = curves[(curves["pool"] == pool) & (curves["kernel_size"] == k)]
        models = [m for m in dict.fromkeys(rows["model"]) if m != "all models"]
        colours = dict(zip(models, _model_colours(len(models))))
        for (model, group), line in rows.groupby(["model", "group"], sort=False):
            line = line.sort_values("k")
            pooled = model == "all models"
            trained = group == "trained"
            ax.plot(line["k"], line["share"], lw=2.2 if pooled else 0.9,
                    color=("black" if pooled else colours[model]) if trained else "#909497",
                    ls="-" if trained else "--", alpha=1.0 if pooled else 0.8,
                    label=f"{'all models' if pooled else model}{'' if trained else ' (random init)'}"
                    if pooled or trained else None, zorder=3 if pooled else 2)
            if pooled and "elbow" in line and pd.notna(line["elbow"].iloc[0]) and line["elbow"].iloc[0] >= 1:
                e = int(line["elbow"].iloc[0])
                ax.plot([e], [line.loc[line["k"] == e, "share"].iloc[0]], "o", color="black" if trained else "#909497",
                        ms=6, mfc="white", zorder=4)
        ax.axvline(8, color="#c0392b", lw=0.8, ls=":")
        ax.text(8.5, 0.98, "8 master keys", color="#c0392b", fontsize=6, va="top", transform=ax.get_xaxis_transform())
        ax.set_ylim(0, 1)
        ax.set_xlim(1, rows["k"].max())
        ax.set_xlabel("number of prototypes k", fontsize=8)
        ax.set_ylabel("share of kernels explained", fontsize=8)
        ax.set_title(f"{k}×{k} kernels, {pool} prototypes", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _model_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


