"""Figure 4: the PCA scatter of kernels (static and interactive), with kernels of the clearest
clusters beside it. The numbers come from `kernels_lib.analysis.pca`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..vocab import display_name
from .kernels import _as_kernels, _rows_into
from .style import DIVERGING, cluster_colour

if TYPE_CHECKING:   # the numbers come from kernels_lib.analysis.pca; figures only need their fields
    from ..analysis.pca import KernelPCA


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


def template_names(templates: dict) -> dict[int, str]:
    """Cluster names for the PCA figures from `pca.cluster_templates`: "≈ On-centre DoG (cos 0.93)"."""
    return {int(c): f"≈ {display_name(merged)} (cos {cos:.2f})" for c, (merged, cos) in templates.items()}
