"""Bars and boxes of class proportions and totals: per layer (Figures 7/8, 33–38), per model
(Figures 11/28), % clustered per model (Tables 1/3/4), total activation (Figure 10)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ..vocab import display_name, order_classes
from .style import class_color, label_colour

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
        kw = dict(color=(colors or {}).get(c) or class_color(c), label=(labels or {}).get(c) or display_name(c),
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
    handles = [Patch(facecolor=(colors or {}).get(c) or class_color(c), label=(labels or {}).get(c) or display_name(c))
               for c in columns]
    fig.legend(handles=handles, title=legend_title, fontsize=7, title_fontsize=8, loc="outside right center",
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


#: Box colours of the groups of `total_activation_boxes` (trained, random init, …).
GROUP_SHADES = ["#5d6d7e", "#d5d8dc", "#a9cce3", "#f5cba7"]


def total_activation_boxes(table: pd.DataFrame, class_col: str = "class", value_col: str = "total_activation",
                           title: str | None = None, group_col: str | None = None,
                           ylabel: str = "total activation (sum of weights)", groups=None) -> Figure:
    """Figure 10: box plots (seaborn) of the total activation (sum of weights) of each class's kernels.

    Each box takes its class's colour. With `group_col` (e.g. trained vs random init) and rows in
    more than one group, each class gets one box per group side by side, coloured by group (the
    class names keep their colours); the legend gives each group's number of kernels, and `groups`
    fixes their order and keeps a group without rows (an untrained control with nothing clustered).
    """
    import seaborn as sns

    for col in (class_col, value_col) + ((group_col,) if group_col else ()):
        if col not in table.columns:
            raise ValueError(f"table needs a {col!r} column (got {list(table.columns)})")
    if not np.isfinite(table[value_col].to_numpy(dtype=float)).all():
        raise ValueError(f"{value_col} holds NaN/inf; drop degenerate kernels first")
    classes = order_classes(table[class_col].unique())
    if not classes:
        raise ValueError("no classes to plot")
    data = table.assign(**{class_col: table[class_col].astype(str)})
    groups = (list(groups) if groups is not None else list(pd.unique(table[group_col]))) if group_col else []
    unknown = set(table[group_col]) - set(groups) if group_col else set()
    if unknown:
        raise ValueError(f"rows of groups {sorted(map(str, unknown))} not in groups={groups}")
    fig = Figure(figsize=(max(5.0, (0.7 + 0.45 * max(1, len(groups))) * len(classes) + 1.5), 4.4), layout="constrained")
    ax = fig.subplots()
    common = dict(data=data, x=class_col, y=value_col, order=classes, ax=ax, fliersize=2, linewidth=0.8,
                  medianprops=dict(color="black"))
    drawn = [g for g in groups if (data[group_col] == g).any()] if group_col else []
    shades = dict(zip(groups, GROUP_SHADES if len(drawn) > 1 else ["#bbbbbb"] * len(groups)))
    if len(drawn) > 1:      # boxes side by side, coloured by group
        sns.boxplot(hue=group_col, hue_order=groups, palette=shades, **common)
    else:                   # one box per class, in the class's colour
        sns.boxplot(hue=class_col, hue_order=classes, palette={c: class_color(c) for c in classes}, legend=False,
                    **common)
    if group_col:
        sizes = data.groupby(group_col).size()
        handles = [Patch(facecolor=shades[g], edgecolor="black", label=f"{g} ({int(sizes.get(g, 0))} kernels)")
                   for g in groups]
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  title="n = " + " / ".join(str(g) for g in groups) if len(groups) > 1 else None, title_fontsize=7)
        counts = pd.crosstab(data[class_col], data[group_col]).reindex(index=classes, columns=groups, fill_value=0)
        ns = ["/".join(str(int(v)) for v in counts.loc[c]) for c in classes]
    else:
        ns = [str(int((data[class_col] == c).sum())) for c in classes]
    ax.axhline(0.0, color="black", lw=0.6, ls="--")
    ax.set_xticks(np.arange(len(classes)), [f"{display_name(c)}\n(n={n})" for c, n in zip(classes, ns)],
                  fontsize=7, rotation=30, ha="right")
    for tick, c in zip(ax.get_xticklabels(), classes):
        tick.set_color(label_colour(c))
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def clustered_bars(table: pd.DataFrame, title: str | None = None) -> Figure:
    """% of kernels clustered per model (`tables.clustered_fraction`), paper's % beside where known.

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
        undefined = not np.isfinite(v)     # no usable kernel: no % to show
        ax.text(0.8 if undefined else v + 0.8, yi, "undefined (no usable kernel)" if undefined else f"{v:.1f}%",
                va="center", fontsize=7, color="grey" if undefined else "black")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("kernels clustered (%)")
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_title(title or "Share of depthwise kernels clustered", fontsize=10)
    return fig


def interactive_layer_bars(panels: dict, title: str | None = None, xlabel: str = "depthwise layer"):
    """Figures 7/8 as a plotly figure: for each panel (title → (proportions, kernels per layer or
    None), e.g. a model's trained weights and its random-init twin) one stacked bar per layer
    (row of `tables.layer_proportions`), one colour per class. Hovering a segment gives the layer,
    the class, its share and how many kernels the layer has; clicking a legend entry hides that
    class in every panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not panels:
        raise ValueError("no panels to plot")
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=list(panels))
    shown = set()
    for row, (props, counts) in enumerate(panels.values(), 1):
        _check_props(props)
        layers = [str(i) for i in props.index]
        total = None if counts is None else [int(counts.get(i, 0)) for i in props.index]
        for c in props.columns:
            name = display_name(c)
            fig.add_trace(go.Bar(
                x=layers, y=props[c].to_numpy(dtype=float), name=name, marker_color=class_color(c),
                legendgroup=str(c), showlegend=c not in shown, customdata=total,
                hovertemplate=f"layer %{{x}}<br>{name}: %{{y:.1%}}" + (" of %{customdata} kernels" if total else "")
                              + "<extra></extra>"), row=row, col=1)
            shown.add(c)
        fig.update_yaxes(title_text="share of kernels", tickformat=".0%", range=[0, 1], row=row, col=1)
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=xlabel, row=len(panels), col=1)
    fig.update_layout(barmode="stack", title=title, height=260 + 240 * len(panels),
                      margin=dict(l=60, r=20, t=90, b=50))
    return fig
