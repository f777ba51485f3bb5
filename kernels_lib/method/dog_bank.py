"""Synthetic labelled kernels drawn from the DoG family (`dog`): the training bank of the reference
autoencoders, with every parameter that drew each kernel, and `random_kernels`, the i.i.d. control.

`synthetic_bank` draws classes after `DEFAULT_WEIGHTS` (or given weights), orientations uniformly,
scales, surround weights and anisotropy from ranges, and adds white noise at a given SNR. It is the
labelling side of the method; scoring is done on `kernels_lib.analysis.groundtruth`, written apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from ..vocab import ORIENTED_KINDS, OTHER, fine_members, merge_class, oriented_class
from .dog import CORNERS, default_sigma_range, evaluate, kernel_grid, pattern
from .scale_space import DIFFERENCES, SCALE_MIN, discrete, integrated

#: Default class frequencies of `synthetic_bank`, after the paper's proportions (Figures 7, 8):
#: On/Off-centre most common, then crosses and first derivatives, few second derivatives;
#: squares only in 5×5 kernels, where they are rare (one layer of EfficientNet-B4).
DEFAULT_WEIGHTS: dict[str, float] = {
    "on": 0.25, "off": 0.20, "on-cross": 0.10, "off-cross": 0.10,
    "1st-derivative": 0.24, "2nd-derivative": 0.06, "on-square": 0.025, "off-square": 0.025,
}



@dataclass(frozen=True)
class SyntheticBank:
    """Synthetic labelled kernels: the ground truth of the clustering method.

    `clean` holds the noise-free kernels, `params` one row per kernel with every parameter
    that drew it (NaN where a parameter does not apply to the class). Unpacks as
    (kernels, classes).
    """

    kernels: np.ndarray          # [n, k, k] float32, clean + noise
    classes: np.ndarray          # [n] fine class names (str)
    merged: np.ndarray           # [n] merged class names (str)
    clean: np.ndarray            # [n, k, k] float32, noise-free
    params: pd.DataFrame

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.kernels, self.classes))


def _class_probabilities(k: int, class_weights: Mapping[str, float] | None) -> tuple[list[str], np.ndarray]:
    """Names to draw from and their probabilities; merged names share their weight equally among
    `vocab.fine_members` (a derivative class among its oriented kinds, each at every angle)."""
    if class_weights is None:
        class_weights = {c: w for c, w in DEFAULT_WEIGHTS.items() if k == 5 or "square" not in c}
    fine: dict[str, float] = {}
    for name, w in class_weights.items():
        w = float(w)
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"class weight of {name!r} must be finite and >= 0, got {w}")
        members = fine_members(name)
        for m in members:
            fine[m] = fine.get(m, 0.0) + w / len(members)
    total = sum(fine.values())
    if total <= 0:
        raise ValueError(f"class weights must not all be zero: {dict(class_weights)}")
    names = list(fine)
    return names, np.array([fine[c] for c in names]) / total


def _centred_rms(x: np.ndarray) -> np.ndarray:
    """RMS of each kernel [n, k, k] after subtracting its mean."""
    flat = x.reshape(len(x), x.shape[1] * x.shape[2])
    return np.sqrt(((flat - flat.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))


def synthetic_bank(
    k: int,
    n: int,
    snr: float | tuple[float, float] = 4.0,
    class_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    *,
    sigma_range: tuple[float, float] | None = None,
    ratio_range: tuple[float, float] = (1.5, 3.0),
    surround_range: tuple[float, float] = (0.7, 1.0),
    anisotropy_range: tuple[float, float] = (1.0, 1.5),
    cross_sigma_range: tuple[float, float] = (0.4, 0.8),
    square_sides: tuple[float, ...] = (2.0, 3.0),
    edge_range: tuple[float, float] = (0.05, 0.25),
    max_shift: float = 0.3,
    amplitude_range: tuple[float, float] = (0.02, 0.5),
    renderings: Mapping[str, float] | None = None,
    small_sigma: float = 0.5,
    laplacian_range: tuple[float, float] = (0.0, 1.0),
) -> SyntheticBank:
    """n labelled k×k kernels drawn from the DoG family with Gaussian noise, reproducibly.

    Per kernel: class by `class_weights` (merged names, fine names with or without an angle —
    "on-d1" draws every orientation, "on-d1@30" or "on-dx" one — or "other" for i.i.d. Gaussian
    kernels; default after the paper's proportions), σ1 in `sigma_range` (default
    `default_sigma_range(k)`), σ2/σ1 in `ratio_range`, surround weight, an orientation θ uniform
    over the full circle (derivatives; the label carries it, canonically: "off-d1@20" for a first
    derivative at 200°), an anisotropy (long/short axis) in `anisotropy_range` with a uniform
    long-axis angle (DoG family), cross σ, square side/corner/edge, a sub-pixel shift in
    [−max_shift, max_shift]², and an amplitude (log-uniform) that is the RMS of the centred clean
    kernel. Noise σ = amplitude / snr, so snr is the ratio of centred signal RMS to noise σ; a
    (lo, hi) pair draws it log-uniformly per kernel; inf means no noise.

    `renderings` (None: all "sampled") shares the DoG-family kernels between "sampled" (point
    samples, `dog.evaluate`), "integrated" (box-averaged, `scale_space.integrated`, σ down to
    `small_sigma`) and "discrete" (Lindeberg's discrete family, `scale_space.discrete`: variance
    s log-uniform from `scale_space.SCALE_MIN` up to the top of `sigma_range` squared, centred or
    one-sided first differences, pure scale-space derivatives and DoGs alike (surround weight
    uniform in [0, 1]), blobs T − c∇²T with c in `laplacian_range`, anisotropy along the grid
    axes). Their draws come from a stream of their own, so a bank without them is unchanged.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not max_shift >= 0:
        raise ValueError(f"max_shift must be >= 0 px, got {max_shift}")
    x, y = kernel_grid(k)
    if sigma_range is None:
        sigma_range = default_sigma_range(k)
    names, p = _class_probabilities(k, class_weights)
    rng = np.random.default_rng(seed)

    def uniform(lo_hi, size):
        if not (np.isfinite(lo_hi).all() and lo_hi[0] <= lo_hi[1]):
            raise ValueError(f"a parameter range must be finite (lo, hi) with lo <= hi, got {lo_hi}")
        return rng.uniform(lo_hi[0], lo_hi[1], size)

    def log_uniform(lo_hi, size):
        if not (np.isfinite(lo_hi).all() and 0 < lo_hi[0] <= lo_hi[1]):
            raise ValueError(f"amplitude and snr ranges must be finite (lo, hi) with 0 < lo <= hi, got {lo_hi}")
        return np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]), size))

    if not anisotropy_range[0] >= 1:
        raise ValueError(f"anisotropy (long/short axis) must be >= 1, got the range {anisotropy_range}")
    codes = rng.choice(len(names), size=n, p=p)
    drawn = np.array(names, dtype=object)[codes]
    params = pd.DataFrame({
        "class": drawn,
        "sigma": uniform(sigma_range, n),
        "ratio": uniform(ratio_range, n),
        "surround": uniform(surround_range, n),
        "theta": uniform((0.0, 360.0), n),
        "anisotropy": uniform(anisotropy_range, n),
        "aniso_angle": uniform((0.0, 180.0), n),
        "cross_sigma": uniform(cross_sigma_range, n),
        "side": rng.choice(np.asarray(square_sides, dtype=np.float64), size=n),
        "corner": np.array(CORNERS, dtype=object)[rng.integers(0, 2, n)],
        "edge": uniform(edge_range, n),
        "shift_x": uniform((-max_shift, max_shift), n),
        "shift_y": uniform((-max_shift, max_shift), n),
        "amplitude": log_uniform(amplitude_range, n),
        "snr": (np.full(n, float(snr)) if np.isscalar(snr) else log_uniform(snr, n)),
    })
    if np.any(params["snr"] <= 0):
        raise ValueError(f"snr must be > 0 (inf for no noise), got {snr}")
    noise_unit = rng.standard_normal((n, k, k), dtype=np.float32)

    clean = np.empty((n, k, k), dtype=np.float64)
    kind = np.empty(n, dtype=object)
    corners = params["corner"].to_numpy()
    theta = params["theta"].to_numpy().copy()
    for code, cls in enumerate(names):
        if cls == OTHER:
            polarity, kind_of, fixed = "", OTHER, None
        else:
            polarity, kind_of, fixed = pattern(cls)
        for corner in (CORNERS if kind_of == "square" else CORNERS[:1]):
            mask = codes == code
            if kind_of == "square":
                mask &= corners == corner
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue
            kind[rows] = kind_of
            if kind_of == OTHER:
                clean[rows] = rng.standard_normal((len(rows), k, k))
                continue
            col = {c: params[c].to_numpy()[rows, None, None] for c in params.columns if c not in ("class", "corner")}
            oriented = kind_of in ORIENTED_KINDS
            if oriented:
                # the angle to 0.1° (as the label writes it), in its canonical range, the polarity
                # flipped where that rotation negates the pattern
                period = ORIENTED_KINDS[kind_of][1]
                angle = np.round(theta[rows] if fixed is None else np.full(len(rows), fixed), 1)
                turns = np.floor(angle / period)
                theta[rows] = np.round(angle - turns * period, 1) % period
                flip = (turns % 2 == 1) & (kind_of != "d2")
                polarities = np.where(flip, "off" if polarity == "on" else "on", polarity)
                col["sign"] = np.where(flip, -1.0, 1.0)[:, None, None]
                drawn[rows] = [oriented_class(pol, kind_of, t) for pol, t in zip(polarities, theta[rows])]
            clean[rows] = col.get("sign", 1.0) * evaluate(
                f"{polarity}-{kind_of}" if oriented else cls, x, y, sigma=col["sigma"], ratio=col["ratio"],
                surround=col["surround"], theta=theta[rows, None, None] if oriented else None,
                anisotropy=col["anisotropy"], aniso_angle=col["aniso_angle"], cross_sigma=col["cross_sigma"],
                side=col["side"], corner=corner, edge=col["edge"], shift=(col["shift_x"], col["shift_y"]),
            )
    params["theta"] = theta
    params["class"] = drawn
    if renderings is not None:
        dog_rows = np.flatnonzero(~np.isin(kind, ["cross", "square", OTHER]))
        _rerender(k, clean, params, dog_rows, renderings, seed, sigma_range, small_sigma, laplacian_range)
    rms = _centred_rms(clean)
    bad = rms <= 0
    if bad.any():
        raise ValueError(f"{int(bad.sum())} synthetic kernels came out constant; widen the parameter ranges for k={k}")
    amplitude = params["amplitude"].to_numpy()
    clean *= (amplitude / rms)[:, None, None]
    clean = clean.astype(np.float32)
    noise_unit *= (amplitude / params["snr"].to_numpy()).astype(np.float32)[:, None, None]
    noisy = clean + noise_unit

    # Mark parameters that do not apply to a kernel's class as missing.
    dog_family = ~np.isin(kind, ["cross", "square", OTHER])
    params.loc[~dog_family, ["sigma", "ratio", "surround", "anisotropy", "aniso_angle"]] = np.nan
    params.loc[~np.isin(kind, list(ORIENTED_KINDS)), "theta"] = np.nan
    params.loc[kind != "cross", "cross_sigma"] = np.nan
    params.loc[kind != "square", ["side", "edge"]] = np.nan
    params.loc[kind != "square", "corner"] = None
    params.loc[kind == OTHER, ["shift_x", "shift_y"]] = np.nan
    merged = np.array([merge_class(c) for c in names])[codes]
    params.insert(1, "merged", merged)
    return SyntheticBank(
        kernels=noisy,
        classes=drawn.astype(str),
        merged=merged,
        clean=clean,
        params=params,
    )


def _rerender(k, clean, params, rows, renderings, seed, sigma_range, small_sigma, laplacian_range) -> None:
    """Draw the DoG-family `rows` of `clean` again, in place, as integrated or discrete kernels of the
    same fine class (see `synthetic_bank`); `params` gains the columns that say how."""
    kinds = ("sampled", "integrated", "discrete")
    unknown = set(renderings) - set(kinds)
    shares = np.array([float(renderings.get(r, 0.0)) for r in kinds])
    if unknown or not (np.isfinite(shares).all() and (shares >= 0).all() and shares.sum() > 0):
        raise ValueError(f"renderings maps {kinds} to shares >= 0 (not all 0), got {dict(renderings)}")
    if not 0 < small_sigma <= sigma_range[1]:
        raise ValueError(f"small_sigma must be in (0, {sigma_range[1]}], got {small_sigma}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CA1E]))
    n = len(params)
    drawn = np.array(kinds, dtype=object)[rng.choice(3, size=n, p=shares / shares.sum())]
    hi = sigma_range[1]
    extra = pd.DataFrame({
        "rendering": np.where(np.isin(np.arange(n), rows), drawn, None),
        "scale": np.exp(rng.uniform(np.log(SCALE_MIN), np.log(hi * hi), n)),
        "small_sigma": np.exp(rng.uniform(np.log(small_sigma), np.log(hi), n)),
        "weight": rng.uniform(0.0, 1.0, n),
        "laplacian": rng.uniform(*laplacian_range, n),
        "difference": np.array(DIFFERENCES, dtype=object)[rng.integers(0, 3, n)],
        "aspect": np.exp(rng.uniform(-1.0, 1.0, n) * np.log(params["anisotropy"].to_numpy() ** 2)),
    })
    names = params["class"].to_numpy()
    for rendering in kinds[1:]:
        these = np.flatnonzero(extra["rendering"].to_numpy() == rendering)
        parts = {}
        for i in these:
            parts.setdefault(pattern(names[i])[:2], []).append(i)
        for (polarity, kind), idx in parts.items():
            idx = np.asarray(idx)
            e, p = extra.iloc[idx], params.iloc[idx]
            sign = 1.0 if polarity == "on" else -1.0
            theta = np.nan_to_num(params["theta"].to_numpy()[idx])
            if rendering == "discrete":
                clean[idx] = sign * discrete(kind, k, scale=e["scale"].to_numpy(), theta=theta,
                                             ratio=p["ratio"].to_numpy(), surround=e["weight"].to_numpy(),
                                             laplacian=e["laplacian"].to_numpy() if kind == "" else 0.0,
                                             aspect=e["aspect"].to_numpy(), difference=e["difference"].to_numpy())
                continue
            col = {c: p[c].to_numpy()[:, None, None] for c in ("ratio", "surround", "anisotropy", "aniso_angle")}
            clean[idx] = integrated(f"{polarity}-{kind}" if kind else polarity, k,
                                    sigma=e["small_sigma"].to_numpy()[:, None, None],
                                    shift=(p["shift_x"].to_numpy()[:, None, None], p["shift_y"].to_numpy()[:, None, None]),
                                    **({"theta": theta[:, None, None]} if kind else {}), **col)
    rendering = extra["rendering"].to_numpy()
    integrated_rows, discrete_rows = rendering == "integrated", rendering == "discrete"
    blob = discrete_rows & np.array([not pattern(c)[1] if r else False for c, r in zip(names, discrete_rows)])
    params.loc[integrated_rows, "sigma"] = extra.loc[integrated_rows, "small_sigma"]
    params.loc[discrete_rows, "sigma"] = np.sqrt(extra.loc[discrete_rows, "scale"])
    params.loc[discrete_rows, "surround"] = extra.loc[discrete_rows, "weight"]
    params.loc[discrete_rows, ["anisotropy", "aniso_angle", "shift_x", "shift_y"]] = np.nan
    params["rendering"] = rendering
    params["scale"] = np.where(discrete_rows, extra["scale"], np.nan)
    params["aspect"] = np.where(discrete_rows, extra["aspect"], np.nan)
    params["difference"] = np.where(discrete_rows & ~blob, extra["difference"], None)
    params["laplacian"] = np.where(blob, extra["laplacian"], np.nan)


def random_kernels(k: int, n: int, seed: int = 0, distribution: str = "normal") -> np.ndarray:
    """i.i.d. random k×k kernels [n, k, k] float32: the control that should hardly cluster.

    "normal" draws N(0, 1) weights; "kaiming" draws PyTorch's default depthwise Conv2d
    initialisation, U(−b, b) with b = 1/sqrt(fan_in) = 1/k.
    """
    rng = np.random.default_rng(seed)
    if distribution == "normal":
        out = rng.standard_normal((n, k, k))
    elif distribution == "kaiming":
        out = rng.uniform(-1.0 / k, 1.0 / k, (n, k, k))
    else:
        raise ValueError(f"distribution must be 'normal' or 'kaiming', got {distribution!r}")
    return out.astype(np.float32)
