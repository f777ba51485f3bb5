"""The autoencoder and its evaluation: its architecture (Figure 16), the training loss, and the
autoencoder vs k-means comparison on labelled kernels."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from ..vocab import display_name, order_classes

def architecture_figure(input_dim: int, hidden, kernel_shape=None, title: str | None = None) -> Figure:
    """Figure 16: the layers of the autoencoder, d = k² − 1 → hidden… → 1 → …hidden → d.

    Bar heights grow with the logarithm of the layer width; the 1-D code is red. Below each
    layer: its width and the activation that follows it.
    """
    hidden = [int(h) for h in hidden]
    widths = [int(input_dim), *hidden, 1, *hidden[::-1], int(input_dim)]
    acts = ["input", *["LeakyReLU"] * len(hidden), "sigmoid", *["LeakyReLU"] * len(hidden), "tanh"]
    x = np.arange(len(widths)) * 1.6
    h = 0.6 + np.log2(np.maximum(widths, 1))
    fig = Figure(figsize=(1.0 * len(widths) + 1.0, 4.2), layout="constrained")
    ax = fig.subplots()
    code_at = len(hidden) + 1
    for i in range(len(widths) - 1):   # connections between layers (all-to-all, drawn as a band)
        ax.add_patch(Polygon([(x[i] + 0.25, h[i] / 2), (x[i + 1] - 0.25, h[i + 1] / 2),
                              (x[i + 1] - 0.25, -h[i + 1] / 2), (x[i] + 0.25, -h[i] / 2)],
                             closed=True, facecolor="#d5d8dc", edgecolor="none", alpha=0.6))
    for i, (w, a) in enumerate(zip(widths, acts)):
        colour = "#c0392b" if i == code_at else ("#2e86c1" if i < code_at else "#28b463")
        if i in (0, len(widths) - 1):
            colour = "#7f8c8d"
        ax.add_patch(Rectangle((x[i] - 0.25, -h[i] / 2), 0.5, h[i], facecolor=colour, edgecolor="black", lw=0.6))
        ax.text(x[i], -h.max() / 2 - 0.5, f"{w}", ha="center", va="top", fontsize=9, fontweight="bold")
        ax.text(x[i], -h.max() / 2 - 1.3, a, ha="center", va="top", fontsize=7, rotation=30)
    ax.text(x[code_at], -h[code_at] / 2 - 0.3, "code\nz ∈ [0, 1]", ha="center", va="top", fontsize=8,
            color="#c0392b", bbox=dict(facecolor="white", edgecolor="none", pad=1))
    ax.text(x[len(hidden) // 2 + 1], h.max() / 2 + 0.4, "encoder", ha="center", fontsize=9, color="#2e86c1")
    ax.text(x[code_at + len(hidden) // 2 + 1], h.max() / 2 + 0.4, "decoder", ha="center", fontsize=9, color="#28b463")
    ax.set_xlim(x[0] - 0.8, x[-1] + 0.8)
    ax.set_ylim(-h.max() / 2 - 3.0, h.max() / 2 + 1.2)
    ax.set_aspect("equal")
    ax.set_axis_off()
    k = f"{kernel_shape[0]}×{kernel_shape[1]} kernels, " if kernel_shape is not None else ""
    ax.set_title(title or f"Autoencoder ({k}d = k² − 1 = {input_dim} hyperplane coordinates; "
                          "loss 1 − cos(x, x̂))", fontsize=10)
    return fig


def loss_curve(history, best: int | None = None, title: str | None = None,
               window_samples: int | None = None) -> Figure:
    """Mean training loss 1 − cos(x, x̂) per window, the kept (best, 1-based) window marked; the x axis
    counts kernels seen when `window_samples` is given (the provenance's), else windows (epochs)."""
    loss = np.asarray(history, dtype=np.float64)
    if loss.ndim != 1 or len(loss) == 0 or not np.isfinite(loss).all():
        raise ValueError("history must be a non-empty list of finite losses (Autoencoder.provenance['loss_history'])")
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    steps = np.arange(1, len(loss) + 1) * (window_samples / 1e6 if window_samples else 1)
    ax.plot(steps, loss, marker="o", ms=3, lw=1.2, color="#2471a3")
    if best:
        ax.axvline(steps[best - 1], color="#c0392b", ls="--", lw=0.8)
        ax.annotate(f"kept: {'window' if window_samples else 'epoch'} {best}\nloss {loss[best - 1]:.4f}",
                    (steps[best - 1], loss[best - 1]), textcoords="offset points", xytext=(8, 12), fontsize=8,
                    color="#c0392b")
    if not window_samples:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"millions of kernels seen (a loss every {window_samples:,})" if window_samples else "epoch")
    ax.set_ylabel("mean 1 − cos(x, x̂)")
    if loss.min() > 0 and loss.max() / loss.min() > 5:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(title or "Autoencoder training loss", fontsize=10)
    return fig


def method_comparison(summaries: dict, title: str | None = None) -> Figure:
    """Autoencoder vs k-means: one panel per synthetic bank, grouped bars per metric.

    summaries: {panel title: `baselines.compare` summary DataFrame}.
    """
    metrics = [("accuracy", "merged-class accuracy"), ("accuracy_clustered", "accuracy among clustered"),
               ("clustered_fraction", "clustered (labelled bank)"),
               ("random_clustered_fraction", "clustered (i.i.d. random)")]
    if not summaries:
        raise ValueError("no summaries to plot")
    fig = Figure(figsize=(5.2 * len(summaries), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(summaries), sharey=True))
    colours = ["#c0392b", "#85c1e9", "#3498db", "#1b4f72", "#7d3c98", "#17a589"]
    for ax, (name, summary) in zip(axes, summaries.items()):
        methods = list(summary["method"])
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            row = summary[summary["method"] == m].iloc[0]
            vals = [float(row[c]) if row[c] is not None and pd.notna(row[c]) else 0.0 for c, _ in metrics]
            xs = np.arange(len(metrics)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(xs, vals, width, color=colours[j % len(colours)], label=m)
            for xv, v in zip(xs, vals):
                ax.text(xv, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=5.5, rotation=90)
        if "chance" in summary:
            ax.axhline(float(summary["chance"].iloc[0]), color="black", ls=":", lw=0.8)
            ax.text(len(metrics) - 0.5, float(summary["chance"].iloc[0]) + 0.01, "chance", fontsize=7, ha="right")
        ax.set_xticks(np.arange(len(metrics)), [lab for _, lab in metrics], fontsize=7, rotation=15)
        ax.set_ylim(0, 1.12)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("fraction")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title or "Autoencoder vs k-means on synthetic DoG-family kernels", fontsize=10)
    return fig


def recall_heatmap(per_class: pd.DataFrame, value: str = "recall", title: str | None = None) -> Figure:
    """Per-class precision or recall (rows: methods, columns: classes) as an annotated seaborn heatmap.

    An undefined value (precision of a class a method never predicts) is a grey "—" cell, never 0.
    """
    import seaborn as sns

    table = per_class.pivot_table(index="method", columns="class", values=value, sort=False, dropna=False)
    table = table[order_classes(table.columns)].astype(float)
    undefined = table.isna()
    fig = Figure(figsize=(1.0 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.set_facecolor("#d5d8dc")
    sns.heatmap(table, ax=ax, mask=undefined, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f",
                annot_kws={"fontsize": 7}, cbar_kws={"label": value, "shrink": 0.8}, linewidths=0.5, linecolor="white")
    for (i, j), missing in np.ndenumerate(undefined.to_numpy()):
        if missing:
            ax.text(j + 0.5, i + 0.5, "—", ha="center", va="center", fontsize=8)
    ax.set_xticks(np.arange(table.shape[1]) + 0.5, [display_name(c) for c in table.columns], fontsize=7,
                  rotation=30, ha="right")
    ax.set_yticks(np.arange(table.shape[0]) + 0.5, table.index, fontsize=8, rotation=0)
    ax.set_xlabel("class")
    ax.set_ylabel("method")
    ax.set_title((title or f"Per-class {value}") + (" (—: undefined, class never predicted)" if undefined.any().any() else ""),
                 fontsize=10)
    return fig


def confusion_heatmap(confusion: pd.DataFrame, title: str | None = None) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) as a seaborn heatmap of row shares,
    each cell annotated with its share and count; the diagonal is each class's recall."""
    import seaborn as sns

    counts = confusion.astype(float)
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)
    notes = np.vectorize(lambda s, c: f"{s:.2f}\n{int(c)}" if c else "")(shares.fillna(0).to_numpy(), counts.to_numpy())
    fig = Figure(figsize=(0.95 * counts.shape[1] + 2.8, 0.6 * counts.shape[0] + 1.8), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(shares, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=notes, fmt="", annot_kws={"fontsize": 6.5},
                cbar_kws={"label": "share of the true class", "shrink": 0.8}, linewidths=0.5, linecolor="white")
    ax.set_xticks(np.arange(counts.shape[1]) + 0.5, [display_name(c) for c in counts.columns], fontsize=7,
                  rotation=30, ha="right")
    ax.set_yticks(np.arange(counts.shape[0]) + 0.5, [display_name(c) for c in counts.index], fontsize=7, rotation=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix (row shares; diagonal = recall)", fontsize=9)
    return fig
