"""Figures made of kernels: grids, labelled rows, Figure 2's regular vs depthwise panels, class
galleries (Figures 5/6, 12/13, 17) and k-means centroids (Appendix N). Each kernel has its own
colour scale centred at zero unless a shared scale is asked for."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..vocab import DEGENERATE, DISPLAY_NAMES, display_name, order_classes
from .style import DIVERGING, PALETTE, label_colour, class_color, cluster_colour, symmetric_limit

def _as_kernels(kernels) -> np.ndarray:
    """[N, kh, kw] float64 array; refuses NaN/inf rather than drawing holes."""
    arr = np.asarray(kernels, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected kernels of shape [N, kh, kw], got {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"kernels {np.flatnonzero(bad)[:10].tolist()} hold NaN/inf; "
                         "drop them first (records' `degenerate` column flags them)")
    return arr


def _draw_kernel(ax, kernel, limit, cmap=DIVERGING, annotate=None):
    im = ax.imshow(kernel, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if annotate is not None:
        kh, kw = kernel.shape
        size = max(4.0, 9.0 - 0.5 * max(kh, kw))
        for (r, c), v in np.ndenumerate(np.round(kernel * annotate) + 0.0):  # + 0.0 turns -0 into 0
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=size,
                    color="white" if abs(kernel[r, c]) > 0.6 * limit else "black")
    return im


def kernel_grid(kernels, titles=None, captions=None, ncols: int = 8, shared_scale: bool = False,
                title: str | None = None, cmap: str = DIVERGING, cell: float = 1.1,
                annotate: float | None = None, colorbar: bool = False) -> Figure:
    """Kernels as small images in a grid, each centred at zero (vmin=-vmax).

    `shared_scale` uses one limit for all (compare magnitudes) instead of one per kernel
    (compare shapes). `titles` go above each kernel, `captions` below. `annotate=100` writes
    each weight ×100 in its cell (the paper's Figure 14).
    """
    arr = _as_kernels(kernels)
    n = len(arr)
    if n == 0:
        raise ValueError("no kernels to draw")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    text_rows = (titles is not None) + (captions is not None)
    fig = Figure(figsize=(cell * ncols + (0.8 if colorbar else 0), (cell + 0.25 * text_rows) * nrows + (0.5 if title else 0)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    shared = max(symmetric_limit(k) for k in arr) if shared_scale else None
    im = None
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        im = _draw_kernel(ax, arr[i], shared if shared_scale else symmetric_limit(arr[i]), cmap, annotate)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        if captions is not None:
            ax.set_xlabel(str(captions[i]), fontsize=6)
    if colorbar and im is not None:
        if shared_scale:
            fig.colorbar(im, ax=axes.tolist(), shrink=0.6, label="weight")
        else:  # each kernel has its own limits: the bar can only show the relative scale
            bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), cmap), ax=axes.tolist(), shrink=0.6,
                               ticks=[-1, 0, 1], label="weight (scaled per kernel)")
            bar.ax.set_yticklabels(["−max", "0", "+max"])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _rows_into(fig, rows, ncols, shared_scale, cmap, row_colors=None, col_titles=None):
    """Draw labelled rows of kernels into a (sub)figure: one row per (label, kernels)."""
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for c, name in enumerate(col_titles or []):
        axes[0, c].set_title(str(name), fontsize=8)
    shared = max(symmetric_limit(k) for _, ks in rows for k in _as_kernels(ks)) if shared_scale else None
    for r, (label, ks) in enumerate(rows):
        ks = _as_kernels(ks) if len(ks) else np.zeros((0, 1, 1))
        for c in range(ncols):
            ax = axes[r, c]
            if c < len(ks):
                _draw_kernel(ax, ks[c], shared if shared_scale else symmetric_limit(ks[c]), cmap)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_visible(False)
                if c == 0 and str(label):  # a labelled row without kernels says so; an unlabelled one is a spacer
                    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=7, color="grey",
                            transform=ax.transAxes)
        axes[r, 0].set_ylabel(str(label), rotation=0, ha="right", va="center", fontsize=8,
                              color=(row_colors[r] if row_colors else "black"),
                              fontweight="bold" if row_colors else "normal")
    return axes


def kernel_rows(rows, ncols: int | None = None, title: str | None = None, shared_scale: bool = False,
                cmap: str = DIVERGING, row_colors=None, cell: float = 0.9, col_titles=None) -> Figure:
    """Rows of kernels with a label at the left of each row (a layer, a class, a model).

    `rows` is a list of (label, kernels[N, kh, kw]); rows may differ in kernel size and length.
    `col_titles` name the columns (e.g. the derivative, the σ).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("no rows to draw")
    ncols = ncols or max(1, max(len(ks) for _, ks in rows))
    fig = Figure(figsize=(1.6 + cell * ncols, cell * len(rows) + (0.5 if title else 0.1) + (0.25 if col_titles else 0)),
                 layout="constrained")
    _rows_into(fig, rows, ncols, shared_scale, cmap, row_colors, col_titles)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


#: An empty, unlabelled row: aligns rows of two panels (e.g. one model's regular and depthwise layers).
SPACER = ("", np.zeros((0, 1, 1)))


def regular_vs_depthwise(regular_rows, depthwise_rows, title: str | None = None, ncols: int = 8,
                         regular_title: str = "(i) regular convolutions",
                         depthwise_title: str = "(ii) depthwise convolutions") -> Figure:
    """Figure 2: random kernels of regular (left) and depthwise (right) convolutions, one row per layer.

    The shorter panel is padded at the bottom; put `SPACER` rows in to align rows by model.
    """
    regular_rows, depthwise_rows = list(regular_rows), list(depthwise_rows)
    if not regular_rows or not depthwise_rows:
        raise ValueError("need at least one row of regular and one of depthwise kernels")
    nrows = max(len(regular_rows), len(depthwise_rows))
    cell = 0.8
    fig = Figure(figsize=(2 * (2.2 + cell * ncols), cell * nrows + 0.9), layout="constrained")
    left, right = fig.subfigures(1, 2, wspace=0.04)
    for sub, rows, name in ((left, regular_rows, regular_title), (right, depthwise_rows, depthwise_title)):
        padded = rows + [SPACER] * (nrows - len(rows))
        axes = _rows_into(sub, padded, ncols, False, DIVERGING)
        for r, (label, ks) in enumerate(padded):
            if not str(label) and len(ks) == 0:
                for ax in axes[r]:
                    ax.set_axis_off()
        sub.suptitle(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def class_rows(kernels, classes, per_class: int = 8, seed: int = 0, order=None) -> list[tuple[str, np.ndarray]]:
    """Group kernels by class into (readable label, up to `per_class` random kernels) rows, in class order."""
    arr = _as_kernels(kernels)
    classes = np.asarray(classes)
    if len(classes) != len(arr):
        raise ValueError(f"{len(arr)} kernels but {len(classes)} class labels")
    rng = np.random.default_rng(seed)
    rows = []
    for c in (order if order is not None else order_classes(classes.tolist())):
        idx = np.flatnonzero(classes == c)
        if len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        rows.append((c, arr[idx]))
    return rows


def class_gallery(kernels, classes, per_class: int = 8, seed: int = 0, title: str | None = None,
                  counts: bool = True, order=None) -> Figure:
    """Figures 5/6 (and 12/13, 17 for templates): random kernels of each class, one row per class,
    the class name in its palette colour at the left (with how many kernels it holds)."""
    rows = class_rows(kernels, classes, per_class, seed, order)
    classes = np.asarray(classes)
    labels = [f"{display_name(c)}\n(n={int((classes == c).sum())})" if counts else display_name(c) for c, _ in rows]
    colours = [class_color(c) for c, _ in rows]
    return kernel_rows([(lab, ks) for lab, (_, ks) in zip(labels, rows)], ncols=per_class, title=title,
                       row_colors=colours)


def class_galleries(panels: dict, per_class: int = 8, seed: int = 0, title: str | None = None,
                    exclude=("degenerate",), cell: float = 0.85, caption: str | None = None) -> Figure:
    """Figures 5/6 with a control: random kernels of each class, one row per class, for one or more
    panels side by side (e.g. trained kernels | their random-init twins).

    panels: {panel title: (kernels [N, k, k], class of each kernel)}. Every panel gets the same
    rows (the classes of all panels, in the paper's order, `exclude`d ones left out); each row
    label gives the class's count and share of the panel's kernels. Each kernel has its own
    colour scale centred at zero.
    """
    if not panels:
        raise ValueError("no panels to draw")
    data = {name: (_as_kernels(k), np.asarray(c).astype(str)) for name, (k, c) in panels.items()}
    for name, (k, c) in data.items():
        if len(k) != len(c):
            raise ValueError(f"panel {name!r}: {len(k)} kernels but {len(c)} class labels")
    order = [c for c in order_classes(np.concatenate([c for _, c in data.values()]).tolist()) if c not in exclude]
    if not order:
        raise ValueError("no class left to show")
    n = len(data)
    fig = Figure(figsize=(n * (2.2 + cell * per_class), cell * len(order) + 1.0), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(1, n, wspace=0.03)) if n > 1 else [fig]
    for sub, (name, (kernels, classes)) in zip(subs, data.items()):
        rows = class_rows(kernels, classes, per_class, seed, order)
        labels = [f"{display_name(c)}\nn={int((classes == c).sum())} ({100 * (classes == c).mean():.1f}%)"
                  for c, _ in rows]
        colours = [label_colour(c) for c, _ in rows]
        _rows_into(sub, [(lab, ks) for lab, (_, ks) in zip(labels, rows)], per_class, False, DIVERGING, colours)
        if n > 1:
            sub.suptitle(f"{name}\n({len(kernels)} kernels)", fontsize=9)
    if n == 1:   # one panel: the figure's title names it
        name, (kernels, _) = next(iter(data.items()))
        title = "\n".join(filter(None, [title, f"{name} ({len(kernels)} kernels)"]))
    if title:
        fig.suptitle(title, fontsize=10)
    if caption:
        fig.supxlabel(caption, fontsize=7)
    return fig


def centroid_figure(centroids, counts, title: str | None = None, names=None, centre: bool = False) -> Figure:
    """Appendix N: k-means centroids of 3×3 kernels with the number of kernels in each cluster.

    Min-max encoded centroids lie in [0, 1]; `centre` subtracts each centroid's mean so that the
    diverging colour map (zero at white) shows its shape: what is above and below its average.
    """
    cents = _as_kernels(centroids)
    if centre:
        cents = cents - cents.mean(axis=(1, 2), keepdims=True)
    counts = np.asarray(counts)
    if len(counts) != len(cents):
        raise ValueError(f"{len(cents)} centroids but {len(counts)} counts")
    total = counts.sum()
    caps = [f"n={int(n)} ({100 * n / total:.1f}%)" for n in counts]
    titles = [f"{names[i]}" if names is not None else f"cluster {i}" for i in range(len(cents))]
    return kernel_grid(cents, titles=titles, captions=caps, ncols=min(5, len(cents)), title=title, cell=1.5)


def cluster_titles(fit) -> list[str]:
    """One title per k-means cluster of `classify.kmeans_3x3`: its id, the DoG-family template it is
    named after ("Other" below the naming cosine) and their mean-centred cosine."""
    return [f"C{c}: {display_name(str(name))}\ncos {cos:.2f}" for c, (name, cos) in
            enumerate(zip(fit.names, fit.template_cosine))]


def cluster_legend(fit) -> tuple[dict, dict]:
    """(colours, labels) of the k-means clusters of `classify.kmeans_3x3`, keyed by cluster id,
    for `stacked_proportions`/`proportion_panels` on `prototype` columns; −1 is "degenerate"."""
    colours = {c: cluster_colour(c) for c in range(len(fit.names))}
    names = {c: f"C{c}: {display_name(str(fit.names[c]))} (cos {fit.template_cosine[c]:.2f})"
             for c in range(len(fit.names))}
    colours[-1], names[-1] = PALETTE[DEGENERATE], DISPLAY_NAMES[DEGENERATE]
    return colours, names
