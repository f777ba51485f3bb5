"""The DoG family as `fit` searches it: kinds, their parameter ranges, one template at any (σ, θ, shift,
profile) (`render`), and the dictionary of templates on a parameter grid (`build_dictionary`) whose best
matches seed the refinement. See `fit` for the family's table and the method."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..method import dog
from ..vocab import DEGENERATE

#: Kinds of the family, in the order of the dictionary.
KINDS: tuple[str, ...] = ("dog", "d1", "ridge", "saddle", "cross", "square")
#: Period of θ (degrees) of each oriented kind; kinds absent here have no orientation.
THETA_PERIOD = {"d1": 360.0, "ridge": 180.0, "saddle": 180.0, "cross": 90.0}
#: Kinds whose polarity is a separate on/off choice (for d1 and saddle, θ + half a period flips the sign).
SIGNED_KINDS = ("dog", "ridge", "cross", "square")
#: `dog.evaluate` class drawn for each kind (on polarity, θ = 0).
_BASE = {"dog": "on", "d1": "on-dx", "ridge": "on-dxx", "saddle": "on-dxy", "cross": "on-cross",
         "square": "on-square"}
#: Ratio σ2/σ1 of the balanced DoG profile (surround 1).
DOG_RATIO = 2.0


def sigma_range(k: int) -> tuple[float, float]:
    """Centre σ (px) searched on a k×k grid: 0.45 px (about a single pixel) up to 0.45·k
    (beyond that a derivative is a plane across the whole kernel and σ is not identifiable)."""
    return 0.45, 0.45 * k


def cross_sigma_range(k: int) -> tuple[float, float]:
    """σ of the cross's bars: 0.3 px up to 0.2·k (Appendix B draws 0.4–0.8 px on 7×7)."""
    return 0.3, 0.2 * k


# --------------------------------------------------------------------------------------------
# The family on rotated and shifted grids
# --------------------------------------------------------------------------------------------

def render(kind: str, k: int, sigma, theta, shift_x, shift_y, polarity=1.0, surround=0.0,
           side=3.0, corner: str = "upper-left") -> np.ndarray:
    """Raw templates [n, k, k] of one kind; every parameter broadcasts over n (θ in degrees).

    Rotation and shift act on the sampling grid: the template at θ is the θ = 0 template of
    `dog.evaluate` at coordinates u = R(−θ)·(x − shift), so θ turns the pattern by θ.
    """
    if kind not in KINDS:
        raise AnalysisError(f"unknown kind {kind!r}; the family's kinds are {', '.join(KINDS)}")
    x, y = dog.kernel_grid(k)
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                   for v in (sigma, theta, shift_x, shift_y, polarity, surround, side)))
    sig, th, dx, dy, pol, sur, sid = (a[:, None, None] for a in arrays)
    xs, ys = x[None] - dx, y[None] - dy
    if kind in THETA_PERIOD:
        c, s = np.cos(np.deg2rad(th)), np.sin(np.deg2rad(th))
        u, v = c * xs + s * ys, -s * xs + c * ys
    else:
        u, v = xs, ys
    if kind == "cross":
        value = dog.evaluate("on-cross", u, v, cross_sigma=sig)
    elif kind == "square":
        value = dog.evaluate("on-square", u, v, side=sid, corner=corner)
    else:
        value = dog.evaluate(_BASE[kind], u, v, sigma=sig, ratio=DOG_RATIO, surround=sur)
    return pol * value


def _unit(raw: np.ndarray) -> np.ndarray:
    """Centred, unit-length rows [n, k*k] of templates [n, k, k] (a constant template stays 0)."""
    flat = raw.reshape(len(raw), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 0)


def fine_label(kind, polarity, theta) -> np.ndarray:
    """The vocabulary's fine class of fitted templates: the operator whose axis is nearest θ."""
    kind = np.asarray(kind, dtype=object)
    pol = np.where(np.asarray(polarity, dtype=np.float64) >= 0, "on", "off").astype(object)
    th = np.nan_to_num(np.asarray(theta, dtype=np.float64))
    out = np.full(len(kind), DEGENERATE, dtype=object)
    quarter = np.round(th / 90.0).astype(np.int64) % 4          # nearest axis: 0, 90, 180, 270
    for name in ("dog", "cross", "square"):
        m = kind == name
        suffix = {"dog": "", "cross": "-cross", "square": "-square"}[name]
        out[m] = pol[m] + suffix
    m = kind == "d1"
    out[m] = np.array(["on-dx", "on-dy", "off-dx", "off-dy"], dtype=object)[quarter[m]]
    m = kind == "ridge"
    out[m] = pol[m] + np.where(quarter[m] % 2 == 0, "-dxx", "-dyy")
    m = kind == "saddle"
    out[m] = np.where(quarter[m] % 2 == 0, "on-dxy", "off-dxy")
    return out.astype(str)


@dataclass(frozen=True)
class FitDictionary:
    """Templates of the family on a grid of parameters: the search space of `fit_kernels`.

    `atoms` are centred unit rows; `params` one row per atom (kind, polarity, sigma, theta,
    shift_x, shift_y, surround, side, corner); the atoms of one kind and profile (a *group*) are
    contiguous (`spans`).
    """

    k: int
    atoms: np.ndarray            # [A, k*k] float64
    params: pd.DataFrame
    spans: dict                  # (kind, surround) -> (first, last + 1) rows of `atoms`; surround NaN for cross, square
    sigma_bounds: tuple[float, float]
    cross_sigma_bounds: tuple[float, float]
    max_shift: float

    def __len__(self) -> int:
        return len(self.atoms)

    @property
    def atoms32(self) -> np.ndarray:
        """The atoms in float32, for the fast search."""
        return self.atoms.astype(np.float32)


def build_dictionary(k: int, *, n_sigma: int = 7, n_cross_sigma: int = 5, theta_step: float = 30.0,
                     shifts: tuple[float, ...] = (-0.5, 0.0, 0.5), surrounds: tuple[float, ...] = (0.0, 1.0),
                     squares: bool | None = None, square_sides: tuple[float, ...] = (2.0, 3.0),
                     max_shift: float = 1.0) -> FitDictionary:
    """The dictionary of a k×k grid: σ geometric over `sigma_range(k)`, θ every `theta_step`
    degrees of each kind's period, shifts on the grid `shifts`², both radial profiles.
    Squares are included where the paper found them (k == 5) unless `squares` says otherwise.
    `max_shift` bounds the refined centre offset (px, each axis)."""
    if int(k) != k or k < 3:
        raise AnalysisError(f"the family is fitted on k×k kernels with k >= 3, got k={k!r}")
    if not 0 < theta_step <= 90:
        raise AnalysisError(f"theta_step must be in (0, 90] degrees, got {theta_step}")
    k = int(k)
    squares = (k == 5) if squares is None else squares
    sigmas = np.geomspace(*sigma_range(k), n_sigma)
    cross_sigmas = np.geomspace(*cross_sigma_range(k), n_cross_sigma)
    offsets = [(sx, sy) for sy in shifts for sx in shifts]
    rows, blocks, spans = [], [], {}
    for kind in KINDS:
        if kind == "square" and not squares:
            continue
        thetas = np.arange(0.0, THETA_PERIOD[kind], theta_step) if kind in THETA_PERIOD else [np.nan]
        polarities = (1.0, -1.0) if kind in SIGNED_KINDS else (1.0,)
        for profile in ((np.nan,) if kind in ("cross", "square") else surrounds):
            if kind == "square":
                # unshifted: a block that contains the centre pixel (Appendix D); shifted by half a
                # pixel it would blur into a blob and take On/Off-centre kernels
                grid = [dict(polarity=p, side=s, corner=c, shift_x=0.0, shift_y=0.0)
                        for c, p, s in product(dog.CORNERS, polarities, square_sides) if s < k]
                table = pd.DataFrame(grid)
                raw = np.concatenate([render("square", k, np.nan, np.nan, g.shift_x, g.shift_y, g.polarity,
                                             side=g.side, corner=corner)
                                      for corner, g in table.groupby("corner", sort=False)])
            else:
                scales = cross_sigmas if kind == "cross" else sigmas
                grid = [dict(polarity=p, sigma=s, theta=t, surround=profile, shift_x=sx, shift_y=sy)
                        for p, s, t, (sx, sy) in product(polarities, scales, thetas, offsets)]
                table = pd.DataFrame(grid)
                raw = render(kind, k, table.sigma, np.nan_to_num(table.theta), table.shift_x, table.shift_y,
                             table.polarity, np.nan_to_num(table.surround))
            first = sum(len(b) for b in blocks)
            blocks.append(_unit(raw))
            rows.append(table.assign(kind=kind))
            spans[kind, profile] = (first, first + len(table))
    params = pd.concat(rows, ignore_index=True).reindex(
        columns=["kind", "polarity", "sigma", "theta", "shift_x", "shift_y", "surround", "side", "corner"])
    atoms = np.concatenate(blocks)
    if (np.abs(atoms).sum(axis=1) == 0).any():
        raise AnalysisError(f"a template of the {k}×{k} dictionary is constant; choose other sigma ranges")
    return FitDictionary(k=k, atoms=atoms, params=params, spans=spans,
                         sigma_bounds=(float(sigmas[0]), float(sigmas[-1])),
                         cross_sigma_bounds=(float(cross_sigmas[0]), float(cross_sigmas[-1])),
                         max_shift=float(max_shift))


# --------------------------------------------------------------------------------------------
# Search and refinement
# --------------------------------------------------------------------------------------------

#: Entries of the kernels × atoms similarity block computed at once (128 MB of float32).
