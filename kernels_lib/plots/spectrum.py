"""Figures 3/31/32: the spectrum strip of decoded kernels with its labelled code intervals."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..vocab import display_name, order_classes
from .style import DIVERGING, class_color, symmetric_limit

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
        out[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = k / symmetric_limit(k)
    return out


def spectrum_strip(codes, kernels, labels, ncols: int = 25, title: str | None = None,
                   cmap: str = DIVERGING) -> Figure:
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
                ax.add_patch(Rectangle((x0, y0), x1 - x0, band, facecolor=class_color(lab), edgecolor="white",
                                       linewidth=0.4))
                if (j - start) >= 4:
                    ax.text((x0 + x1) / 2, y0 + band / 2, display_name(lab), ha="center", va="center",
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
    for lab in order_classes(np.unique(labels)):
        sel = codes[labels == lab]
        handles.append(Rectangle((0, 0), 1, 1, facecolor=class_color(lab)))
        names.append(f"{display_name(lab)} ({len(sel)} codes)")
    fig.legend(handles, names, loc="outside lower center", ncols=min(5, len(names)), fontsize=7, frameon=False)
    fig.suptitle(title or f"Spectrum of the {kh}×{kw} autoencoder: {n} equally spaced codes from 0 to 1 "
                          "(read left to right, top to bottom; each kernel scaled to its own ±max)", fontsize=9)
    return fig
