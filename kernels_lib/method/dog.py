"""The DoG family of the paper, complete under rotation: analytic functions and templates.

The clusters the paper finds in trained depthwise kernels (§4.2, §5, Figures 1, 12, 13) are the
difference of Gaussians DoG = G(σ1) − w·G(σ2) (σ2 > σ1, normalised Gaussians, so the centre is
positive: "On-centre"), its negative ("Off-centre"), their first and second derivatives, the
cross ±(exp(−x²/2σ²) + exp(−y²/2σ²)) (Appendix B) and, in 5×5 kernels, the On/Off square: a
solid block that contains the centre pixel and extends towards the upper-left or bottom-right
corner (Appendix D).

The paper draws derivatives along the axes only (∂x, ∂y, ∂xx, ∂yy, ∂xy), but trained kernels
are not axis-aligned, so here every derivative comes at any orientation θ (`kernels_lib.vocab`
names them, e.g. "on-d1@30"). Gaussian derivatives are steerable: the first derivative along
u = (cos θ, sin θ) is cos θ·∂x + sin θ·∂y, the second (a ridge) cos²θ·∂xx + sin 2θ·∂xy +
sin²θ·∂yy, and the saddle (∂uu − ∂vv)/2 = cos 2θ·(∂xx − ∂yy)/2 + sin 2θ·∂xy. The Gaussians
may also be anisotropic (an aspect ratio and the angle of the long axis), which trained kernels
often are.

Coordinates follow the array/image convention so that a kernel displays as it is evaluated:
x is the column offset from the kernel centre (positive to the right), y the row offset
(positive downwards), in pixels. "Upper-left" therefore means x < 0 and y < 0.

Class names and how they merge live in `kernels_lib.vocab`. Uses: `evaluate` draws any class
on any grid (k×k kernels, fine grids for the 3-D plots of Figure 1); `template_bank` +
`nearest_template` label kernels by their closest analytic template (mean-centred cosine, as in
the paper's loss), at every orientation. The synthetic training bank drawn from this family (and
`random_kernels`, the i.i.d. control) is in `dog_bank`; the family down to the discrete scale-space
limit (Lindeberg's discrete Gaussian and its differences, box-averaged renderings) in `scale_space`.
Scoring is done on a separately written generator (`kernels_lib.analysis.groundtruth`), never on
these banks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..preprocess import centre_normalise, degenerate_mask
from ..vocab import (CLASSES, FAMILIES, ORIENTED_KINDS, OTHER, merge_class, oriented_class, orientation,
                    unknown_class_message)

CORNERS = ("upper-left", "bottom-right")
#: Smallest centre σ (px) at which point-sampled DoG derivatives keep their shape.
SIGMA_MIN = 0.6



# --------------------------------------------------------------------------------------------
# Grids and analytic functions
# --------------------------------------------------------------------------------------------

def kernel_grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y), each [k, k], of a k×k kernel, origin at its centre."""
    if int(k) != k or k < 2:
        raise ValueError(f"kernel size must be an integer >= 2, got {k!r}")
    c = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def fine_grid(k: int, n: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """An n×n grid over the same extent as a k×k kernel, for smooth 3-D surface plots."""
    half = (k - 1) / 2.0
    c = np.linspace(-half, half, n)
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def _gaussian_jet(x, y, sigma, anisotropy, aniso_angle):
    """The normalised 2-D Gaussian and its derivatives up to order 2: {"g", "x", "y", "xx", "xy", "yy"}.

    Covariance Σ = R diag(σ²a, σ²/a) Rᵀ with R the rotation by `aniso_angle` (degrees): σ is the
    geometric mean width, a = `anisotropy` ≥ 1 the ratio of the long to the short axis. With
    P = Σ⁻¹ and m = P·(x, y): ∇G = −m·G and ∇²G = (m mᵀ − P)·G.
    """
    s2 = sigma * sigma
    phi = np.deg2rad(aniso_angle)
    c, s = np.cos(phi), np.sin(phi)
    long_, short = 1.0 / (s2 * anisotropy), anisotropy / s2      # eigenvalues of P
    pxx = long_ * c * c + short * s * s
    pyy = long_ * s * s + short * c * c
    pxy = (long_ - short) * c * s
    mx = pxx * x + pxy * y
    my = pxy * x + pyy * y
    g = np.exp(-0.5 * (x * mx + y * my)) / (2.0 * np.pi * s2)
    return {"g": g, "x": -mx * g, "y": -my * g, "xx": (mx * mx - pxx) * g, "xy": (mx * my - pxy) * g,
            "yy": (my * my - pyy) * g}


def _steer(kind: str, theta, jet: dict):
    """The oriented derivative `kind` ("" for none) along θ (degrees) from a Gaussian jet."""
    if not kind:
        return jet["g"]
    t = np.deg2rad(theta)
    c, s = np.cos(t), np.sin(t)
    if kind == "d1":
        return c * jet["x"] + s * jet["y"]
    if kind == "d2":
        return c * c * jet["xx"] + 2.0 * c * s * jet["xy"] + s * s * jet["yy"]
    return (c * c - s * s) * 0.5 * (jet["xx"] - jet["yy"]) + 2.0 * c * s * jet["xy"]   # saddle


def _square(x, y, side, direction, edge):
    """Soft indicator of a side×side block that contains the centre pixel and extends
    towards the upper-left (direction −1) or bottom-right (+1) corner; `edge` is the width
    of its logistic border in pixels (0.1 ≈ a hard block on the pixel grid)."""
    centre = direction * (side - 1.0) / 2.0
    half = side / 2.0

    def inside(u):
        return 0.5 * (1.0 + np.tanh((half - np.abs(u - centre)) / (2.0 * edge)))

    return inside(x) * inside(y)


def pattern(cls: str) -> tuple[str, str, float | None]:
    """(polarity, kind, θ) that `evaluate` draws for a class name: kind "" (the DoG itself), "cross",
    "square", or an oriented kind "d1"/"d2"/"saddle" with its angle (None for a name without one)."""
    if cls in FAMILIES:
        polarity, kind = cls.split("-", 1)
        return polarity, kind, None
    try:
        oriented = orientation(cls)
    except ValueError:
        oriented = None
    if oriented is not None:
        return oriented
    if cls in CLASSES:
        polarity, _, kind = cls.partition("-")
        return polarity, kind, None
    analytic = ", ".join(CLASSES + FAMILIES)
    if cls == OTHER:
        raise ValueError(f"cannot evaluate class {cls!r}; analytic classes: {analytic} and oriented names like 'on-d1@30'")
    raise ValueError(unknown_class_message(cls) if isinstance(cls, str) else f"class name must be a string, got {cls!r}")


def evaluate(
    cls: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sigma=1.0,
    ratio=2.0,
    surround=1.0,
    theta=None,
    anisotropy=1.0,
    aniso_angle=0.0,
    cross_sigma=0.6,
    side=3.0,
    corner: str = "upper-left",
    edge=0.1,
    shift=(0.0, 0.0),
    amplitude=1.0,
) -> np.ndarray:
    """Value of class `cls` at coordinates (x, y); parameters broadcast against the grid.

    DoG family (on, off and their derivatives): DoG = G(sigma) − surround·G(ratio·sigma), both
    Gaussians with the same `anisotropy` (long/short axis ≥ 1) and long-axis angle `aniso_angle`
    (degrees). A derivative takes its orientation from its name ("on-d1@30", "on-dx" = 0°) or,
    for a name without one ("on-d1"), from `theta` (degrees, may be an array). Cross:
    ±(exp(−x²/2·cross_sigma²) + exp(−y²/2·cross_sigma²)). Square: ±block of `side` pixels towards
    `corner` with border width `edge`. `shift` = (dx, dy) moves the pattern's centre by sub-pixel
    amounts; `amplitude` scales it. Values are raw (not centred).
    """
    polarity, kind, named_theta = pattern(cls)
    sign = 1.0 if polarity == "on" else -1.0
    u = np.asarray(x, dtype=np.float64) - shift[0]
    v = np.asarray(y, dtype=np.float64) - shift[1]
    if kind == "cross":
        if np.any(np.asarray(cross_sigma) <= 0):
            raise ValueError(f"cross_sigma must be > 0, got {cross_sigma}")
        s2 = 2.0 * np.asarray(cross_sigma, dtype=np.float64) ** 2
        value = np.exp(-u * u / s2) + np.exp(-v * v / s2)
    elif kind == "square":
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
        if np.any(np.asarray(side) <= 0) or np.any(np.asarray(edge) <= 0):
            raise ValueError(f"square side and edge must be > 0, got side={side}, edge={edge}")
        value = _square(u, v, np.asarray(side, dtype=np.float64), -1.0 if corner == "upper-left" else 1.0, edge)
    else:
        if np.any(np.asarray(sigma) <= 0) or np.any(np.asarray(ratio) <= 1) or np.any(np.asarray(surround) < 0):
            raise ValueError(
                f"need sigma > 0, ratio = sigma2/sigma1 > 1 and surround >= 0, "
                f"got sigma={sigma}, ratio={ratio}, surround={surround}"
            )
        if not np.all(np.asarray(anisotropy) >= 1):
            raise ValueError(f"anisotropy is the ratio of the long to the short axis, >= 1; got {anisotropy}")
        if kind and named_theta is not None and theta is not None:
            raise ValueError(f"{cls!r} names its orientation; pass theta= only with a name without one, like 'on-d1'")
        theta = named_theta if named_theta is not None else (0.0 if theta is None else theta)
        if kind and not np.all(np.isfinite(np.asarray(theta, dtype=np.float64))):
            raise ValueError(f"theta must be finite degrees, got {theta}")
        s1 = np.asarray(sigma, dtype=np.float64)
        centre = _gaussian_jet(u, v, s1, anisotropy, aniso_angle)
        wide = _gaussian_jet(u, v, s1 * ratio, anisotropy, aniso_angle)
        value = _steer(kind, theta, centre) - surround * _steer(kind, theta, wide)
    return sign * amplitude * value


def default_sigma_range(k: int) -> tuple[float, float]:
    """Centre σ (px) of the DoG family on a k×k grid: 0.6 px up to 1.5 px scaled by k/7.

    Below ~0.6 px a point-sampled Gaussian aliases: its derivatives collapse onto one or two
    pixels and a shifted ∂y DoG looks like a DoG, so the classes stop being distinguishable.
    """
    return SIGMA_MIN, max(SIGMA_MIN, 1.5 * k / 7.0)


# --------------------------------------------------------------------------------------------
# Template bank and nearest-template labelling
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateBank:
    """Analytic templates on a k×k grid, each centred and of unit length, with their labels."""

    kernels: np.ndarray          # [T, k, k] float64, centred, unit length
    classes: list[str]           # fine class of each template
    merged: list[str]            # merged class of each template
    params: pd.DataFrame         # one row per template: the parameters that drew it

    @property
    def k(self) -> int:
        return int(self.kernels.shape[1])


def template_bank(
    k: int,
    sigmas: tuple[float, ...] | None = None,
    ratios: tuple[float, ...] = (1.6, 2.0, 3.0),
    cross_sigmas: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8),
    squares: bool | None = None,
    square_sides: tuple[float, ...] = (2.0, 3.0),
    shifts: tuple[float, ...] = (-0.2, 0.0, 0.2),
    angle_step: float = 15.0,
) -> TemplateBank:
    """Several templates per class so that nearest-template matching is robust to σ and orientation.

    `sigmas` (centre σ of the DoG family) default to 5 values over `default_sigma_range(k)`; `cross_sigmas`
    follow Appendix B (0.4–0.8 px on 7×7). Derivatives are drawn at every `angle_step` degrees over
    their canonical range (d1 and d2: [0, 180), saddles: [0, 90), both polarities), so every
    orientation has a template within half a step: at the default 15° a derivative rotated
    halfway between two templates keeps a cosine ≥ 0.96 with the nearer one (d1 ≈ cos 7.5°,
    saddle ≈ cos 15°). Squares are included where they occur (k == 5) unless `squares` says
    otherwise. Every pattern is also drawn shifted by each (dx, dy) in `shifts`², since trained
    patterns sit off-centre by fractions of a pixel: with the default 9 shifts a clean synthetic
    kernel finds a template with cosine > 0.9 instead of ~0.6 for narrow shifted derivatives;
    `shifts=(0.0,)` gives a bank 9× smaller and faster to match.
    """
    x, y = kernel_grid(k)
    if sigmas is None:
        sigmas = tuple(np.linspace(*default_sigma_range(k), 5))
    if squares is None:
        squares = k == 5
    if not (np.isfinite(angle_step) and 0 < angle_step <= 90):
        raise ValueError(f"angle_step must be in (0, 90] degrees, got {angle_step}")
    patterns: list[tuple[str, list[dict]]] = []        # (class name, parameter variants)
    dog_variants = [{"sigma": s, "ratio": r} for s in sigmas for r in ratios]
    for cls in ("on", "off"):
        patterns.append((cls, dog_variants))
    for cls in ("on-cross", "off-cross"):
        patterns.append((cls, [{"cross_sigma": s} for s in cross_sigmas]))
    for kind, (_, period) in ORIENTED_KINDS.items():
        for angle in np.arange(0.0, period - 1e-9, angle_step):
            for polarity in ("on", "off"):
                patterns.append((oriented_class(polarity, kind, float(angle)), dog_variants))
    if squares:
        for cls in ("on-square", "off-square"):
            patterns.append((cls, [{"side": s, "corner": c} for s in square_sides if s < k for c in CORNERS]))
    rows: list[dict] = []
    kernels = []
    shift_pairs = [(sx, sy) for sy in shifts for sx in shifts]
    for cls, variants in patterns:
        for corner in dict.fromkeys(v.get("corner", "upper-left") for v in variants):
            chosen = [v for v in variants if v.get("corner", "upper-left") == corner]
            table = pd.DataFrame([{**v, "shift_x": sx, "shift_y": sy} for v in chosen for sx, sy in shift_pairs])
            col = {c: table[c].to_numpy()[:, None, None] for c in table.columns if c != "corner"}
            kernels.append(evaluate(cls, x, y, shift=(col.pop("shift_x"), col.pop("shift_y")),
                                    **({"corner": corner} if "square" in cls else {}), **col))
            rows += [{"class": cls, **r} for r in table.to_dict("records")]
    raw = np.concatenate(kernels)
    bad = degenerate_mask(raw)
    if bad.any():
        which = [rows[i] for i in np.flatnonzero(bad)]
        raise ValueError(f"templates constant on a {k}×{k} grid (choose other parameters): {which}")
    unit = centre_normalise(raw).reshape(raw.shape)
    classes = [r["class"] for r in rows]
    return TemplateBank(
        kernels=unit,
        classes=classes,
        merged=[merge_class(c) for c in classes],
        params=pd.DataFrame(rows),
    )


#: Entries of the kernels × templates similarity block computed at once (128 MB of float64).
_MATCH_BLOCK = 1 << 24


@dataclass(frozen=True)
class TemplateMatch:
    """Nearest template of each kernel. Degenerate kernels (constant, all zero, NaN/inf) get
    class "other", cosine 0, index −1 and `degenerate` True; kernels whose best cosine is below
    `min_cosine` get class "other" with their true cosine and index. Unpacks as (classes, cosine)."""

    classes: np.ndarray          # [N] fine class names (str)
    merged: np.ndarray           # [N] merged class names (str)
    cosine: np.ndarray           # [N] float64 mean-centred cosine with the nearest template
    index: np.ndarray            # [N] int, row of the nearest template in the bank, −1 if degenerate
    degenerate: np.ndarray       # [N] bool

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.classes, self.cosine))


def nearest_template(
    kernels: np.ndarray,
    bank: TemplateBank,
    min_cosine: float | None = None,
    progress: bool = False,
) -> TemplateMatch:
    """Label kernels [N, k, k] by their nearest template (largest mean-centred cosine)."""
    arr = np.asarray(kernels)
    if arr.ndim != 3 or arr.shape[1:] != bank.kernels.shape[1:]:
        raise ValueError(
            f"kernels must have shape [N, {bank.k}, {bank.k}] to match the bank, got {arr.shape}; "
            f"build a bank with template_bank({arr.shape[-1] if arr.ndim else '?'})"
        )
    n = arr.shape[0]
    flat = arr.reshape(n, bank.k * bank.k)
    bad = degenerate_mask(flat)
    templates = bank.kernels.reshape(len(bank.classes), -1)
    index = np.full(n, -1, dtype=np.int64)
    cosine = np.zeros(n, dtype=np.float64)
    good = np.flatnonzero(~bad)
    chunk = max(1, _MATCH_BLOCK // len(templates))  # bounds the [chunk, T] similarity block
    for start in tqdm(range(0, len(good), chunk), desc="nearest template", disable=not progress):
        rows = good[start:start + chunk]
        sims = centre_normalise(flat[rows]) @ templates.T
        best = sims.argmax(axis=1)
        index[rows] = best
        cosine[rows] = sims[np.arange(len(rows)), best]
    names = np.array(bank.classes + [OTHER], dtype=object)
    classes = names[index]  # index −1 picks "other"
    if min_cosine is not None:
        classes = np.where(cosine < min_cosine, OTHER, classes)
    classes = classes.astype(str)
    merged = np.array([merge_class(c) for c in classes], dtype=str)
    return TemplateMatch(classes=classes, merged=merged, cosine=cosine, index=index, degenerate=bad)
