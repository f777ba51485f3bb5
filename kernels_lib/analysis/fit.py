"""An autoencoder-free cross-check: fit every kernel to the DoG family directly.

The paper names a kernel by the decoded code of an autoencoder nearest to it. This module asks
the family itself instead: which member of the DoG family — kind, polarity, scale σ,
orientation θ, sub-pixel centre offset — has the largest mean-centred cosine with the kernel,
and how large is it. Nothing is trained, so nothing depends on the corpus the autoencoder saw.

The family (`dog.evaluate` drawn on rotated and shifted coordinates: rotating the sampling grid
rotates any template exactly, and derivatives of an isotropic profile are steerable):

=========  =====================================================  ========================
kind       template at (σ, θ, shift)                              θ range, polarity
=========  =====================================================  ========================
dog        ±DoG: on/off-centre (isotropic, no θ)                  —, on/off
d1         directional derivative cos θ·∂x + sin θ·∂y of the DoG   [0°, 360°), polarity in θ
ridge      ±second derivative along θ, cos²θ·∂xx + sin 2θ·∂xy +    [0°, 180°), on/off
           sin²θ·∂yy (a line across the θ direction)
saddle     ∂u∂v with u along θ, v along θ + 90° (θ = 0: ∂xy)       [0°, 180°), polarity in θ
cross      ±(exp(−u²/2σ²) + exp(−v²/2σ²)), axes u, v at θ          [0°, 90°), on/off
square     ±solid block containing the centre pixel, towards the   —, on/off (5×5 only; not
           upper-left or bottom-right corner                      shifted, not refined)
=========  =====================================================  ========================

θ is in degrees, measured from the +x axis (columns, to the right) towards +y (rows,
downwards), as `dog` draws kernels. The DoG-family kinds come in two radial profiles: the
Gaussian itself (`surround` 0, the scale-space derivatives) and the balanced DoG
G(σ) − G(2σ) (`surround` 1); σ is the centre σ, the cross's σ for crosses. Every kernel gets
a fine class of `kernels_lib.vocab` (the derivative operator whose axis is nearest θ, e.g. a
first derivative at 80° is "on-dy") and keeps θ as a number.

How (`fit_kernels`): a dictionary of templates on a grid of (kind, polarity, σ, θ, shift,
profile), searched by one matrix product per block of kernels (float32 BLAS); the best
template of the best `candidates` kinds then seeds a Levenberg–Marquardt refinement of the
continuous parameters (σ, θ, shift; float64, vectorised over kernels), and the kind with the
largest refined cosine wins. `method="reference"` does the same plainly — a float64
brute-force search and scipy's `least_squares` kernel by kernel — to check the fast path
(`benchmarks/bench_fit.py`). Degenerate kernels (constant, all zero, NaN/inf) are flagged
and get no parameters (NaN), never a fit. The same kernels give the same numbers: nothing is
random and BLAS runs on `num_threads` threads (default 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..database import store
from ..errors import AnalysisError
from ..preprocess import centre_normalise, degenerate_mask
from ..vocab import DEGENERATE, UNCLUSTERED, merge_classes, paper_threshold
from .fit_dictionary import (DOG_RATIO, SIGNED_KINDS, THETA_PERIOD, FitDictionary,  # noqa: F401 (DOG_RATIO:
                             _unit, build_dictionary, fine_label, render)           # the fit's API)

#: Which of the continuous parameters (σ, θ in radians, shift x, shift y) each kind refines.
_ACTIVE = {"dog": (True, False, True, True), "d1": (True, True, True, True), "ridge": (True, True, True, True),
           "saddle": (True, True, True, True), "cross": (True, True, True, True),
           "square": (False, False, False, False)}
#: Forward-difference steps of the Jacobian (σ in px, θ in radians, shifts in px).
_STEP = np.array([1e-5, 1e-5, 1e-5, 1e-5])
#: Columns of `fit_kernels`, in order.
FIT_COLUMNS = [
    "kind",           # one of KINDS, or "degenerate"
    "label",          # fine class of kernels_lib.vocab (operator nearest θ), or "degenerate"
    "merged",         # merged class (vocab.merge_class)
    "sigma",          # centre σ (px) of the DoG family; the cross's σ for crosses; NaN for squares
    "theta",          # orientation in degrees within the kind's period; NaN for dog, square
    "shift_x",        # centre offset (px), + to the right
    "shift_y",        # centre offset (px), + downwards
    "surround",       # radial profile: 0 Gaussian, 1 balanced DoG G(σ) − G(2σ); NaN for cross, square
    "side",           # side of a square's block (px); NaN otherwise
    "corner",         # corner a square's block extends towards ("upper-left", "bottom-right"); None otherwise
    "cosine",         # mean-centred cosine of kernel and fitted template, in [−1, 1]; NaN if degenerate
    "search_cosine",  # cosine of the best dictionary template before refinement
    "degenerate",     # no direction: not fitted
]


_SEARCH_BLOCK = 1 << 25


def _best_per_group(sims: np.ndarray, spans: dict) -> tuple[np.ndarray, np.ndarray]:
    """Index [n, groups] of each group's best atom and its cosine [n, groups]."""
    index = np.empty((len(sims), len(spans)), dtype=np.int64)
    value = np.empty((len(sims), len(spans)))
    rows = np.arange(len(sims))
    for j, (lo, hi) in enumerate(spans.values()):
        best = sims[:, lo:hi].argmax(axis=1)
        index[:, j] = lo + best
        value[:, j] = sims[rows, lo + best]
    return index, value


def _candidates(index: np.ndarray, value: np.ndarray, candidates: int, margin: float):
    """(kernel row, atom, search cosine) of the best atom of the `candidates` best groups (kind and
    profile) of each kernel, kept when within `margin` of the kernel's best cosine."""
    order = np.argsort(-value, axis=1, kind="stable")[:, :candidates]
    rows = np.repeat(np.arange(len(index)), order.shape[1])
    cols = order.ravel()
    val = value[rows, cols]
    keep = val >= value.max(axis=1)[rows] - margin
    keep[::order.shape[1]] = True                       # the best group always
    return rows[keep], index[rows[keep], cols[keep]], val[keep]


def _bounds(dictionary: FitDictionary, kind: str) -> tuple[np.ndarray, np.ndarray]:
    lo_s, hi_s = dictionary.cross_sigma_bounds if kind == "cross" else dictionary.sigma_bounds
    m = dictionary.max_shift
    return np.array([lo_s, -np.inf, -m, -m]), np.array([hi_s, np.inf, m, m])


def _templates(kind: str, k: int, p: np.ndarray, pol: np.ndarray, sur: np.ndarray) -> np.ndarray:
    """Centred unit templates [n, k*k] at parameters p [n, 4] (θ in radians)."""
    return _unit(render(kind, k, p[:, 0], np.rad2deg(p[:, 1]), p[:, 2], p[:, 3], pol, sur))


def _lm_refine(kind: str, k: int, x: np.ndarray, p: np.ndarray, pol: np.ndarray, sur: np.ndarray,
               lower: np.ndarray, upper: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg–Marquardt on the cosine, all rows at once: maximise c(p) = x·u(p) for unit kernels
    x [n, d] and unit templates u(p), through the residual r = x − c·u (|r|² = 1 − c²).

    The Jacobian is taken by forward differences at the start and after a refused step, and
    updated by Broyden's rank-one formula after an accepted one (one template evaluation per
    step instead of one per parameter). Steps that do not raise c are refused (the damping
    rises), so c never decreases; a row stops when a step gains less than `tol`, when the
    damping has grown past any useful step, or after `max_iter` steps."""
    active = np.flatnonzero(_ACTIVE[kind])
    n_par = len(active)
    n, d = x.shape
    u = _templates(kind, k, p, pol, sur)
    c = np.einsum("ij,ij->i", x, u)
    damping = np.full(n, 1e-3)
    jac = np.empty((n_par, n, d))           # parameter-major: each ∂r/∂p_a is a contiguous [n, d] block
    stale = np.ones(n, dtype=bool)          # the Jacobian must be taken by differences at the current p
    live = np.arange(n)
    for _ in range(max_iter):
        if not len(live):
            break
        new = live[stale[live]]
        if len(new):
            xs, ps, us, cs = x[new], p[new], u[new], c[new]
            for j, a in enumerate(active):
                step = np.zeros(4)
                step[a] = _STEP[a]
                du = (_templates(kind, k, ps + step, pol[new], sur[new]) - us) / _STEP[a]
                # r = x − (x·u) u  ⇒  ∂r = −(x·∂u) u − c ∂u
                jac[j, new] = -np.einsum("ij,ij->i", xs, du)[:, None] * us - cs[:, None] * du
            stale[new] = False
        xs, ps, us, cs, js = x[live], p[live], u[live], c[live], jac[:, live]
        r = xs - cs[:, None] * us
        jtj = np.empty((len(live), n_par, n_par))
        jtr = np.empty((len(live), n_par))
        for i in range(n_par):
            jtr[:, i] = np.einsum("ij,ij->i", js[i], r)
            for j in range(i, n_par):
                jtj[:, i, j] = jtj[:, j, i] = np.einsum("ij,ij->i", js[i], js[j])
        diag = np.einsum("naa->na", jtj)
        lhs = jtj + (damping[live, None] * (diag + 1e-12))[:, :, None] * np.eye(n_par)
        delta = -np.linalg.solve(lhs, jtr[:, :, None])[:, :, 0]
        trial = ps.copy()
        trial[:, active] = np.clip(ps[:, active] + delta, lower[active], upper[active])
        ut = _templates(kind, k, trial, pol[live], sur[live])
        ct = np.einsum("ij,ij->i", xs, ut)
        better = ct > cs
        # Broyden: J += (Δr − J Δp) Δpᵀ / |Δp|² on accepted steps
        dp = trial[better][:, active] - ps[better][:, active]
        norm2 = np.einsum("ij,ij->i", dp, dp)
        ok = norm2 > 0
        moved = live[better]
        if ok.any():
            rt = xs[better][ok] - ct[better][ok, None] * ut[better][ok]
            predicted = np.einsum("anj,na->nj", js[:, better][:, ok], dp[ok])
            resid = rt - r[better][ok] - predicted
            jac[:, moved[ok]] += (dp[ok] / norm2[ok, None]).T[:, :, None] * resid[None]
        gain = np.where(better, ct - cs, 0.0)
        p[moved], u[moved], c[moved] = trial[better], ut[better], ct[better]
        stale[live[~better]] = True
        damping[live] = np.where(better, damping[live] / 3.0, damping[live] * 4.0)
        done = (better & (gain < tol)) | (~better & (damping[live] > 1e6))
        live = live[~done]
    return p, c


def _canonical_theta(kind, theta_deg: np.ndarray) -> np.ndarray:
    """θ within each kind's period; NaN for kinds without orientation."""
    period = pd.Series(kind).map(THETA_PERIOD).to_numpy(dtype=np.float64)
    return np.where(np.isnan(period), np.nan, np.mod(theta_deg, np.where(np.isnan(period), 1.0, period)))


def _result_frame(bad: np.ndarray, best: dict) -> pd.DataFrame:
    """FIT_COLUMNS for every kernel from the winning fits of the non-degenerate ones (in order)."""
    good = ~bad
    kind = np.asarray(best["kind"], dtype=object)
    theta = _canonical_theta(kind, best["theta"])
    label = fine_label(kind, best["polarity"], theta)
    square = kind == "square"
    no_profile = square | (kind == "cross")
    values = {
        "kind": kind, "label": label, "merged": merge_classes(label),
        "sigma": np.where(square, np.nan, best["sigma"]), "theta": theta,
        "shift_x": best["shift_x"], "shift_y": best["shift_y"],
        "surround": np.where(no_profile, np.nan, best["surround"]),
        "side": np.where(square, best["side"], np.nan),
        "corner": np.where(square, best["corner"], None),
        "cosine": best["cosine"], "search_cosine": best["search_cosine"],
    }
    columns = {}
    for col, v in values.items():
        v = np.asarray(v)
        text = col in ("kind", "label", "merged", "corner")
        full = np.full(len(bad), None if col == "corner" else DEGENERATE, dtype=object) if text else \
            np.full(len(bad), np.nan)
        full[good] = v
        columns[col] = full.astype(str) if col in ("kind", "label", "merged") else full
    return pd.DataFrame({**columns, "degenerate": bad})[FIT_COLUMNS]


def _winners(dictionary: FitDictionary, x: np.ndarray, rows: np.ndarray, atoms: np.ndarray, search_cos: np.ndarray,
             refine) -> dict:
    """Refine every (kernel, atom) candidate with `refine(kind, x, p0, pol, sur, lower, upper)`, then keep
    each kernel's best refined fit. Returns per good kernel: kind, polarity, parameters, cosines."""
    par = dictionary.params.iloc[atoms]
    kinds = par["kind"].to_numpy()
    p = np.column_stack([par["sigma"].to_numpy(), np.deg2rad(np.nan_to_num(par["theta"].to_numpy())),
                         par["shift_x"].to_numpy(), par["shift_y"].to_numpy()])
    pol = par["polarity"].to_numpy(dtype=np.float64)
    sur = np.nan_to_num(par["surround"].to_numpy(dtype=np.float64))
    cos = search_cos.astype(np.float64).copy()
    for kind in pd.unique(kinds):
        if not any(_ACTIVE[kind]):
            continue
        m = np.flatnonzero(kinds == kind)
        lower, upper = _bounds(dictionary, kind)
        p[m], cos[m] = refine(kind, x[rows[m]], p[m].copy(), pol[m], sur[m], lower, upper)
    # each kernel's best candidate (ties: the earlier kind of KINDS)
    order = np.lexsort((atoms, -cos, rows))
    first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
    return {"kind": kinds[first], "polarity": pol[first], "sigma": p[first, 0], "theta": np.rad2deg(p[first, 1]),
            "shift_x": p[first, 2], "shift_y": p[first, 3], "surround": sur[first],
            "side": par["side"].to_numpy(dtype=np.float64)[first], "corner": par["corner"].to_numpy(dtype=object)[first],
            "cosine": cos[first],
            "search_cosine": search_cos[first].astype(np.float64)}


def fit_kernels(kernels, dictionary: FitDictionary | None = None, *, method: str = "fast", candidates: int = 3,
                margin: float = 0.05, max_iter: int = 10, tol: float = 1e-7, chunk: int = 20000,
                num_threads: int = 1, progress: bool = False) -> pd.DataFrame:
    """Fit kernels [N, k, k] to the DoG family: one row per kernel with `FIT_COLUMNS`.

    The best template of each of the `candidates` best groups (kind and radial profile; those
    within `margin` of the best cosine) is refined; the largest refined cosine wins. `method`:
    "fast" (float32 search, vectorised Levenberg–Marquardt of at most `max_iter` steps) or
    "reference" (float64 brute force, scipy `least_squares` per kernel: slow, for checking).
    Degenerate kernels get kind and label "degenerate" and NaN numbers. `chunk` kernels are
    fitted at a time (memory); BLAS runs on `num_threads` threads.
    """
    arr = np.asarray(kernels)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise AnalysisError(f"expected square kernels [N, k, k], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise AnalysisError(f"kernels must be numeric, got dtype {arr.dtype}")
    if method not in ("fast", "reference"):
        raise AnalysisError(f"method must be 'fast' or 'reference', got {method!r}")
    if candidates < 1 or margin < 0:
        raise AnalysisError(f"need candidates >= 1 and margin >= 0, got {candidates} and {margin}")
    k = arr.shape[1]
    dictionary = build_dictionary(k) if dictionary is None else dictionary
    if dictionary.k != k:
        raise AnalysisError(f"the dictionary is for {dictionary.k}×{dictionary.k} kernels, got {k}×{k}; "
                            f"build one with fit.build_dictionary({k})")
    n = len(arr)
    flat = arr.reshape(n, k * k)
    bad = degenerate_mask(flat) if n else np.zeros(0, dtype=bool)
    good = np.flatnonzero(~bad)
    parts = []
    step = max(1, int(chunk))
    with threadpool_limits(num_threads):
        for start in tqdm(range(0, len(good), step), desc=f"fit {k}×{k}", disable=not progress):
            rows = good[start:start + step]
            x = centre_normalise(flat[rows])
            if method == "fast":
                parts.append(_fit_fast(dictionary, x, candidates, margin, max_iter, tol))
            else:
                parts.append(_fit_reference(dictionary, x, candidates, margin))
    best = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else \
        {key: np.zeros(0) for key in ("kind", "polarity", "sigma", "theta", "shift_x", "shift_y", "surround", "side",
                                      "corner", "cosine", "search_cosine")}
    return _result_frame(bad, best)


def _fit_fast(dictionary: FitDictionary, x: np.ndarray, candidates: int, margin: float, max_iter: int,
              tol: float) -> dict:
    k = dictionary.k
    block = max(1, _SEARCH_BLOCK // len(dictionary))
    x32, atoms32 = x.astype(np.float32), dictionary.atoms32
    index, value = [], []
    for s in range(0, len(x), block):
        i, v = _best_per_group(x32[s:s + block] @ atoms32.T, dictionary.spans)
        index.append(i)
        value.append(v)
    rows, atoms, cos = _candidates(np.concatenate(index), np.concatenate(value), candidates, margin)
    # the float32 search picks the atoms; their cosines are recomputed in float64
    cos = np.einsum("ij,ij->i", x[rows], dictionary.atoms[atoms])

    def refine(kind, xs, p0, pol, sur, lower, upper):
        return _lm_refine(kind, k, xs, p0, pol, sur, lower, upper, max_iter, tol)

    return _winners(dictionary, x, rows, atoms, cos, refine)


def _fit_reference(dictionary: FitDictionary, x: np.ndarray, candidates: int, margin: float) -> dict:
    from scipy.optimize import least_squares

    k = dictionary.k
    index, value = _best_per_group(x @ dictionary.atoms.T, dictionary.spans)
    rows, atoms, cos = _candidates(index, value, candidates, margin)

    def refine(kind, xs, p0, pol, sur, lower, upper):
        active = np.flatnonzero(_ACTIVE[kind])
        out_p, out_c = p0.copy(), np.empty(len(xs))
        for i in range(len(xs)):
            full = p0[i].copy()

            def residual(q, i=i, full=full):
                full[active] = q
                u = _templates(kind, k, full[None], pol[i:i + 1], sur[i:i + 1])[0]
                return xs[i] - (xs[i] @ u) * u

            start = np.clip(p0[i, active], lower[active], upper[active])
            sol = least_squares(residual, start, bounds=(lower[active], upper[active]), x_scale="jac")
            full[active] = sol.x
            c_new = float(xs[i] @ _templates(kind, k, full[None], pol[i:i + 1], sur[i:i + 1])[0])
            c_old = float(xs[i] @ _templates(kind, k, p0[i][None], pol[i:i + 1], sur[i:i + 1])[0])
            if c_new >= c_old:
                out_p[i], out_c[i] = full, c_new
            else:                                   # 1 − c² fell by flipping the sign: keep the start
                out_p[i], out_c[i] = p0[i], c_old
        return out_p, out_c

    return _winners(dictionary, x, rows, atoms, cos, refine)


def fitted_templates(fit: pd.DataFrame, k: int) -> np.ndarray:
    """The fitted template of each row of a fit (`FIT_COLUMNS`) as a centred unit kernel [n, k, k]:
    what the fit says each kernel is. Degenerate rows have none: they are refused."""
    if fit["degenerate"].to_numpy(dtype=bool).any():
        raise AnalysisError("degenerate kernels have no fitted template; drop rows with fit['degenerate'] first")
    out = np.empty((len(fit), k * k))
    polarity = np.where(fit["label"].str.startswith("off") & fit["kind"].isin(SIGNED_KINDS), -1.0, 1.0)
    for kind, idx in fit.groupby("kind", sort=False).indices.items():
        rows = fit.iloc[idx]
        if kind == "square":
            for c, sub in rows.groupby("corner", sort=False).indices.items():
                out[idx[sub]] = _unit(render("square", k, np.nan, np.nan, rows["shift_x"].to_numpy()[sub],
                                             rows["shift_y"].to_numpy()[sub], polarity[idx[sub]],
                                             side=rows["side"].to_numpy()[sub], corner=c))
            continue
        out[idx] = _unit(render(kind, k, rows["sigma"].to_numpy(), np.nan_to_num(rows["theta"].to_numpy()),
                                rows["shift_x"].to_numpy(), rows["shift_y"].to_numpy(), polarity[idx],
                                np.nan_to_num(rows["surround"].to_numpy())))
    return out.reshape(len(fit), k, k)


# --------------------------------------------------------------------------------------------
# Labels at a threshold, and whole databases
# --------------------------------------------------------------------------------------------

def fit_labels(fit: pd.DataFrame, threshold: float | None = None, kernel_size: int | None = None,
               column: str = "merged") -> np.ndarray:
    """Labels of a fit under the paper's rule: `column` ("merged" or "label") where 1 − cosine
    is strictly below `threshold` (default the paper's for `kernel_size`), else "unclustered";
    degenerate kernels stay "degenerate"."""
    if threshold is None:
        if kernel_size is None:
            raise AnalysisError("pass threshold= or kernel_size= (the paper's threshold of that size is used)")
        threshold = paper_threshold(kernel_size)
    if not 0.0 < float(threshold) <= 2.0:
        raise AnalysisError(f"threshold is a dissimilarity 1 − cos in (0, 2], got {threshold}")
    labels = fit[column].to_numpy(dtype=object).copy()
    clustered = (1.0 - fit["cosine"].to_numpy(dtype=np.float64)) < float(threshold)   # NaN: False
    labels[~clustered & ~fit["degenerate"].to_numpy(dtype=bool)] = UNCLUSTERED
    return labels.astype(str)


#: Kernel metadata kept beside a database's fit.
META_COLUMNS = ["model", "weights_tag", "layer", "depth", "channel", "kh", "kw"]


def fit_database(db, kernel_sizes=(5, 7), models=None, weights_tags=None, progress: bool = False,
                 **options) -> pd.DataFrame:
    """Fit every k×k kernel of a kernel database (directory or file) for each k in `kernel_sizes`:
    `META_COLUMNS` + `FIT_COLUMNS`, one row per kernel. `options` go to `fit_kernels`."""
    parts = []
    for k in kernel_sizes:
        meta, kernels = store.read_kernel_array(db, int(k), models=models, weights_tags=weights_tags,
                                                columns=META_COLUMNS)
        if not len(meta):
            continue
        fit = fit_kernels(kernels, build_dictionary(int(k)), progress=progress, **options)
        parts.append(pd.concat([meta[META_COLUMNS].reset_index(drop=True), fit], axis=1))
    if not parts:
        raise AnalysisError(f"no {', '.join(f'{k}×{k}' for k in kernel_sizes)} kernels in {db} "
                            f"(models={models}, weights_tags={weights_tags})")
    return pd.concat(parts, ignore_index=True)


def theta_axis_distance(theta) -> np.ndarray:
    """Distance (degrees) of each θ to the nearest image axis (a multiple of 90°): 0 on an axis,
    45 on a diagonal; NaN stays NaN. Uniform θ gives a uniform distance on [0, 45]."""
    th = np.mod(np.asarray(theta, dtype=np.float64), 90.0)
    return np.minimum(th, 90.0 - th)
