"""Appendix G, Figure 25 (and its controls): % of kernels clustered over the epochs of training runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Line colours of the runs of one figure, in order (the first is the run the figure is about).
RUN_COLOURS = ["#2471a3", "#c0392b", "#7d3c98", "#17a589", "#d4ac0d", "#5d6d7e"]


def clustered_over_epochs(curves: dict, title: str | None = None, ylabel: str = "kernels clustered (%)") -> Figure:
    """One line per run: {label: DataFrame with `epoch` and `clustered_pct` (NaN where undefined, not drawn)}."""
    if not curves:
        raise ValueError("no runs to plot")
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for colour, (label, frame) in zip(RUN_COLOURS * 2, curves.items()):
        frame = pd.DataFrame(frame)
        if not {"epoch", "clustered_pct"} <= set(frame.columns):
            raise ValueError(f"{label!r}: needs columns epoch and clustered_pct, got {list(frame.columns)}")
        ax.plot(frame["epoch"], frame["clustered_pct"], marker="o", ms=4, lw=1.4, color=colour, label=label)
        last = frame.dropna(subset=["clustered_pct"]).tail(1)
        for epoch, value in zip(last["epoch"], last["clustered_pct"]):
            ax.annotate(f"{value:.1f}%", (epoch, value), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=colour)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def comparison_table_figure(table: pd.DataFrame, value_cols, labels, title: str | None = None) -> Figure:
    """Grouped horizontal bars: one group per row of `table` (its index names it), one bar per value
    column in %, e.g. validation accuracy and % clustered of each run (NaN bars are left out)."""
    values = table[list(value_cols)].to_numpy(dtype=float)
    n, m = values.shape
    fig = Figure(figsize=(7.5, 0.55 * n * m / 2 + 1.6), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / m
    y = np.arange(n)
    for j, (col, label) in enumerate(zip(value_cols, labels)):
        pos = y + (j - (m - 1) / 2) * height
        ax.barh(pos, values[:, j], height=height * 0.95, color=RUN_COLOURS[j % len(RUN_COLOURS)], label=label)
        for p, v in zip(pos, values[:, j]):
            if np.isfinite(v):
                ax.text(v + 0.8, p, f"{v:.1f}", va="center", fontsize=7)
    ax.set_yticks(y, [str(i) for i in table.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("%")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, frameon=False, loc="outside lower center", ncols=m)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def factorial_heatmap(table: pd.DataFrame, title: str, value_label: str, column_labels=None, scale: float = 100.0,
                      fmt: str = "{:.1f}", vmin: float | None = 0.0, vmax: float | None = None,
                      xlabel: str = "AdamW weight decay (Σ lr·wd over the run)", ylabel: str = "training data") -> Figure:
    """A data × weight-decay table as a heatmap with each cell's value written in it (times `scale`, e.g. %),
    rows in the table's order; NaN cells are left blank and marked "n/a"."""
    values = table.to_numpy(dtype=float) * scale
    if values.size == 0:
        raise ValueError("no cells to plot")
    fig = Figure(figsize=(1.25 * values.shape[1] + 3.2, 0.55 * values.shape[0] + 1.9), layout="constrained")
    ax = fig.subplots()
    finite = values[np.isfinite(values)]
    low = vmin if vmin is not None else (finite.min() if finite.size else 0.0)
    high = vmax if vmax is not None else (finite.max() if finite.size else low + 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", vmin=low,
                      vmax=high if high > low else low + 1.0)      # all cells equal (e.g. all 0 %): a flat scale
    top = image.norm.vmax
    for (i, j), v in np.ndenumerate(values):
        text = "n/a" if not np.isfinite(v) else fmt.format(v)
        light = np.isfinite(v) and v < image.norm.vmin + 0.6 * (top - image.norm.vmin)
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if light else "black")
    ax.set_xticks(range(values.shape[1]), column_labels or [f"{c:g}" for c in table.columns], fontsize=7.5)
    ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label=value_label, shrink=0.9)
    ax.set_title(title, fontsize=10)
    return fig


#: Colours of the groups of `seed_points`, in order: the images, their controls, the untrained twins.
GROUP_COLOURS = ["#2471a3", "#d4ac0d", "#c0392b", "#7f8c8d"]


def seed_points(frame: pd.DataFrame, panels: dict, groups, title: str, xlabel: str = "setting",
                marks: dict | None = None, mark_label: str = "chance") -> Figure:
    """One panel per measure ({column: axis label}), one x position per setting (in order of appearance), the
    `groups` side by side at each (column `group`), every row (a seed) a point and the mean a short bar.
    `marks` ({column: {setting: value}}): a level drawn dashed across a setting's slot (e.g. its chance)."""
    settings = list(dict.fromkeys(frame["setting"]))
    if not settings:
        raise ValueError("no runs to plot")
    fig = Figure(figsize=(max(6.4, 1.2 * len(settings) + 2.5), 2.9 * len(panels) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    width = 0.8 / len(groups)
    for ax, (column, label) in zip(axes, panels.items()):
        for j, (group, colour) in enumerate(zip(groups, GROUP_COLOURS * 2)):
            offset = (j - (len(groups) - 1) / 2) * width
            for i, setting in enumerate(settings):
                values = pd.to_numeric(frame.loc[(frame["setting"] == setting) & (frame["group"] == group), column],
                                       errors="coerce").dropna()
                if values.empty:
                    continue
                spread = np.linspace(-0.25, 0.25, len(values)) * width if len(values) > 1 else np.zeros(1)
                ax.scatter(i + offset + spread, values, s=18, color=colour, edgecolor="black", linewidth=0.4,
                           zorder=3, label=group)
                ax.hlines(values.mean(), i + offset - 0.4 * width, i + offset + 0.4 * width, color=colour, lw=2)
        for i, setting in enumerate(settings):
            level = (marks or {}).get(column, {}).get(setting)
            if level is not None:
                ax.hlines(level, i - 0.45, i + 0.45, color="black", lw=1, ls="--", zorder=2, label=mark_label)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        top = max(1.0, float(pd.to_numeric(frame[column], errors="coerce").max()) * 1.12)
        ax.set_ylim(-0.03 * top, top)
    axes[-1].set_xticks(range(len(settings)), settings, rotation=20, ha="right", fontsize=8)
    axes[-1].set_xlabel(xlabel)
    handles, names = axes[0].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    fig.legend(unique.values(), unique.keys(), fontsize=7, frameon=False, loc="outside lower center", ncols=len(unique))
    fig.suptitle(title, fontsize=10)
    return fig


#: Bar colours of the frozen-filter conditions: learned, the three banks, then the transfers.
CONDITION_COLOURS = {"learned": "#2471a3", "master-keys": "#d35400", "scale-space": "#17a589", "random": "#7f8c8d"}
TRANSFER_COLOURS = ["#7d3c98", "#a569bd", "#c39bd3", "#5b2c6f", "#4a235a"]


def frozen_accuracy_bars(frame: pd.DataFrame, data_order, condition_order, title: str, chance: dict | None = None,
                         data_labels: dict | None = None) -> Figure:
    """One panel per data set (`data_order`): a bar per condition present (mean validation accuracy over seeds,
    %, written above it) with each seed's run as a black dot; `chance` {data: accuracy in %} as a dashed line.
    frame: one row per run with target, condition, seed and val_accuracy (a fraction); data_labels title the
    panels (default: the data's name)."""
    parts = [frame[frame["target"] == name] for name in data_order]
    widths = [max(2, part["condition"].nunique()) for part in parts]      # room for a panel title
    if not sum(len(p) for p in parts):
        raise ValueError("no runs to plot")
    fig = Figure(figsize=(1.9 + 0.62 * sum(widths), 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(parts), sharey=True, gridspec_kw={"width_ratios": widths}))
    transfers = iter(TRANSFER_COLOURS * 3)
    colours = {c: CONDITION_COLOURS.get(c) or next(transfers) for c in condition_order}
    for ax, name, part, width in zip(axes, data_order, parts, widths):
        present = [c for c in condition_order if c in set(part["condition"])]
        for x, condition in enumerate(present):
            values = 100 * part.loc[part["condition"] == condition, "val_accuracy"].astype(float).to_numpy()
            mean = values.mean()
            ax.bar(x, mean, width=0.72, color=colours[condition], alpha=0.85)
            jitter = np.linspace(-0.14, 0.14, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(x + jitter, values, s=14, color="black", zorder=3, label="one seed" if x == 0 else None)
            ax.text(x, max(values.max(), mean) + 1.5, f"{mean:.1f}", ha="center", va="bottom", fontsize=7)
        if chance and name in chance:
            ax.axhline(chance[name], color="black", ls="--", lw=0.8, label="chance")
        ax.set_xticks(range(len(present)), present, rotation=40, ha="right", fontsize=7.5)
        ax.set_title((data_labels or {}).get(name, name), fontsize=8.5)
        ax.set_ylim(0, 110)
        ax.set_yticks(range(0, 101, 20))
        ax.set_xlim(-0.5 - (width - len(present)) / 2, len(present) - 0.5 + (width - len(present)) / 2)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].legend(handles, names, fontsize=7, frameon=False, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return fig
