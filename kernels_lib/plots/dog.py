"""Figure 1: the DoG family as 3-D surfaces and 2-D maps."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from .style import DIVERGING, symmetric_limit

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
