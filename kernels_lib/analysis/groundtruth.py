"""Independent ground truth: kernels of known class from a generator written apart from `dog`.

The autoencoders learn from `kernels_lib.method.dog_bank.synthetic_bank` and their spectra are named with
`dog`'s templates, so scoring them on that same bank would only show that the pipeline agrees
with itself. This module draws labelled kernels a second, separate way, and is used for
scoring only (tests/test_ground_truth.py, notebook 08, data/autoencoders/build_reference.py):

* **a lens, not a point sampler**: every pattern is rendered on a grid 8× finer than the kernel
  (`SUPERSAMPLE`) and box-averaged onto the k×k pixels, as a sensor integrates light over a
  pixel; `dog` samples its functions at pixel centres;
* **separable patterns in a rotated frame**: a Gaussian derivative is a product of 1-D
  Hermite–Gaussians, g⁽ⁿ⁾(t; s) = (−1)ⁿ Heₙ(t/s) g(t; s)/sⁿ, in a frame turned to the pattern's
  orientation (an edge: g′(a)·g(b) with a along θ; a ridge: g″(a)·g(b); a saddle: g′(p)·g′(q)
  with p, q at θ ∓ 45°); `dog` steers 2-D Cartesian derivatives instead;
* **its own parameter ranges** (below), chosen before any classifier was scored on them, and
  **its own seed stream** (`numpy.random.SeedSequence([seed, STREAM])`), so seed 0 here and seed
  0 in `dog` never share random numbers.

Parameter ranges, per kernel (k×k grid, pixels; reasons in brackets):

* class: uniform over the merged classes (every class gets the same weight, so no class
  hides behind a frequent one); 5×5 banks include On/Off squares, 7×7 banks do not (the paper
  finds squares in 5×5 kernels only); first derivatives at θ uniform over the full circle,
  second derivatives half ridges (On and Off, θ uniform) and half saddles (θ uniform);
* centre σ: log-uniform in [0.6, k/4.4] (below 0.6 px even an integrated pattern collapses onto
  one or two pixels; above k/4.4 its ±2.2σ no longer fits the grid);
* surround: σ2/σ1 uniform in [1.4, 2.6], weight w uniform in [0, 1] (w = 0 is a pure Gaussian
  derivative, the scale-space form; w = 1 a balanced DoG);
* anisotropy: the ratio of long to short axis uniform in [1, 1.4] (mild), the long axis along
  the pattern's own frame or across it (derivatives) or at a uniform angle (blobs);
* sub-pixel shift of the centre: uniform in a disc of radius 0.4 px;
* cross: each arm's σ uniform in [0.4, 0.8] (Appendix B's range), one arm's weight uniform in
  [0.75, 1];
* square: side 2 or 3 px, towards the upper-left or bottom-right corner, each edge moved by up
  to ±0.2 px (the box average then covers edge pixels partly);
* amplitude log-uniform in [1e-3, 1] plus a constant offset of up to ± the amplitude (the
  classifiers centre every kernel, so neither may matter);
* noise: i.i.d. Gaussian, σ = (RMS of the centred clean kernel) / snr. **Moderate noise** is
  `MODERATE_SNR` = 3: a noisy kernel keeps a cosine of about 0.95 with its clean version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..vocab import MERGED_CLASSES, OTHER, oriented_class

#: Sub-pixels per pixel side of the rendering grid (the box average integrates over 8×8 points).
SUPERSAMPLE = 8
#: Signal-to-noise ratio of "moderate noise": noise σ is a third of the centred signal's RMS.
MODERATE_SNR = 3.0
#: Mixed into every seed of this module, so its random numbers are its own.
STREAM = 0x6772_6F75
#: Kernels rendered at once (bounds memory: chunk × (8k)² float64 values per temporary).
_CHUNK = 1024


def sigma_range(k: int) -> tuple[float, float]:
    """Centre σ (px) of the ground truth on a k×k grid: 0.6 to k/4.4."""
    return 0.6, k / 4.4


def merged_classes(k: int) -> tuple[str, ...]:
    """The merged classes a k×k ground-truth bank draws: squares only for 5×5."""
    return tuple(c for c in MERGED_CLASSES if c != OTHER and ("square" not in c or k == 5))


@dataclass(frozen=True)
class GroundTruthBank:
    """Labelled kernels for scoring. `fine` names each kernel (derivatives with their angle),
    `merged` its merged class, `params` holds every parameter that drew it."""

    kernels: np.ndarray          # [n, k, k] float32: clean + offset + noise
    clean: np.ndarray            # [n, k, k] float32: the rendered pattern, no offset, no noise
    merged: np.ndarray           # [n] str
    fine: np.ndarray             # [n] str
    params: pd.DataFrame


# --------------------------------------------------------------------------------------------
# 1-D Hermite–Gaussians and the patterns built from them
# --------------------------------------------------------------------------------------------

def _hermite_gaussian(t, s, order: int):
    """n-th derivative of the normalised 1-D Gaussian of width s at t: (−1)ⁿ Heₙ(t/s) g(t; s) / sⁿ."""
    z = t / s
    g = np.exp(-0.5 * z * z) / (np.sqrt(2.0 * np.pi) * s)
    if order == 0:
        return g
    if order == 1:
        return -z * g / s
    return (z * z - 1.0) * g / (s * s)


def _rotate(x, y, degrees):
    """Coordinates (a, b) in a frame whose first axis points along `degrees` (from +x towards +y)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return c * x + s * y, -s * x + c * y


def _separable_dog(a, b, orders, sa, sb, ratio, weight):
    """∂ᵃ∂ᵇ of [g(a; sa)·g(b; sb) − w·g(a; r·sa)·g(b; r·sb)] for `orders` = (order along a, along b)."""
    centre = _hermite_gaussian(a, sa, orders[0]) * _hermite_gaussian(b, sb, orders[1])
    wide = _hermite_gaussian(a, ratio * sa, orders[0]) * _hermite_gaussian(b, ratio * sb, orders[1])
    return centre - weight * wide


def _pattern(recipe: str, x, y, p: dict):
    """One recipe on sub-pixel coordinates x, y [m, K, K]; p holds per-kernel arrays [m, 1, 1]."""
    u, v = x - p["shift_x"], y - p["shift_y"]
    if recipe == "cross":
        return p["arm_x"] * np.exp(-0.5 * (u / p["cross_sx"]) ** 2) + p["arm_y"] * np.exp(-0.5 * (v / p["cross_sy"]) ** 2)
    if recipe == "square":
        inside_x = (x >= p["left"]) & (x < p["right"])
        inside_y = (y >= p["top"]) & (y < p["bottom"])
        return (inside_x & inside_y).astype(np.float64)
    long_, short = p["sigma"] * np.sqrt(p["aspect"]), p["sigma"] / np.sqrt(p["aspect"])
    if recipe == "blob":
        a, b = _rotate(u, v, p["axis"])
        return _separable_dog(a, b, (0, 0), long_, short, p["ratio"], p["weight"])
    # derivatives: the long axis lies along the first frame axis or across it
    along = p["along"] > 0.5
    sa, sb = np.where(along, long_, short), np.where(along, short, long_)
    if recipe == "saddle":
        a, b = _rotate(u, v, p["theta"] - 45.0)
        return _separable_dog(a, b, (1, 1), sa, sb, p["ratio"], p["weight"])
    a, b = _rotate(u, v, p["theta"])
    return _separable_dog(a, b, (1 if recipe == "edge" else 2, 0), sa, sb, p["ratio"], p["weight"])


#: Parameter columns the recipes read.
_NUMERIC = ("sigma", "aspect", "axis", "along", "ratio", "weight", "theta", "shift_x", "shift_y", "cross_sx",
            "cross_sy", "arm_x", "arm_y", "left", "right", "top", "bottom")


def render(recipe: str, k: int, params: pd.DataFrame) -> np.ndarray:
    """Render one recipe for every row of `params` on a k×k grid, box-averaging 8×8 sub-pixels.

    Returns [n, k, k] float64 (raw: polarity and amplitude not applied)."""
    step = 1.0 / SUPERSAMPLE
    fine = (np.arange(k * SUPERSAMPLE) + 0.5) * step - k / 2.0      # sub-pixel centres, origin at the kernel centre
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    out = np.empty((len(params), k, k))
    for start in range(0, len(params), _CHUNK):
        rows = params.iloc[start:start + _CHUNK]
        p = {c: rows[c].to_numpy(dtype=np.float64)[:, None, None] for c in rows.columns if c in _NUMERIC}
        values = _pattern(recipe, xx[None], yy[None], p)
        out[start:start + len(rows)] = values.reshape(len(rows), k, SUPERSAMPLE, k, SUPERSAMPLE).mean(axis=(2, 4))
    return out


# --------------------------------------------------------------------------------------------
# The labelled bank
# --------------------------------------------------------------------------------------------

#: Recipes of each merged class: (recipe, polarity, share within the class).
_RECIPES = {
    "on": [("blob", "on", 1.0)],
    "off": [("blob", "off", 1.0)],
    "on-cross": [("cross", "on", 1.0)],
    "off-cross": [("cross", "off", 1.0)],
    "1st-derivative": [("edge", "on", 1.0)],                       # θ over the full circle: both signs
    "2nd-derivative": [("ridge", "on", 0.25), ("ridge", "off", 0.25), ("saddle", "on", 0.5)],
    "on-square": [("square", "on", 1.0)],
    "off-square": [("square", "off", 1.0)],
}
_ORIENTED = {"edge": "d1", "ridge": "d2", "saddle": "saddle"}


def ground_truth_bank(k: int, n: int, snr: float | tuple[float, float] = MODERATE_SNR, seed: int = 0,
                      classes=None) -> GroundTruthBank:
    """n labelled k×k kernels with the ranges of the module docstring, reproducibly.

    snr: a number (np.inf: no noise) or a (lo, hi) pair drawn log-uniformly per kernel.
    classes: merged classes to draw (uniformly), default `merged_classes(k)`.
    """
    if int(k) != k or k < 3:
        raise ValueError(f"kernel size must be an integer >= 3, got {k!r}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    classes = tuple(merged_classes(k) if classes is None else classes)
    unknown = [c for c in classes if c not in _RECIPES]
    if unknown or not classes:
        raise ValueError(f"ground truth draws the merged classes {', '.join(_RECIPES)}; got {list(classes)}")
    snr_lo, snr_hi = (float(snr), float(snr)) if np.isscalar(snr) else (float(snr[0]), float(snr[1]))
    if not (0 < snr_lo <= snr_hi):
        raise ValueError(f"snr must be > 0 (np.inf for no noise) or a (lo, hi) pair with 0 < lo <= hi, got {snr}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), STREAM]))
    k, n = int(k), int(n)

    merged = np.asarray(classes, dtype=object)[rng.integers(0, len(classes), n)]
    recipe = np.empty(n, dtype=object)
    polarity = np.empty(n, dtype=object)
    pick = rng.random(n)
    for name in classes:
        rows = merged == name
        edges = np.cumsum([share for _, _, share in _RECIPES[name]])
        which = np.searchsorted(edges, pick[rows] * edges[-1], side="right").clip(max=len(edges) - 1)
        recipe[rows] = [_RECIPES[name][i][0] for i in which]
        polarity[rows] = [_RECIPES[name][i][1] for i in which]

    lo, hi = sigma_range(k)
    radius, angle = 0.4 * np.sqrt(rng.random(n)), rng.uniform(0.0, 2.0 * np.pi, n)
    side = rng.choice([2.0, 3.0], n)
    corner = np.where(rng.random(n) < 0.5, "upper-left", "bottom-right")
    jitter = rng.uniform(-0.2, 0.2, (n, 4))
    towards_lower = corner == "upper-left"                          # block ends at the centre pixel's far edge
    near, far = 0.5 - side, 0.5
    start = np.where(towards_lower, near, -0.5)
    stop = np.where(towards_lower, far, side - 0.5)
    arm = rng.uniform(0.75, 1.0, n)
    weaker_y = rng.random(n) < 0.5
    params = pd.DataFrame({
        "merged": merged, "recipe": recipe, "polarity": polarity,
        "sigma": np.exp(rng.uniform(np.log(lo), np.log(hi), n)),
        "aspect": rng.uniform(1.0, 1.4, n),
        "axis": rng.uniform(0.0, 180.0, n),
        "along": (rng.random(n) < 0.5).astype(np.float64),
        "ratio": rng.uniform(1.4, 2.6, n),
        "weight": rng.uniform(0.0, 1.0, n),
        "theta": rng.uniform(0.0, 360.0, n),
        "shift_x": radius * np.cos(angle), "shift_y": radius * np.sin(angle),
        "cross_sx": rng.uniform(0.4, 0.8, n), "cross_sy": rng.uniform(0.4, 0.8, n),
        "arm_x": np.where(weaker_y, 1.0, arm), "arm_y": np.where(weaker_y, arm, 1.0),
        "side": side, "corner": corner,
        "left": start + jitter[:, 0], "right": stop + jitter[:, 1],
        "top": start + jitter[:, 2], "bottom": stop + jitter[:, 3],
        "amplitude": np.exp(rng.uniform(np.log(1e-3), 0.0, n)),
        "offset": rng.uniform(-1.0, 1.0, n),
        "snr": np.exp(rng.uniform(np.log(snr_lo), np.log(snr_hi), n)) if snr_lo < snr_hi else np.full(n, snr_lo),
    })
    noise = rng.standard_normal((n, k, k))

    clean = np.empty((n, k, k))
    for name in dict.fromkeys(recipe):
        rows = np.flatnonzero(recipe == name)
        clean[rows] = render(name, k, params.iloc[rows])
    clean *= np.where(polarity == "on", 1.0, -1.0)[:, None, None]
    centred = clean - clean.mean(axis=(1, 2), keepdims=True)
    rms = np.sqrt((centred ** 2).mean(axis=(1, 2)))
    if not (rms > 0).all():
        raise ValueError(f"{int((rms <= 0).sum())} ground-truth kernels came out constant on a {k}×{k} grid")
    amplitude = params["amplitude"].to_numpy()
    clean *= (amplitude / rms)[:, None, None]
    noisy = clean + (amplitude * params["offset"].to_numpy())[:, None, None] \
        + noise * (amplitude / params["snr"].to_numpy())[:, None, None]

    fine = np.array([oriented_class(pol, _ORIENTED[r], t) if r in _ORIENTED else m
                     for r, pol, t, m in zip(recipe, polarity, params["theta"], merged)], dtype=object)
    oriented = np.isin(recipe, list(_ORIENTED))
    blob_or_derivative = oriented | (recipe == "blob")
    for cols, keep in ((["sigma", "aspect", "ratio", "weight"], blob_or_derivative), (["axis"], recipe == "blob"),
                       (["along", "theta"], oriented),
                       (["cross_sx", "cross_sy", "arm_x", "arm_y"], recipe == "cross"),
                       (["side", "left", "right", "top", "bottom"], recipe == "square"),
                       (["shift_x", "shift_y"], recipe != "square")):
        params.loc[~keep, cols] = np.nan
    params.loc[recipe != "square", "corner"] = None
    params.insert(1, "fine", fine)
    return GroundTruthBank(kernels=noisy.astype(np.float32), clean=clean.astype(np.float32),
                           merged=merged.astype(str), fine=fine.astype(str), params=params)


def angle_from_axes(bank: GroundTruthBank) -> np.ndarray:
    """Degrees (0–45) between each derivative's own axes and the kernel grid's, NaN for other classes.

    An edge or a ridge along θ has its axes at θ and θ + 90°; a saddle's own axes (its zero lines)
    lie at θ ± 45°. 0 means aligned with the grid (what the paper's ∂x, ∂xx, ∂xy are), 45 means
    diagonal."""
    theta = bank.params["theta"].to_numpy(dtype=np.float64)
    axes = np.where(bank.params["recipe"].to_numpy() == "saddle", theta - 45.0, theta) % 90.0
    return np.minimum(axes, 90.0 - axes)
