"""Every figure of the paper, as functions the notebooks call (the notebooks hold no plotting code).

Conventions, shared by all figures:

* kernels are drawn with a diverging colour map centred at zero (`vmin = -vmax`), so red is
  positive, blue negative and white zero whatever the kernel's scale;
* one palette (`PALETTE`) gives each cluster class the same colour in every figure, and
  `class_label` its readable name;
* figures are built on `matplotlib.figure.Figure` objects (no global pyplot state), saved
  atomically (temporary file + rename) so a crash never leaves a half-written PNG behind.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.colors import TwoSlopeNorm

#: Diverging colour map for kernel weights (red positive, blue negative, white zero).
DIVERGING = "RdBu_r"

#: Merged classes in the order figures list them (paper §5), then the catch-alls.
CLASS_ORDER = ["on", "off", "on-cross", "off-cross", "1st-derivative", "2nd-derivative",
               "on-square", "off-square", "other", "unclustered", "degenerate"]

#: Readable names of the classes.
CLASS_LABELS = {
    "on": "On-centre DoG",
    "off": "Off-centre DoG",
    "on-cross": "On-centre cross",
    "off-cross": "Off-centre cross",
    "1st-derivative": "1st derivative",
    "2nd-derivative": "2nd derivative",
    "on-square": "On-square",
    "off-square": "Off-square",
    "other": "Other",
    "unclustered": "Unclustered",
    "degenerate": "Degenerate (constant)",
}

#: One colour per class, used by every figure: warm for "on" patterns, cool for "off".
PALETTE = {
    "on": "#c0392b",
    "off": "#2471a3",
    "on-cross": "#e67e22",
    "off-cross": "#17a589",
    "1st-derivative": "#7d3c98",
    "2nd-derivative": "#d4ac0d",
    "on-square": "#8e4d1b",
    "off-square": "#5d6d7e",
    "other": "#a6a6a6",
    "unclustered": "#e5e5e5",
    "degenerate": "#4d4d4d",
}


def _merged(name: str) -> str:
    """The merged class of a (possibly fine-grained) class name, via `dog.merge_class` when it knows it."""
    if name in PALETTE:
        return name
    try:
        from .dog import merge_class
        merged = merge_class(name)
    except (ImportError, KeyError, ValueError):
        return name
    return merged if merged in PALETTE else name


def class_label(name: str) -> str:
    """Readable name of a class; fine-grained names (e.g. a derivative's orientation) keep their detail."""
    if name in CLASS_LABELS:
        return CLASS_LABELS[name]
    polarity, _, kind = name.partition("-")
    if polarity in ("on", "off") and kind.startswith("d") and set(kind[1:]) <= {"x", "y"} and kind[1:]:
        return f"{polarity.capitalize()}-centre ∂{kind[1:]}"
    merged = _merged(name)
    if merged in CLASS_LABELS and merged != name:
        detail = name[len(merged):].strip("-_ ") if name.startswith(merged) else name
        return f"{CLASS_LABELS[merged]} ({detail})" if detail else CLASS_LABELS[merged]
    return name.replace("-", " ").replace("_", " ").capitalize()


def class_color(name: str) -> str:
    """Colour of a class; fine-grained classes take their merged class's colour."""
    merged = _merged(name)
    if merged not in PALETTE:
        raise KeyError(f"no colour for class {name!r}; known classes: {', '.join(PALETTE)}")
    return PALETTE[merged]


def ordered_classes(names) -> list[str]:
    """Classes in the paper's order (CLASS_ORDER), unknown ones after, alphabetically."""
    names = list(dict.fromkeys(names))
    rank = {c: i for i, c in enumerate(CLASS_ORDER)}
    return sorted(names, key=lambda n: (rank.get(_merged(n), len(rank)), rank.get(n, len(rank)), n))


# ----------------------------------------------------------------------------- saving

def _atomic(path: Path | str, write) -> Path:
    """Call write(tmp_path), then rename onto `path`: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_figure(fig: Figure, path: Path | str, dpi: int = 150) -> Path:
    """Write a matplotlib figure (format from the suffix: .png, .svg, .pdf) atomically."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def save_html(fig, path: Path | str) -> Path:
    """Write a plotly figure as a self-contained HTML file (plotly.js embedded: works offline)."""
    return _atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True, full_html=True))


def _markdown_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|")
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def save_table(df: pd.DataFrame, name: str, output_dir: Path | str, floatfmt: str = ".2f") -> dict:
    """Write a table as `<output_dir>/tables/<name>.csv` and `.md`; returns both paths."""
    tables = Path(output_dir) / "tables"
    csv = _atomic(tables / f"{name}.csv", lambda tmp: df.to_csv(tmp, index=False))
    md = _atomic(tables / f"{name}.md", lambda tmp: Path(tmp).write_text(_markdown_table(df, floatfmt)))
    return {"csv": str(csv), "md": str(md)}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"refusing to record a non-finite number ({v}) in the results")
    return v


def save_results(results_dir: Path | str, notebook: str, data: dict) -> Path:
    """Record what a notebook produced (counts, files, scores) as `<results_dir>/<notebook>.json`."""
    text = json.dumps(_jsonable(data), indent=2, sort_keys=True)
    return _atomic(Path(results_dir) / f"{notebook}.json", lambda tmp: Path(tmp).write_text(text + "\n"))


# ----------------------------------------------------------------------------- kernels

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


def symmetric_limit(kernel: np.ndarray) -> float:
    """Colour limit v for vmin=-v, vmax=v: the largest |weight| (1 for an all-zero kernel)."""
    v = float(np.max(np.abs(kernel))) if np.size(kernel) else 0.0
    return v if v > 0 else 1.0


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
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import Normalize
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


def layer_rows(layers, per_row: int = 8, max_rows: int = 6, seed: int = 0, prefix: str = "",
               first_is_stem: bool = False) -> list[tuple[str, np.ndarray]]:
    """Random kernels of up to `max_rows` layers evenly spread over `layers` (each a `records.ConvLayer`).

    Each row is (label, up to `per_row` kernels [n, kh, kw]) drawn without replacement from all
    out×in/groups kernels of one layer. Labels read "<prefix>layer i/N (k×k)"; with
    `first_is_stem` the first layer is marked as the stem (it sees the RGB image).
    """
    layers = list(layers)
    if not layers:
        return []
    rng = np.random.default_rng(seed)
    pick = np.unique(np.round(np.linspace(0, len(layers) - 1, min(max_rows, len(layers)))).astype(int))
    rows = []
    for i in pick:
        layer = layers[i]
        kh, kw = layer.kernel_size
        flat = np.asarray(layer.weight, dtype=np.float64).reshape(-1, kh, kw)
        idx = np.sort(rng.choice(len(flat), min(per_row, len(flat)), replace=False))
        stem = ", stem" if first_is_stem and i == 0 else ""
        rows.append((f"{prefix}layer {i + 1}/{len(layers)}\n({kh}×{kw}{stem})", flat[idx]))
    return rows


# ----------------------------------------------------------------------------- DoG family

def dog_family_figure(fields: dict, extent: float, title: str | None = None, cmap: str = DIVERGING) -> Figure:
    """Figure 1: each field (name -> 2-D array on a square grid over [-extent, extent]²) as a 3-D
    surface (top row) and a 2-D map (bottom row), both coloured with zero at the centre of the map."""
    names = list(fields)
    if not names:
        raise ValueError("no fields to draw")
    n = len(names)
    fig = Figure(figsize=(2.6 * n, 5.4), layout="constrained")
    for i, name in enumerate(names):
        z = np.asarray(fields[name], dtype=np.float64)
        if z.ndim != 2 or not np.isfinite(z).all():
            raise ValueError(f"field {name!r} must be a finite 2-D array, got shape {z.shape}")
        lim = symmetric_limit(z)
        h, w = z.shape
        x, y = np.meshgrid(np.linspace(-extent, extent, w), np.linspace(-extent, extent, h))
        ax3 = fig.add_subplot(2, n, i + 1, projection="3d")
        ax3.plot_surface(x, y, z, cmap=cmap, norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim),
                         rcount=min(h, 60), ccount=min(w, 60), linewidth=0, antialiased=False)
        ax3.set_zlim(-lim, lim)
        ax3.set_xticks([])
        ax3.set_yticks([])
        ax3.set_zticks([])
        ax3.set_title(name, fontsize=9)
        ax2 = fig.add_subplot(2, n, n + i + 1)
        ax2.imshow(z, cmap=cmap, vmin=-lim, vmax=lim, extent=(-extent, extent, extent, -extent),
                   interpolation="bilinear")
        ax2.set_xlabel("x", fontsize=8)
        ax2.set_ylabel("y", fontsize=8)
        ax2.tick_params(labelsize=6)
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
    for c in (order if order is not None else ordered_classes(classes.tolist())):
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
    labels = [f"{class_label(c)}\n(n={int((classes == c).sum())})" if counts else class_label(c) for c, _ in rows]
    colours = [class_color(c) if _merged(c) in PALETTE else "black" for c, _ in rows]
    return kernel_rows([(lab, ks) for lab, (_, ks) in zip(labels, rows)], ncols=per_class, title=title,
                       row_colors=colours)


# ----------------------------------------------------------------------------- PCA (Figure 4)

@dataclass(frozen=True)
class KernelPCA:
    """PCA of centred, unit-length kernels and a k-means partition used to pick the clearest clusters.

    `index` maps rows back to the input (degenerate kernels are left out and counted);
    `cohesion[c]` is the mean cosine similarity of cluster c's kernels to its mean direction.
    """

    coords: np.ndarray            # [M, n_components]
    explained_variance_ratio: np.ndarray
    components: np.ndarray        # [n_components, kh*kw]
    index: np.ndarray             # [M] rows of the input
    n_degenerate: int
    cluster: np.ndarray           # [M] k-means cluster of each kernel
    cohesion: np.ndarray          # [n_clusters]
    sizes: np.ndarray             # [n_clusters]

    def clearest(self, n: int = 4, min_fraction: float = 0.02) -> list[int]:
        """The `n` most cohesive clusters among those holding at least `min_fraction` of the kernels."""
        big = np.flatnonzero(self.sizes >= min_fraction * self.sizes.sum())
        return big[np.argsort(-self.cohesion[big], kind="stable")][:n].tolist()


def kernel_pca(kernels, n_components: int = 3, n_clusters: int = 8, seed: int = 0) -> KernelPCA:
    """Centre each kernel and scale it to unit length (§4.1), then PCA and k-means on the result.

    Unit length makes the PCA see shapes, not magnitudes; k-means (seeded) only serves to
    name and sample the visible clusters.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from .preprocess import centre_normalise, degenerate_mask

    arr = np.asarray(kernels, dtype=np.float64)
    flat = arr.reshape(len(arr), -1)
    bad = degenerate_mask(flat)
    keep = np.flatnonzero(~bad)
    if len(keep) < max(n_components, n_clusters):
        raise ValueError(f"only {len(keep)} usable kernels ({int(bad.sum())} degenerate); "
                         f"need at least {max(n_components, n_clusters)} for {n_components} components "
                         f"and {n_clusters} clusters")
    unit = centre_normalise(flat[keep])
    pca = PCA(n_components=n_components, random_state=seed).fit(unit)
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(unit)
    labels = km.labels_
    cohesion = np.zeros(n_clusters)
    sizes = np.bincount(labels, minlength=n_clusters)
    for c in range(n_clusters):
        members = unit[labels == c]
        mean = members.mean(axis=0)
        norm = np.linalg.norm(mean)
        cohesion[c] = float((members @ (mean / norm)).mean()) if norm > 0 else 0.0
    return KernelPCA(pca.transform(unit), pca.explained_variance_ratio_, pca.components_, keep,
                     int(bad.sum()), labels, cohesion, sizes)


def cluster_template_names(result: KernelPCA, kernels, bank=None) -> dict[int, str]:
    """Name each k-means cluster by the analytic template nearest to its mean direction
    ("≈ On-centre DoG (cos 0.93)"), using `dog.template_bank` of the kernels' size."""
    from . import dog
    from .preprocess import centre_normalise

    arr = np.asarray(kernels, dtype=np.float64)
    unit = centre_normalise(arr[result.index].reshape(len(result.index), -1))
    bank = bank if bank is not None else dog.template_bank(arr.shape[1])
    means = np.stack([unit[result.cluster == c].mean(axis=0) for c in range(len(result.sizes))])
    match = dog.nearest_template(means.reshape(-1, *arr.shape[1:]), bank)
    return {c: f"≈ {class_label(str(match.merged[c]))} (cos {match.cosine[c]:.2f})" for c in range(len(means))}


_CLUSTER_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
                    "#666666", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"]


def cluster_colour(c: int) -> str:
    """Colour of k-means cluster c (k-means clusters are not classes, so not the class palette)."""
    return _CLUSTER_COLOURS[c % len(_CLUSTER_COLOURS)]


def pca_figure(result: KernelPCA, kernels, cluster_names: dict | None = None, n_clusters_shown: int = 4,
               per_cluster: int = 6, seed: int = 0, title: str | None = None, max_points: int = 20000) -> Figure:
    """Figure 4 (static): 3-D PCA scatter coloured by k-means cluster, and beside it random
    kernels of the `n_clusters_shown` clearest clusters."""
    arr = _as_kernels(kernels)
    rng = np.random.default_rng(seed)
    names = cluster_names or {}
    fig = Figure(figsize=(13, 6.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1], wspace=0.02)
    ax = left.add_subplot(projection="3d")
    show = np.arange(len(result.coords))
    if len(show) > max_points:
        show = np.sort(rng.choice(show, max_points, replace=False))
    ax.scatter(*result.coords[show, :3].T, c=[cluster_colour(c) for c in result.cluster[show]],
               s=10 if len(show) <= 5000 else 3, alpha=0.75, linewidths=0)
    ev = result.explained_variance_ratio
    for setter, i in ((ax.set_xlabel, 0), (ax.set_ylabel, 1), (ax.set_zlabel, 2)):
        setter(f"PC{i + 1} ({100 * ev[i]:.1f}% var.)", fontsize=8)
    ax.tick_params(labelsize=6)
    handles = []
    from matplotlib.lines import Line2D
    for c in np.argsort(-result.sizes):
        lab = f"C{c}: {names.get(int(c), '')} (n={int(result.sizes[c])})".replace(":  (", " (")
        handles.append(Line2D([], [], marker="o", ls="", color=cluster_colour(int(c)), label=lab))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    left.suptitle(f"PCA of {len(result.coords)} centred unit-length kernels "
                  f"({100 * ev[:3].sum():.1f}% of variance in 3 PCs)", fontsize=9)
    shown = result.clearest(n_clusters_shown)
    rows = []
    for c in shown:
        members = result.index[result.cluster == c]
        pick = np.sort(rng.choice(members, min(per_cluster, len(members)), replace=False))
        name = f"\n{names[c]}" if names.get(c) else ""
        rows.append((f"C{c}{name}\ncohesion {result.cohesion[c]:.2f}", arr[pick]))
    if rows:
        _rows_into(right, rows, per_cluster, False, DIVERGING, [cluster_colour(c) for c in shown])
    right.suptitle(f"random kernels of the {len(rows)} most cohesive clusters", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _hover_values(kernel: np.ndarray, scale: float = 100.0) -> str:
    """A kernel as rows of weights ×scale, aligned for a monospace hover box."""
    return "<br>".join(" ".join(f"{v:+5.0f}" for v in row) for row in np.round(kernel * scale) + 0.0)


def pca_scatter_html(result: KernelPCA, kernels, meta: pd.DataFrame, cluster_names: dict | None = None,
                     title: str = "PCA of depthwise kernels", max_points: int = 20000, seed: int = 0):
    """Figure 4 (interactive): plotly 3-D scatter; hovering a point shows its model, layer,
    channel and the kernel's weights ×100 laid out as the kernel. `meta` holds one row per
    input kernel (columns model, layer, channel at least)."""
    import plotly.graph_objects as go

    arr = _as_kernels(kernels)
    for col in ("model", "layer", "channel"):
        if col not in meta.columns:
            raise ValueError(f"meta needs a {col!r} column (got {list(meta.columns)})")
    if len(meta) != len(arr):
        raise ValueError(f"{len(arr)} kernels but {len(meta)} metadata rows")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(result.coords))
    if len(rows) > max_points:
        rows = np.sort(rng.choice(rows, max_points, replace=False))
    names = cluster_names or {}
    ev = result.explained_variance_ratio
    fig = go.Figure()
    for c in np.argsort(-result.sizes):
        sel = rows[result.cluster[rows] == c]
        src = result.index[sel]
        m = meta.iloc[src]
        hover = [f"<b>{mo}</b><br>layer {la}, channel {ch}<br>weights ×100:<br>{_hover_values(arr[i])}"
                 for mo, la, ch, i in zip(m["model"], m["layer"], m["channel"], src)]
        label = f"C{c} {names.get(int(c), '')} (n={int(result.sizes[c])})"
        fig.add_trace(go.Scatter3d(x=result.coords[sel, 0], y=result.coords[sel, 1], z=result.coords[sel, 2],
                                   mode="markers", name=label, text=hover, hovertemplate="%{text}<extra></extra>",
                                   marker=dict(size=2.5, color=cluster_colour(int(c)), opacity=0.7)))
    fig.update_layout(title=title, hoverlabel=dict(font_family="monospace", font_size=11),
                      scene=dict(xaxis_title=f"PC1 ({100 * ev[0]:.1f}%)", yaxis_title=f"PC2 ({100 * ev[1]:.1f}%)",
                                 zaxis_title=f"PC3 ({100 * ev[2]:.1f}%)"),
                      legend=dict(itemsizing="constant"), margin=dict(l=0, r=0, t=40, b=0))
    return fig


# ----------------------------------------------------------------------------- proportions, activation

def _check_props(props: pd.DataFrame) -> None:
    """Rows are bars and must exist; a row with no class column (nothing clustered) is an empty bar."""
    if len(props) == 0:
        raise ValueError("no proportions to plot")
    if not np.isfinite(props.to_numpy(dtype=float)).all():
        raise ValueError("proportions hold NaN/inf")


def _stacked_bars(ax, props: pd.DataFrame, horizontal: bool, colors=None, labels=None) -> None:
    """Draw one stacked bar per row of `props` into `ax`; classes (columns) take `colors`/`labels`
    when given (e.g. k-means clusters), else the class palette and readable names."""
    n = len(props)
    pos = np.arange(n)
    base = np.zeros(n)
    for c in props.columns:
        vals = props[c].to_numpy(dtype=float)
        kw = dict(color=(colors or {}).get(c) or class_color(c), label=(labels or {}).get(c) or class_label(c),
                  edgecolor="white", linewidth=0.3)
        if horizontal:
            ax.barh(pos, vals, left=base, **kw)
        else:
            ax.bar(pos, vals, bottom=base, **kw)
        base += vals
    ticks = [str(i) for i in props.index]
    if horizontal:
        ax.set_yticks(pos, ticks, fontsize=8)
        ax.set_ylim(n - 0.4, -0.6)
        ax.set_xlim(0, 1)
    else:
        ax.set_xticks(pos, ticks, fontsize=7, rotation=0 if n <= 40 else 90)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, n - 0.4)


def stacked_proportions(props: pd.DataFrame, title: str | None = None, xlabel: str = "layer",
                        ylabel: str = "proportion of kernels", horizontal: bool = False,
                        legend_title: str = "class", colors: dict | None = None,
                        labels: dict | None = None, totals: bool = False) -> Figure:
    """Figures 7/8/11/28/33–38: stacked bars of class proportions, one bar per row of `props`
    (rows: layers or models, columns: classes, as `analysis.layer_proportions` /
    `analysis.model_proportions` give them; `paper_bars` drops "unclustered" and "degenerate"
    for the paper's bars). `colors`/`labels` name columns that are not classes (k-means clusters);
    `totals` writes each bar's total (as a %) at its end."""
    _check_props(props)
    n = len(props)
    width = max(6.0, 0.32 * n + 3.0) if not horizontal else 8.0
    height = 4.2 if not horizontal else max(2.5, 0.35 * n + 1.5)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    _stacked_bars(ax, props, horizontal, colors, labels)
    if totals:
        for i, v in enumerate(props.sum(axis=1).to_numpy(dtype=float)):
            xy, align = ((v + 0.01, i), dict(va="center", ha="left")) if horizontal else ((i, v + 0.01), dict(ha="center", va="bottom"))
            ax.text(*xy, f"{100 * v:.1f}%", fontsize=6.5, color="dimgrey", **align)
    ax.set_xlabel(ylabel if horizontal else xlabel)
    ax.set_ylabel(xlabel if horizontal else ylabel)
    ax.legend(title=legend_title, fontsize=7, title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
              frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def total_activation_boxes(table: pd.DataFrame, class_col: str = "class", value_col: str = "total_activation",
                           title: str | None = None, group_col: str | None = None,
                           ylabel: str = "total activation (sum of weights)", groups=None) -> Figure:
    """Figure 10: box plots of the total activation (sum of weights) of the kernels of each class.

    With `group_col` (e.g. trained vs random-init) each class gets one box per group side by
    side, the first group solid, the others hatched, and a legend names the groups with their
    number of kernels; `groups` fixes their order and keeps a group without rows in the legend.
    """
    for col in (class_col, value_col) + ((group_col,) if group_col else ()):
        if col not in table.columns:
            raise ValueError(f"table needs a {col!r} column (got {list(table.columns)})")
    vals = table[value_col].to_numpy(dtype=float)
    if not np.isfinite(vals).all():
        raise ValueError(f"{value_col} holds NaN/inf; drop degenerate kernels first")
    classes = ordered_classes(table[class_col].unique())
    if not classes:
        raise ValueError("no classes to plot")
    if group_col:
        groups = list(groups) if groups is not None else list(pd.unique(table[group_col]))
        unknown = set(table[group_col]) - set(groups)
        if unknown:
            raise ValueError(f"rows of groups {sorted(map(str, unknown))} not in groups={groups}")
    else:
        groups = [None]
    drawn = [g for g in groups if g is None or (table[group_col] == g).any()]  # boxes share the slot
    width = 0.75 / max(1, len(drawn))
    fig = Figure(figsize=(max(5.0, (0.7 + 0.45 * len(drawn)) * len(classes) + 1.5), 4.4), layout="constrained")
    ax = fig.subplots()
    counts = []
    for j, g in enumerate(groups):
        sub = table if g is None else table[table[group_col] == g]
        data = [sub.loc[sub[class_col] == c, value_col].to_numpy(dtype=float) for c in classes]
        counts.append([len(d) for d in data])
        keep = [i for i, d in enumerate(data) if len(d)]
        if not keep:
            continue
        slot = drawn.index(g)
        pos = np.arange(1, len(classes) + 1, dtype=float)[keep] + (slot - (len(drawn) - 1) / 2) * width
        box = ax.boxplot([data[i] for i in keep], positions=pos, patch_artist=True, showfliers=True,
                         widths=0.9 * width, flierprops=dict(markersize=2, alpha=0.4),
                         medianprops=dict(color="black"), manage_ticks=False)
        for patch, i in zip(box["boxes"], keep):
            patch.set_facecolor(class_color(classes[i]))
            patch.set_alpha(0.85 if j == 0 else 0.45)
            if j:
                patch.set_hatch("////"[:j + 1])
    ax.axhline(0.0, color="black", lw=0.6, ls="--")
    ns = ["/".join(str(c[i]) for c in counts) for i in range(len(classes))]
    ax.set_xticks(np.arange(1, len(classes) + 1), [f"{class_label(c)}\n(n={n})" for c, n in zip(classes, ns)],
                  fontsize=7, rotation=30, ha="right")
    ax.set_xlim(0.4, len(classes) + 0.6)
    ax.set_ylabel(ylabel)
    if group_col:
        from matplotlib.patches import Patch
        handles = [Patch(facecolor="#bbbbbb", alpha=0.85 if j == 0 else 0.45, hatch="////"[:j + 1] if j else None,
                         label=f"{g} ({sum(counts[j])} kernels)") for j, g in enumerate(groups)]
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  title="n = " + " / ".join(str(g) for g in groups) if len(groups) > 1 else None, title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
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


# ----------------------------------------------------------------------------- classification results (notebooks 09–13)

#: Proportion columns that are not clusters: the paper's bars leave them out, so bars do not reach 1.
NOT_CLUSTERED = ("unclustered", "degenerate")


def paper_bars(props: pd.DataFrame) -> pd.DataFrame:
    """Proportions without the "unclustered"/"degenerate" columns: the height of a bar is then the
    share of its kernels that were clustered, as in the paper's Figures 7/8/11."""
    return props.drop(columns=[c for c in NOT_CLUSTERED if c in props.columns])


def is_random_init(weights_tag: str) -> bool:
    """Whether a weights tag is a random-init twin's (the untrained control, see kernels_lib.zoo)."""
    from .analysis import RANDOM_INIT_PREFIX

    return str(weights_tag).startswith(RANDOM_INIT_PREFIX)


def _twin_mask(tags: pd.Series) -> pd.Series:
    """`is_random_init` of a whole column at once."""
    from .analysis import RANDOM_INIT_PREFIX

    return tags.astype(str).str.startswith(RANDOM_INIT_PREFIX)


def name_list(names, limit: int = 4) -> str:
    """"a, b and c" or "a, b, c, d and 5 more": model lists in titles stay one line long."""
    names = [str(n) for n in names]
    if not names:
        return "no model"
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Selection:
    """Rows of a classification chosen for a figure, and the words its title needs.

    `what` says which kernels they are ("tf_efficientnet_lite2, trained"; "all trained 5×5
    kernels of 14 models"); `note` says why, when the asked-for model was not available.
    """

    rows: pd.DataFrame
    kernel_size: int
    models: list
    trained: bool
    what: str
    note: str = ""

    @property
    def title(self) -> str:
        return self.what + (f" ({self.note})" if self.note else "")


def _size_rows(results: pd.DataFrame, kernel_size: int) -> pd.DataFrame:
    k = int(kernel_size)
    return results[(results["kh"] == k) & (results["kw"] == k)]


def select_kernels(results: pd.DataFrame, kernel_size: int, model=None, fallback: str = "pool") -> Selection:
    """The trained k×k kernels of `model`, or what the set has instead, said out loud.

    `results`: a classification, or any table with model, weights_tag, kh, kw columns (the
    kernel database's). `model`: a name, or a list of names of which the first one present
    with trained k×k kernels is taken. If none is (e.g. the paper's ConvNeXtV2-tiny in the
    offline set, where only its random-init twin is), `fallback` decides: "pool" takes every
    trained k×k kernel of the set, "largest" the trained model with most k×k kernels. If the
    set has no trained k×k kernels at all, the random-init twins stand in and `trained` is False.
    Raises ValueError when there are no k×k kernels at all.
    """
    candidates = [model] if isinstance(model, str) else list(model or [])
    if fallback not in ("pool", "largest"):
        raise ValueError(f"fallback must be 'pool' or 'largest', got {fallback!r}")
    k = int(kernel_size)
    rows = _size_rows(results, k)
    if rows.empty:
        sizes = sorted({f"{a}×{b}" for a, b in zip(results["kh"], results["kw"])})
        raise ValueError(f"no {k}×{k} kernels in the classification (sizes present: {', '.join(sizes) or 'none'})")
    twin = rows["weights_tag"].pipe(_twin_mask).to_numpy()
    trained = rows[~twin]
    present = set(trained["model"])
    for name in candidates:
        if name in present:
            return Selection(trained[trained["model"] == name], k, [name], True, f"{name}, trained")
    note = ""
    if candidates:
        note = f"{' / '.join(candidates)}: no trained {k}×{k} kernels in this set"
    if trained.empty:
        pool = rows[twin]
        stand_in = [name for name in candidates if (pool["model"] == name).any()]
        if stand_in:
            pool = pool[pool["model"] == stand_in[0]]
        note = f"no trained {k}×{k} kernels in this set: random-init twins instead"
        models = sorted(pool["model"].unique())
        return Selection(pool, k, models, False, f"{name_list(models)}, random init", note)
    if fallback == "largest":
        best = trained.groupby("model").size().sort_values(ascending=False, kind="stable").index[0]
        return Selection(trained[trained["model"] == best], k, [best], True, f"{best}, trained", note)
    models = sorted(trained["model"].unique())
    what = (f"{models[0]}, trained" if len(models) == 1 else
            f"all trained {k}×{k} kernels of the set ({len(models)} models)")
    return Selection(trained, k, models, True, what, note)


def twins_of(selection: Selection, results: pd.DataFrame) -> Selection | None:
    """The random-init twins of a trained selection's models (same kernel size): the untrained
    control. None when the selection is not trained or no model has a twin."""
    if not selection.trained:
        return None
    rows = _size_rows(results, selection.kernel_size)
    rows = rows[rows["weights_tag"].pipe(_twin_mask) & rows["model"].isin(selection.models)]
    if rows.empty:
        return None
    models = sorted(rows["model"].unique())
    what = f"{models[0]}, random init" if len(models) == 1 else f"their random-init twins ({len(models)} models)"
    return Selection(rows, selection.kernel_size, models, False, what)


@dataclass(frozen=True)
class ModelPair:
    """One trained model's k×k classification rows and those of its random-init twin (None without one)."""

    model: str
    weights_tag: str
    kernel_size: int
    rows: pd.DataFrame
    twin_tag: str | None = None
    twin_rows: pd.DataFrame | None = None


def model_pairs(results: pd.DataFrame, kernel_size: int, models=None) -> list[ModelPair]:
    """Every trained model with k×k kernels in `results` (or only those named in `models`), with
    its random-init twin, in name order. A model present only as a twin is left out: it has no
    trained kernels to compare."""
    rows = _size_rows(results, kernel_size)
    wanted = None if not models else set([models] if isinstance(models, str) else models)
    pairs = []
    for (model, tag), sub in rows.groupby(["model", "weights_tag"], sort=True):
        if is_random_init(tag) or (wanted is not None and model not in wanted):
            continue
        twins = rows[(rows["model"] == model) & rows["weights_tag"].pipe(_twin_mask)]
        twin_tag = sorted(twins["weights_tag"].unique())[0] if len(twins) else None
        pairs.append(ModelPair(model, tag, int(kernel_size), sub, twin_tag,
                               twins[twins["weights_tag"] == twin_tag] if twin_tag else None))
    if wanted is not None and not pairs:
        raise ValueError(f"none of {sorted(wanted)} has trained {kernel_size}×{kernel_size} kernels in the "
                         f"classification; models present: {sorted(rows['model'].unique())}")
    return pairs


def kernels_of(rows: pd.DataFrame, db) -> np.ndarray:
    """The raw weights [N, k, k] of classification rows (one kernel size), read from the kernel
    database `db` (a directory or file of `kernels_lib.store`), matched on model, weights,
    layer and channel."""
    from . import store

    if rows.empty:
        raise ValueError("no rows to fetch kernels for")
    shapes = rows[["kh", "kw"]].drop_duplicates()
    if len(shapes) != 1:
        raise ValueError(f"rows hold several kernel sizes {shapes.values.tolist()}; select one size first")
    kh, kw = (int(v) for v in shapes.iloc[0])
    keys = ["model", "weights_tag", "layer", "channel"]
    meta, kernels = store.read_kernel_array(db, (kh, kw), models=sorted(rows["model"].unique()),
                                            weights_tags=sorted(rows["weights_tag"].unique()), columns=keys)
    where = pd.MultiIndex.from_frame(meta[keys]).get_indexer(pd.MultiIndex.from_frame(rows[keys]))
    if (where < 0).any():
        missing = rows[keys][where < 0].drop_duplicates(["model", "weights_tag"])
        raise ValueError(f"{int((where < 0).sum())} classified kernels are not in the database {db} "
                         f"(e.g. {missing.iloc[0].to_dict()}); the classification was made from another "
                         "database: re-run notebook 07 on this one")
    return kernels[where]


def _label_colour(name: str) -> str:
    """Colour of a class's name written on white: its palette colour, darkened where that is too pale to read."""
    from matplotlib.colors import to_rgb

    if _merged(name) not in PALETTE:
        return "black"
    rgb = np.array(to_rgb(class_color(name)))
    luminance = float(rgb @ [0.2126, 0.7152, 0.0722])
    return tuple(rgb * 0.55 / luminance) if luminance > 0.55 else tuple(rgb)


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
    order = [c for c in ordered_classes(np.concatenate([c for _, c in data.values()]).tolist()) if c not in exclude]
    if not order:
        raise ValueError("no class left to show")
    n = len(data)
    fig = Figure(figsize=(n * (2.2 + cell * per_class), cell * len(order) + 1.0), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(1, n, wspace=0.03)) if n > 1 else [fig]
    for sub, (name, (kernels, classes)) in zip(subs, data.items()):
        rows = class_rows(kernels, classes, per_class, seed, order)
        labels = [f"{class_label(c)}\nn={int((classes == c).sum())} ({100 * (classes == c).mean():.1f}%)"
                  for c, _ in rows]
        colours = [_label_colour(c) for c, _ in rows]
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


def proportion_panels(panels: dict, title: str | None = None, xlabel: str = "depthwise layer",
                      ylabel: str = "proportion of kernels", legend_title: str = "class",
                      colors: dict | None = None, labels: dict | None = None) -> Figure:
    """Stacked-bar panels one above the other with one legend: e.g. a trained model's per-layer
    proportions (Figures 7/8) over those of its random-init twin, same layers, same scale.

    panels: {panel title: proportions (rows: bars, columns: classes)}.
    """
    if not panels:
        raise ValueError("no panels to draw")
    for props in panels.values():
        _check_props(props)
    n = max(len(p) for p in panels.values())
    fig = Figure(figsize=(max(6.0, 0.32 * n + 3.0), 2.9 * len(panels) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False).ravel())
    columns = []
    for ax, (name, props) in zip(axes, panels.items()):
        _stacked_bars(ax, props, False, colors, labels)
        ax.set_xlim(-0.6, n - 0.4)
        if not props.to_numpy(dtype=float).any():
            ax.text(0.5, 0.5, "no kernel clustered", transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="grey")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(name, fontsize=9)
        columns += [c for c in props.columns if c not in columns]
    axes[-1].set_xlabel(xlabel)
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=(colors or {}).get(c) or class_color(c), label=(labels or {}).get(c) or class_label(c))
               for c in columns]
    fig.legend(handles=handles, title=legend_title, fontsize=7, title_fontsize=8, loc="outside right center",
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def model_comparison(results: pd.DataFrame, kernel_size: int, class_col: str = "merged") -> pd.DataFrame:
    """Figures 11/28: per model, the share of each class among its k×k kernels, rows labelled
    by model name, each trained model followed by its random-init twin ("… (random init)");
    a model with several trained weights names them. Built on `analysis.model_proportions`."""
    from . import analysis

    rows = _size_rows(results, kernel_size)
    props = analysis.model_proportions(rows, kernel_size=kernel_size, class_col=class_col,
                                       clustering=rows["clustering"].iloc[0] if len(rows) else analysis.AUTOENCODER)
    pairs = rows[["model", "weights_tag"]].drop_duplicates()
    tags_per_model = pairs[~pairs["weights_tag"].pipe(_twin_mask)].groupby("model").size()
    order, names = [], []
    for model, tag in sorted(zip(pairs["model"], pairs["weights_tag"]), key=lambda mt: (mt[0], is_random_init(mt[1]), mt[1])):
        order.append(f"{model}.{tag}")
        if is_random_init(tag):
            names.append(f"{model} (random init)")
        else:
            names.append(model + (f" [{tag}]" if tags_per_model.get(model, 0) > 1 else ""))
    out = props.loc[order]
    out.index = pd.Index(names, name="model")
    return out


def activation_table(selections: dict, normalise: bool = False, include_unclustered: bool = False) -> pd.DataFrame:
    """Figure 10's data: the clustered, non-degenerate rows of each selection ({group: Selection}),
    with a `group` column and `activation`: the sum of the weights Σᵢ wᵢ, or with `normalise`
    the scale-free Σᵢ wᵢ / ‖w‖₂ (in [−k, k]), which kernels of differently scaled models share."""
    parts = []
    for group, sel in selections.items():
        rows = sel.rows[~sel.rows["degenerate"].astype(bool)]
        if not include_unclustered:
            rows = rows[rows["clustered"].astype(bool)]
        value = rows["total_activation"].to_numpy(dtype=float)
        if normalise:
            value = value / rows["norm"].to_numpy(dtype=float)
        parts.append(rows.assign(group=group, activation=value))
    if not parts:
        raise ValueError("no selections given")
    return pd.concat(parts, ignore_index=True)


def activation_stats(table: pd.DataFrame, class_col: str = "merged") -> dict:
    """{group: count, mean, std and quartiles of `activation` per class} (via `analysis.activation_by_class`)."""
    from . import analysis

    out = {}
    for group, rows in table.groupby("group", sort=False):
        stats = analysis.activation_by_class(rows.assign(total_activation=rows["activation"]), class_col=class_col,
                                             clustering=rows["clustering"].iloc[0], include_unclustered=True)
        out[str(group)] = stats.set_index("class").to_dict(orient="index")
    return out


def weight_groups(rows: pd.DataFrame, selection: Selection) -> dict:
    """{"trained": (weights tag, rows), "random init": (twin's tag, rows)} of one model's rows of a
    classification, for the selection's (first) model; only "random init" when the selection
    is itself the random-init stand-in, and no "random init" when the model has no twin."""
    model = selection.models[0]
    mine = rows[(rows["model"] == model) & rows["kh"].isin([selection.kernel_size])]
    tags = sorted(mine["weights_tag"].unique(), key=lambda t: (is_random_init(t), t))
    trained = [t for t in tags if not is_random_init(t)] if selection.trained else []
    twin = [t for t in tags if is_random_init(t)]
    groups = {}
    if trained:
        groups["trained"] = (trained[0], mine[mine["weights_tag"] == trained[0]])
    if twin:
        groups["random init"] = (twin[0], mine[mine["weights_tag"] == twin[0]])
    if not groups:
        raise ValueError(f"no {selection.kernel_size}×{selection.kernel_size} rows of {model} in the classification")
    return groups


def cluster_sizes(fit) -> np.ndarray:
    """Kernels in each cluster of a `classify.kmeans_3x3` fit (degenerate kernels are in none)."""
    return np.bincount(fit.code_index[~fit.degenerate], minlength=len(fit.names))


def cluster_titles(fit) -> list[str]:
    """One title per k-means cluster of `classify.kmeans_3x3`: its id, the DoG-family template it is
    named after ("Other" below the naming cosine) and their mean-centred cosine."""
    return [f"C{c}: {class_label(str(name))}\ncos {cos:.2f}" for c, (name, cos) in
            enumerate(zip(fit.names, fit.template_cosine))]


def cluster_legend(fit) -> tuple[dict, dict]:
    """(colours, labels) of the k-means clusters of `classify.kmeans_3x3`, keyed by cluster id,
    for `stacked_proportions`/`proportion_panels` on `prototype` columns; −1 is "degenerate"."""
    colours = {c: cluster_colour(c) for c in range(len(fit.names))}
    names = {c: f"C{c}: {class_label(str(fit.names[c]))} (cos {fit.template_cosine[c]:.2f})"
             for c in range(len(fit.names))}
    colours[-1], names[-1] = PALETTE["degenerate"], CLASS_LABELS["degenerate"]
    return colours, names


def file_stem(name: str) -> str:
    """A figure file name from a model name or label: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    import re

    return re.sub(r"[^\w.-]+", "_", str(name)).strip("_") or "figure"
