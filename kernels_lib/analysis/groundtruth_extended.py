"""The extended ground truth: the independent generator (`groundtruth`) down to the discrete
scale-space limit, with point-sampled, shifted and elongated renderings. Scoring only.

Real depthwise kernels are often sharper than a sampled continuous Gaussian allows, shifted by
fractions of a pixel and elongated. This bank draws every merged class of `groundtruth` in four
renderings of the DoG family, the discrete ones built with pyscsp (Tony Lindeberg's Scale-Space
Toolbox, CC BY 4.0), which shares no code with this project's labelling side (`method.dog`,
`method.scale_space`):

* **"integrated"**: `groundtruth.ground_truth_bank` as it is (box-averaged 8× renderings, σ from
  0.6 px, shifts in a 0.4 px disc, aspect ≤ 1.4); crosses and squares always come from it;
* **"sampled"**: the same separable Hermite–Gaussian patterns point-sampled at the pixel centres,
  centres shifted uniformly in a disc of radius 0.5 px, long/short axis uniform in [1, 1.6], σ
  log-uniform in [0.7, k/4.4] (the case of issue 17: derivatives of Gaussians, not box-averaged,
  shifted and mildly elongated);
* **"discrete"**: Lindeberg's discrete analogue of the Gaussian T(n; s) (`pyscsp.discscsp.
  make1Ddiscgaussfilter`, modified Bessel functions), variance s log-uniform in [0.25, (k/4.4)²]
  px², separable with up to 1.3× more variance along one grid axis; On/Off: T − c∇²T (c uniform in
  [0, 1]; c = ½ is the form real ConvNeXt filters are modelled with) or a discrete DoG
  T(s) − w·T(r²s); derivatives: pyscsp's centred directional difference masks
  (`discscsp.dirdermask`, any angle) or one-sided differences (T(x+1) − T(x), T(x) − T(x−1),
  steered), of T or of a discrete DoG (weight w uniform in [0, 1]);
* **"affine"**: pyscsp's sampled affine Gaussian derivatives (`affscsp.
  sampldirderaffgausskernelfromsigma12phi`) at any angle, the two σ of the covariance with a
  ratio uniform in [1, 1.6] and a geometric mean log-uniform in [0.7, k/4.4], either axis along
  the derivative; On/Off are affine Gaussians minus w· a wider one. (A first draft went up to
  2:1; there 11 % of clean 5×5 affine blobs are nearer a ridge template than any blob template,
  so the class itself is no longer defined by the family; "mildly elongated" it stays.)

pyscsp's y axis points up and its angles turn counter-clockwise; this project's y points down
(`vocab`), so a pattern at θ here is pyscsp's at −θ. Parameter ranges were fixed before any
classifier was scored on this bank; its seeds are its own (`STREAM`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyscsp import affscsp, discscsp
from scipy.ndimage import correlate

from .groundtruth import GroundTruthBank, ground_truth_bank, merged_classes, _pattern

#: Renderings of the DoG family and their shares of the bank's blob and derivative kernels.
RENDERINGS = {"integrated": 0.25, "sampled": 0.25, "discrete": 0.3, "affine": 0.2}
#: Variance (px²) below which a discrete kernel belongs to the smallest-scale band.
SMALLEST_BAND = 0.5
#: Mixed into every seed, so the random numbers are this module's own.
STREAM = 0x5CA1_E5E7
_DOG_RECIPES = ("blob", "edge", "ridge", "saddle")


def scale_range(k: int) -> tuple[float, float]:
    """Variance s (px²) of the discrete rendering on a k×k grid: 0.25 up to (k/4.4)²."""
    return 0.25, (k / 4.4) ** 2


def _fit(vec: np.ndarray, size: int) -> np.ndarray:
    """A centred 1-D filter cropped or zero-padded to `size` (odd) taps."""
    half, have = size // 2, len(vec) // 2
    if have >= half:
        return vec[have - half:have + half + 1]
    return np.pad(vec, half - have)


def _discrete_gaussian(k: int, s: float, aspect: float) -> np.ndarray:
    """pyscsp's 2-D discrete Gaussian on (k+4)×(k+4) (room for differences), variances s·a (x), s/a (y)."""
    tx = _fit(discscsp.make1Ddiscgaussfilter(np.sqrt(s * aspect), 1e-10), k + 4)
    ty = _fit(discscsp.make1Ddiscgaussfilter(np.sqrt(s / aspect), 1e-10), k + 4)
    return np.outer(ty, tx)


def _one_sided(theta: float, forward: bool) -> np.ndarray:
    """3×3 correlation mask of the one-sided first difference steered to θ (degrees, y down)."""
    dx = np.zeros((3, 3))
    if forward:
        dx[1, 1:] = (-1.0, 1.0)                      # T(x+1) − T(x)
    else:
        dx[1, :2] = (-1.0, 1.0)                      # T(x) − T(x−1)
    t = np.deg2rad(theta)
    return np.cos(t) * dx + np.sin(t) * dx.T


def discrete_kernel(recipe: str, k: int, p: dict) -> np.ndarray:
    """One discrete scale-space kernel (k×k, On polarity, raw) from a row of parameters p."""
    g = _discrete_gaussian(k, p["scale"], p["grid_aspect"])
    if p["dog"]:
        g = g - p["weight"] * _discrete_gaussian(k, p["scale"] * p["ratio"] ** 2, p["grid_aspect"])
    if recipe == "blob":
        g = g - p["laplacian"] * correlate(g, discscsp.dxxmask3() + discscsp.dyymask3(), mode="constant")
        return g[2:-2, 2:-2]
    if recipe == "edge" and p["difference"] != "centred":
        out = correlate(g, _one_sided(p["theta"], p["difference"] == "forward"), mode="constant")
    elif recipe == "edge":
        out = correlate(g, discscsp.dirdermask(np.deg2rad(-p["theta"]), 1, 0), mode="constant")
    elif recipe == "ridge":
        out = correlate(g, discscsp.dirdermask(np.deg2rad(-p["theta"]), 2, 0), mode="constant")
    else:       # saddle: mixed difference along θ − 45° and its normal (pyscsp's normal is the other way round)
        out = -correlate(g, discscsp.dirdermask(np.deg2rad(45.0 - p["theta"]), 1, 1), mode="constant")
    return out[2:-2, 2:-2]


def affine_kernel(recipe: str, k: int, p: dict) -> np.ndarray:
    """One sampled affine Gaussian (derivative) kernel (k×k, On polarity, raw) from pyscsp."""
    along, across = p["sigma"] * np.sqrt(p["aspect"]), p["sigma"] / np.sqrt(p["aspect"])
    s1, s2 = (along, across) if p["along"] else (across, along)
    n = (k - 1) // 2
    if recipe == "blob":
        phi = np.deg2rad(-p["axis"])
        return (affscsp.sampldirderaffgausskernelfromsigma12phi(s1, s2, phi, 0, 0, n)
                - p["weight"] * affscsp.sampldirderaffgausskernelfromsigma12phi(p["ratio"] * s1, p["ratio"] * s2, phi, 0, 0, n))
    if recipe == "saddle":
        return -affscsp.sampldirderaffgausskernelfromsigma12phi(s1, s2, np.deg2rad(45.0 - p["theta"]), 1, 1, n)
    order = 1 if recipe == "edge" else 2
    return affscsp.sampldirderaffgausskernelfromsigma12phi(s1, s2, np.deg2rad(-p["theta"]), order, 0, n)


def sampled_kernels(recipe: str, k: int, params: pd.DataFrame) -> np.ndarray:
    """`groundtruth`'s separable patterns point-sampled at the pixel centres: [n, k, k], raw."""
    c = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
    yy, xx = np.meshgrid(c, c, indexing="ij")
    p = {col: params[col].to_numpy(dtype=np.float64)[:, None, None] for col in
         ("sigma", "aspect", "axis", "along", "ratio", "weight", "theta", "shift_x", "shift_y")}
    return _pattern(recipe, xx[None], yy[None], p)


def extended_bank(k: int, n: int, snr=3.0, seed: int = 0, classes=None) -> GroundTruthBank:
    """n labelled k×k kernels over `RENDERINGS` (module docstring), reproducibly; params gain
    "rendering", "scale", "grid_aspect", "dog", "laplacian", "difference", "shift" (px)."""
    if int(k) != k or k < 3 or k % 2 == 0:
        raise ValueError(f"the extended ground truth needs an odd kernel size >= 3 (the discrete family "
                         f"lives on integer offsets), got {k!r}")
    base = ground_truth_bank(k, n, snr=snr, seed=seed, classes=classes)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), STREAM]))
    params = base.params.copy()
    names = list(RENDERINGS)
    rendering = np.array(names, dtype=object)[rng.choice(len(names), n, p=list(RENDERINGS.values()))]
    dog_family = params["recipe"].isin(_DOG_RECIPES).to_numpy()
    rendering[~dog_family] = "integrated"
    lo, hi = scale_range(k)
    radius, angle = 0.5 * np.sqrt(rng.random(n)), rng.uniform(0.0, 2.0 * np.pi, n)
    draws = pd.DataFrame({
        "scale": np.exp(rng.uniform(np.log(lo), np.log(hi), n)),
        "grid_aspect": np.exp(rng.uniform(-1.0, 1.0, n) * np.log(1.3)),
        "dog": rng.random(n) < 0.5,
        "laplacian": rng.uniform(0.0, 1.0, n),
        "difference": np.array(["centred", "forward", "backward"], dtype=object)[rng.choice(3, n, p=[0.4, 0.3, 0.3])],
        "sampled_sigma": np.exp(rng.uniform(np.log(0.7), np.log(k / 4.4), n)),
        "sampled_aspect": rng.uniform(1.0, 1.6, n),
        "affine_aspect": rng.uniform(1.0, 1.6, n),
        "shift_x": radius * np.cos(angle), "shift_y": radius * np.sin(angle),
    })
    clean = base.clean.astype(np.float64)
    for name in ("sampled", "discrete", "affine"):
        rows = np.flatnonzero(rendering == name)
        if name == "sampled":
            params.loc[rows, ["sigma", "aspect"]] = draws.loc[rows, ["sampled_sigma", "sampled_aspect"]].to_numpy()
            params.loc[rows, ["shift_x", "shift_y"]] = draws.loc[rows, ["shift_x", "shift_y"]].to_numpy()
        elif name == "affine":
            params.loc[rows, ["sigma", "aspect"]] = draws.loc[rows, ["sampled_sigma", "affine_aspect"]].to_numpy()
        columns = {**{c: params[c].to_numpy() for c in params.columns}, **{c: draws[c].to_numpy() for c in draws.columns}}
        for recipe in _DOG_RECIPES:
            these = rows[params["recipe"].to_numpy()[rows] == recipe]
            if name == "sampled" and len(these):
                clean[these] = sampled_kernels(recipe, k, params.iloc[these])
                continue
            for i in these:
                row = {c: v[i] for c, v in columns.items()}
                clean[i] = (discrete_kernel if name == "discrete" else affine_kernel)(recipe, k, row)
    sign = np.where(params["polarity"].to_numpy() == "on", 1.0, -1.0)
    redrawn = rendering != "integrated"
    clean[redrawn] *= sign[redrawn, None, None]
    centred = clean - clean.mean(axis=(1, 2), keepdims=True)
    rms = np.sqrt((centred ** 2).mean(axis=(1, 2)))
    if not (rms > 0).all():
        raise ValueError(f"{int((rms <= 0).sum())} extended ground-truth kernels came out constant on a {k}×{k} grid")
    clean *= (params["amplitude"].to_numpy() / rms)[:, None, None]
    noisy = clean + (base.kernels.astype(np.float64) - base.clean)      # the base bank's offset and noise, same scale
    discrete = rendering == "discrete"
    params["rendering"] = rendering
    params["scale"] = np.where(discrete, draws["scale"], np.nan)
    params["grid_aspect"] = np.where(discrete, draws["grid_aspect"], np.nan)
    params["dog"] = np.where(discrete, draws["dog"], None)
    params["laplacian"] = np.where(discrete & (params["recipe"] == "blob") & ~draws["dog"], draws["laplacian"], np.nan)
    params["difference"] = np.where(discrete & (params["recipe"] == "edge"), draws["difference"], None)
    params.loc[discrete, ["sigma", "aspect", "shift_x", "shift_y"]] = np.nan
    params.loc[discrete & ~draws["dog"].to_numpy(), ["ratio", "weight"]] = np.nan
    params.loc[rendering == "affine", ["shift_x", "shift_y"]] = 0.0
    params["shift"] = np.hypot(params["shift_x"], params["shift_y"])
    return GroundTruthBank(kernels=noisy.astype(np.float32), clean=clean.astype(np.float32), merged=base.merged,
                           fine=base.fine, params=params)

