"""Conventions every figure shares, and how figures are saved.

* kernels are drawn with a diverging colour map centred at zero (`vmin = -vmax`), so red is
  positive, blue negative and white zero whatever the kernel's scale (`DIVERGING`, `symmetric_limit`);
* one palette (`PALETTE`) gives each class the same colour in every figure; class names and
  their order come from `kernels_lib.vocab`; k-means clusters, which are not classes, have
  colours of their own (`cluster_colour`);
* figures are `matplotlib.figure.Figure` objects (no global pyplot state), saved atomically
  (`kernels_lib.fileio`) so a crash never leaves a half-written PNG behind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from ..fileio import atomic_write
from ..vocab import merge_class

#: Diverging colour map for kernel weights (red positive, blue negative, white zero).
DIVERGING = "RdBu_r"


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


def class_color(name: str) -> str:
    """Colour of a class; fine-grained classes take their merged class's colour."""
    merged = merge_class(name)
    if merged not in PALETTE:
        raise KeyError(f"no colour for class {name!r}; known classes: {', '.join(PALETTE)}")
    return PALETTE[merged]


def symmetric_limit(kernel: np.ndarray) -> float:
    """Colour limit v for vmin=-v, vmax=v: the largest |weight| (1 for an all-zero kernel)."""
    v = float(np.max(np.abs(kernel))) if np.size(kernel) else 0.0
    return v if v > 0 else 1.0


_CLUSTER_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
                    "#666666", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"]


def cluster_colour(c: int) -> str:
    """Colour of k-means cluster c (k-means clusters are not classes, so not the class palette)."""
    return _CLUSTER_COLOURS[c % len(_CLUSTER_COLOURS)]


def label_colour(name: str) -> str:
    """Colour of a class's name written on white: its palette colour, darkened where that is too pale to read."""
    rgb = np.array(to_rgb(class_color(name)))
    luminance = float(rgb @ [0.2126, 0.7152, 0.0722])
    return tuple(rgb * 0.55 / luminance) if luminance > 0.55 else tuple(rgb)


def show_figures_in_notebooks() -> bool:
    """Let IPython display a `Figure` as a PNG, so a notebook cell ending in `fig` (or `display(fig)`)
    shows the figure in JupyterLab, in the executed notebooks and on the site.

    Figures here are made without pyplot, so the inline backend never registers them and IPython
    would print only "<Figure size ...>". Does nothing outside IPython, or when the user already
    chose a format for figures (e.g. `%config InlineBackend.figure_formats = ['svg']`).
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return False
    shell = get_ipython()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters:
        return False
    if any(Figure in f.type_printers for f in formatters.values()):
        return False
    select_figure_formats(shell, {"png"}, bbox_inches="tight")
    return True


def save_figure(fig: Figure, path: Path | str, dpi: int = 150) -> Path:
    """Write a matplotlib figure (format from the suffix: .png, .svg, .pdf) atomically."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def save_html(fig, path: Path | str) -> Path:
    """Write a plotly figure as a self-contained HTML file (plotly.js embedded: works offline)."""
    return atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True, full_html=True))
