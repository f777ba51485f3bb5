"""The DoG family down to the discrete limit: Lindeberg's discrete scale-space kernels and box-averaged
renderings, the labelling side (`dog` draws the continuous, point-sampled family).

Trained depthwise kernels are often sharper than a point-sampled Gaussian allows (most of their
energy in the centre pixel and its neighbours). At those scales the right family is the discrete
analogue of the Gaussian, T(n; s) = e⁻ˢ Iₙ(s) with Iₙ the modified Bessel function and s = σ² the
variance (Lindeberg 1990), separable in 2-D, T(x, y; s) = T(x; s)·T(y; s), and its differences:

* first differences, centred δx = (T(x+1) − T(x−1))/2 or one-sided δ⁺x = T(x+1) − T(x) and
  δ⁻x = T(x) − T(x−1), steered like Gaussian derivatives: cos θ·δx + sin θ·δy;
* second differences δxx = T(x+1) − 2T(x) + T(x−1), δxy = δx δy, steered into ridges and saddles
  as in `dog` (cos²θ·δxx + sin 2θ·δxy + sin²θ·δyy; cos 2θ·(δxx − δyy)/2 + sin 2θ·δxy);
* On-centre shapes T − c·∇²T (c = ½ is the one real networks' kernels are modelled with), with
  ∇² = δxx + δyy, and discrete DoGs T(s₁) − w·T(s₂).

An anisotropic discrete Gaussian has its own variance along each grid axis. Names follow `vocab`:
T, T − c∇²T and discrete DoGs are "on" (negated: "off"), first differences first derivatives
("on-d1@θ"), second differences ridges and saddles. `integrated` renders any `dog` pattern
box-averaged over each pixel (a lens integrates light; `dog.evaluate` samples pixel centres).
This module is written apart from `kernels_lib.analysis.groundtruth`, which scores with pyscsp.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ive

from ..preprocess import centre_normalise
from ..vocab import ORIENTED_KINDS, merge_class, oriented_class
from .dog import TemplateBank, evaluate, kernel_grid, template_bank

#: Smallest variance s = σ² (px²) of the discrete family: at s = 0.25 T(0) ≈ 0.79, T(±1) ≈ 0.10.
SCALE_MIN = 0.25
#: First differences: centred, forward (δ⁺) and backward (δ⁻).
DIFFERENCES = ("centred", "forward", "backward")
#: Variances (px²) of the discrete templates `labelling_bank` adds to `dog.template_bank`.
TEMPLATE_SCALES = (0.25, 0.5, 1.0)
#: Sub-pixels per side that `integrated` averages over.
SUBPIXELS = 4


def discrete_gaussian(n, s) -> np.ndarray:
    """T(n; s) = e⁻ˢ Iₙ(s): the discrete analogue of the Gaussian at integer offsets n, variance s."""
    s = np.asarray(s, dtype=np.float64)
    if np.any(s <= 0):
        raise ValueError(f"the scale s (variance, px²) must be > 0, got {s}")
    return ive(np.abs(np.asarray(n, dtype=np.float64)), s)


def _half(k: int) -> int:
    if int(k) != k or k < 3 or k % 2 == 0:
        raise ValueError(f"the discrete scale-space family lives on odd k×k grids (integer offsets), got k={k!r}")
    return (int(k) - 1) // 2


def _smoothed(k: int, sx, sy, ratio, surround, laplacian) -> np.ndarray:
    """[m, k+2, k+2] of T(sx, sy) − w·T(r²sx, r²sy), then − c∇²·, on the grid padded by one pixel
    (differences of the kernel need its neighbours)."""
    h = _half(k) + 2                       # one more than the padding, for the Laplacian
    n = np.arange(-h, h + 1, dtype=np.float64)
    r2 = np.asarray(ratio, dtype=np.float64) ** 2

    def plane(ax, ay):
        return discrete_gaussian(n[None, :, None], ay) * discrete_gaussian(n[None, None, :], ax)

    g = plane(sx, sy) - surround * plane(r2 * sx, r2 * sy)
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4.0 * g[:, 1:-1, 1:-1]
    return g[:, 1:-1, 1:-1] - laplacian * lap


def _first(g: np.ndarray, axis: int, difference) -> np.ndarray:
    """First difference of padded planes g [m, K+2, K+2] along x (axis 2) or y (axis 1), cropped to K×K;
    `difference` [m, 1, 1] holds 0 (centred), 1 (forward) or 2 (backward) per kernel."""
    def at(offset):
        idx = [slice(None), slice(1, -1), slice(1, -1)]
        idx[axis] = slice(1 + offset, g.shape[axis] - 1 + offset)
        return g[tuple(idx)]

    centre, plus, minus = at(0), at(1), at(-1)
    return np.where(difference == 0, 0.5 * (plus - minus), np.where(difference == 1, plus - centre, centre - minus))


def discrete(kind: str, k: int, *, scale, theta=0.0, ratio=2.0, surround=0.0, laplacian=0.0, aspect=1.0,
             difference="centred") -> np.ndarray:
    """k×k kernels [m, k, k] of the discrete scale-space family (values raw, On polarity).

    kind "" is the smoothed kernel T(s) − w·T(r²s) − c·∇²(…) itself (`surround` w, `laplacian` c);
    "d1", "d2" and "saddle" are its first differences, ridges and saddles along `theta` (degrees,
    x right, y down, as in `vocab`). `scale` is the variance s (px²), `aspect` ≥ 1 the ratio of the
    variance along x to that along y (or its inverse: values < 1 elongate along y). Parameters
    broadcast over kernels (arrays of length m or scalars); `difference` names the first
    difference ("centred", "forward", "backward"), one name or one per kernel.
    """
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    m = len(scale)

    def col(v):
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (m,))[:, None, None]

    aspect = col(aspect)
    if np.any(aspect <= 0) or np.any(col(ratio) <= 1) or np.any(col(surround) < 0):
        raise ValueError(f"need aspect > 0, ratio > 1 and surround >= 0, got {aspect.ravel()[:3]}, {ratio}, {surround}")
    names = np.broadcast_to(np.asarray(difference, dtype=object), (m,))
    bad = sorted({d for d in names if d not in DIFFERENCES})
    if bad:
        raise ValueError(f"difference must be one of {DIFFERENCES}, got {bad}")
    diff = np.array([DIFFERENCES.index(d) for d in names])[:, None, None]
    root = np.sqrt(aspect)
    g = _smoothed(k, col(scale) * root, col(scale) / root, col(ratio), col(surround), col(laplacian))
    t = np.deg2rad(col(theta))
    c, s = np.cos(t), np.sin(t)
    if kind == "":
        return g[:, 1:-1, 1:-1]
    if kind == "d1":
        return c * _first(g, 2, diff) + s * _first(g, 1, diff)
    if kind not in ("d2", "saddle"):
        raise ValueError(f"kind must be '', 'd1', 'd2' or 'saddle', got {kind!r}")
    core = g[:, 1:-1, 1:-1]
    xx = g[:, 1:-1, 2:] - 2.0 * core + g[:, 1:-1, :-2]
    yy = g[:, 2:, 1:-1] - 2.0 * core + g[:, :-2, 1:-1]
    dx = 0.5 * (g[:, :, 2:] - g[:, :, :-2])            # [m, K+2, K], centred along x
    xy = 0.5 * (dx[:, 2:, :] - dx[:, :-2, :])
    if kind == "d2":
        return c * c * xx + 2.0 * c * s * xy + s * s * yy
    return (c * c - s * s) * 0.5 * (xx - yy) + 2.0 * c * s * xy


def integrated(cls: str, k: int, subpixels: int = SUBPIXELS, **params) -> np.ndarray:
    """`dog.evaluate(cls, …)` box-averaged over each pixel of a k×k grid ([k, k], or [m, k, k] when
    params hold arrays shaped [m, 1, 1]): the mean over subpixels² points spread evenly in the pixel."""
    if int(subpixels) != subpixels or subpixels < 1:
        raise ValueError(f"subpixels must be an integer >= 1, got {subpixels!r}")
    x, y = kernel_grid(k)
    offsets = (np.arange(subpixels) + 0.5) / subpixels - 0.5
    total = 0.0
    for oy in offsets:
        for ox in offsets:
            total = total + evaluate(cls, x + ox, y + oy, **params)
    return total / subpixels ** 2


def labelling_bank(k: int, scales: tuple[float, ...] = TEMPLATE_SCALES, angle_step: float = 15.0,
                   surrounds: tuple[float, ...] = (0.0, 0.8), **continuous) -> TemplateBank:
    """`dog.template_bank(k, **continuous)` plus discrete scale-space templates at the variances
    `scales`: T and T − ½∇²T (On, Off), discrete DoGs (ratio 2, weights `surrounds`), centred and
    one-sided first differences, ridges and saddles every `angle_step` degrees, both polarities.
    Spectra are named with it (`spectrum.propose_labels`), so that sharp decoded kernels find the
    template they are. Only odd k (the discrete family lives on integer offsets)."""
    bank = template_bank(k, angle_step=angle_step, **continuous)
    _half(k)
    rows, kernels = [], []
    for scale in scales:
        for surround in surrounds:
            for laplacian in ((0.0, 0.5) if surround == 0 else (0.0,)):
                blob = discrete("", k, scale=scale, surround=surround, laplacian=laplacian)
                for polarity, sign in (("on", 1.0), ("off", -1.0)):
                    kernels.append(sign * blob)
                    rows.append({"class": polarity, "scale": scale, "surround": surround, "laplacian": laplacian})
            for kind, (_, period) in ORIENTED_KINDS.items():
                angles = np.arange(0.0, period - 1e-9, angle_step)
                for difference in (DIFFERENCES if kind == "d1" else DIFFERENCES[:1]):
                    drawn = discrete(kind, k, scale=np.full(len(angles), scale), theta=angles, surround=surround,
                                     difference=difference)
                    for polarity, sign in (("on", 1.0), ("off", -1.0)):
                        kernels.append(sign * drawn)
                        rows += [{"class": oriented_class(polarity, kind, float(a)), "scale": scale,
                                  "surround": surround, "difference": difference} for a in angles]
    unit = centre_normalise(np.concatenate(kernels)).reshape(-1, k, k)
    classes = list(bank.classes) + [r["class"] for r in rows]
    params = pd.concat([bank.params.assign(rendering="sampled"), pd.DataFrame(rows).assign(rendering="discrete")],
                       ignore_index=True)
    return TemplateBank(kernels=np.concatenate([bank.kernels, unit]), classes=classes,
                        merged=[merge_class(c) for c in classes], params=params)
