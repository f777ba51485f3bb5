"""Figures of the analysis notebooks (05–08): spectrum strip, autoencoder architecture, loss
curve, % clustered bars, and the autoencoder vs k-means comparison.

Same conventions as `kernels_lib.plots` (whose palette, class names and saving they reuse):
kernels in a diverging colour map centred at zero, one colour per class, `Figure` objects
without global pyplot state.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from . import plots

_EXTRA_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]


def _colour(label: str, extra: dict) -> str:
    """The palette colour of a class; a label the palette does not know (a human's own name) gets
    a distinct colour of its own."""
    try:
        return plots.class_color(label)
    except KeyError:
        if label not in extra:
            extra[label] = _EXTRA_COLOURS[len(extra) % len(_EXTRA_COLOURS)]
        return extra[label]


def _mosaic(kernels: np.ndarray, ncols: int, gap: int = 1) -> np.ma.MaskedArray:
    """Kernels tiled row-major with `gap` blank pixels between them; each kernel scaled to max |w| = 1.

    Scaling each kernel by its own largest |weight| and drawing the mosaic with vmin=-1, vmax=1
    is the per-kernel diverging scale centred at zero.
    """
    n, kh, kw = kernels.shape
    nrows = -(-n // ncols)
    out = np.ma.masked_all((nrows * (kh + gap) - gap, ncols * (kw + gap) - gap))
    for i, k in enumerate(kernels):
        r, c = divmod(i, ncols)
        out[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = k / plots.symmetric_limit(k)
    return out


def spectrum_strip(codes, kernels, labels, ncols: int = 25, title: str | None = None,
                   cmap: str = plots.DIVERGING) -> Figure:
    """Figures 3/31/32: decoded kernels of equally spaced codes, in code order, with their classes.

    codes [N], kernels [N, k, k] (as `spectrum.decode_spectrum` gives), labels [N] (the class of
    each code, `spectrum.code_labels`). Kernels run left to right, `ncols` per row; a colour band
    under each row marks the class of every code, and each labelled interval that is wide
    enough names its class on the band. The legend lists the classes with their code ranges.
    """
    codes = np.asarray(codes, dtype=np.float64)
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 3 or not np.isfinite(kernels).all():
        raise ValueError(f"kernels must be a finite [N, k, k] array, got shape {kernels.shape}")
    labels = np.asarray(labels, dtype=str)
    n, kh, kw = kernels.shape
    if not (len(codes) == len(labels) == n) or n == 0:
        raise ValueError(f"need as many codes, kernels and labels (got {len(codes)}, {n}, {len(labels)})")
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    mosaic = _mosaic(kernels, ncols)
    cell = kw + 1
    band = max(2.0, 0.45 * kh)                      # height of the class band, in pixels
    row_h = kh + 1 + band + 1.2
    px = min(0.05, 16.0 / ((ncols + 8) * cell))     # inches per kernel pixel: at most 16 in wide
    fig = Figure(figsize=(px * (ncols + 8) * cell + 0.3, px * row_h * nrows + 1.3), layout="constrained")
    ax = fig.subplots()
    extra: dict = {}
    # draw row by row so each row gets its band below it
    for r in range(nrows):
        top = r * row_h
        rows = mosaic[r * (kh + 1):r * (kh + 1) + kh]
        ax.imshow(rows, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest",
                  extent=(-0.5, rows.shape[1] - 0.5, top + kh - 0.5, top - 0.5))
        idx = np.arange(r * ncols, min((r + 1) * ncols, n))
        y0 = top + kh + 0.2
        start = 0
        for j in range(1, len(idx) + 1):
            if j == len(idx) or labels[idx[j]] != labels[idx[start]]:
                lab = labels[idx[start]]
                x0, x1 = start * cell - 0.5, j * cell - 1.5
                ax.add_patch(Rectangle((x0, y0), x1 - x0, band, facecolor=_colour(lab, extra), edgecolor="white",
                                       linewidth=0.4))
                if (j - start) >= 4:
                    ax.text((x0 + x1) / 2, y0 + band / 2, plots.class_label(lab), ha="center", va="center",
                            fontsize=6.5, color="white" if lab not in ("other", "unclustered") else "black",
                            fontweight="bold", clip_on=True)
                start = j
        ax.text(-1.5, top + kh / 2, f"{codes[idx[0]]:.3f}", ha="right", va="center", fontsize=7)
        ax.text(len(idx) * cell - 0.5, top + kh / 2, f" {codes[idx[-1]]:.3f}", ha="left", va="center", fontsize=7)
    ax.set_xlim(-0.5 - 4 * cell, ncols * cell + 4 * cell)
    ax.set_ylim(nrows * row_h, -1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    # legend: class, its colour, the code intervals it owns
    handles, names = [], []
    for lab in plots.ordered_classes(np.unique(labels)):
        sel = codes[labels == lab]
        handles.append(Rectangle((0, 0), 1, 1, facecolor=_colour(lab, extra)))
        names.append(f"{plots.class_label(lab)} ({len(sel)} codes)")
    fig.legend(handles, names, loc="outside lower center", ncols=min(5, len(names)), fontsize=7, frameon=False)
    fig.suptitle(title or f"Spectrum of the {kh}×{kw} autoencoder: {n} equally spaced codes from 0 to 1 "
                          "(read left to right, top to bottom; each kernel scaled to its own ±max)", fontsize=9)
    return fig


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


def loss_curve(history, best_epoch: int | None = None, title: str | None = None) -> Figure:
    """Mean training loss 1 − cos(x, x̂) per epoch, the kept (best) epoch marked."""
    loss = np.asarray(history, dtype=np.float64)
    if loss.ndim != 1 or len(loss) == 0 or not np.isfinite(loss).all():
        raise ValueError("history must be a non-empty list of finite losses (Autoencoder.provenance['loss_history'])")
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, marker="o", ms=3, lw=1.2, color="#2471a3")
    if best_epoch:
        ax.axvline(best_epoch, color="#c0392b", ls="--", lw=0.8)
        ax.annotate(f"kept: epoch {best_epoch}\nloss {loss[best_epoch - 1]:.4f}", (best_epoch, loss[best_epoch - 1]),
                    textcoords="offset points", xytext=(8, 12), fontsize=8, color="#c0392b")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean 1 − cos(x, x̂)")
    if loss.min() > 0 and loss.max() / loss.min() > 5:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(title or "Autoencoder training loss", fontsize=10)
    return fig


def clustered_bars(table: pd.DataFrame, title: str | None = None) -> Figure:
    """% of kernels clustered per model (`analysis.clustered_fraction`), paper's % beside where known.

    Random-init twins are grey: they are the control that should hardly cluster.
    """
    if table.empty:
        raise ValueError("no rows to plot")
    t = table.reset_index(drop=True)
    names = [f"{m} {kh}×{kw}" + (" (random init)" if r else "") for m, kh, kw, r in
             zip(t["model"], t["kh"], t["kw"], t["random_init"])]
    fig = Figure(figsize=(8.0, 0.32 * len(t) + 1.5), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(t))
    ax.barh(y, t["clustered_pct"], color=["#bdc3c7" if r else "#2471a3" for r in t["random_init"]], edgecolor="white")
    handles = [Rectangle((0, 0), 1, 1, color="#2471a3", label="trained (this repository)"),
               Rectangle((0, 0), 1, 1, color="#bdc3c7", label="random-init twin")]
    if "paper_pct" in t and t["paper_pct"].notna().any():
        known = t["paper_pct"].notna().to_numpy()
        handles.append(ax.scatter(t.loc[known, "paper_pct"], y[known], marker="D", color="#c0392b", zorder=3,
                                  label="paper (same weights)"))
    for yi, v in zip(y, t["clustered_pct"]):
        ax.text(v + 0.8, yi, f"{v:.1f}%", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("kernels clustered (%)")
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_title(title or "Share of depthwise kernels clustered", fontsize=10)
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
    """Per-class precision or recall (rows: methods, columns: classes) as an annotated heatmap.

    Precision of a class a method never predicts is undefined: its cell is grey with "—".
    """
    table = per_class.pivot_table(index="method", columns="class", values=value, sort=False)
    table = table[[c for c in plots.ordered_classes(table.columns)]]
    undefined = np.zeros(table.shape, dtype=bool)
    if value == "precision":
        predicted = per_class.pivot_table(index="method", columns="class", values="predicted", sort=False)
        undefined = (predicted.loc[table.index, table.columns] == 0).to_numpy()
    values = np.ma.masked_array(table.to_numpy(dtype=float), undefined)
    fig = Figure(figsize=(1.0 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.4), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"].copy()
    cmap.set_bad("#d5d8dc")
    im = ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        text = "—" if undefined[i, j] else f"{v:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="black" if undefined[i, j] or v >= 0.6 else "white")
    ax.set_xticks(np.arange(table.shape[1]), [plots.class_label(c) for c in table.columns], fontsize=7, rotation=30,
                  ha="right")
    ax.set_yticks(np.arange(table.shape[0]), table.index, fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label=value)
    ax.set_title((title or f"Per-class {value}") + (" (—: class never predicted)" if undefined.any() else ""),
                 fontsize=10)
    return fig
