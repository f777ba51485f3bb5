"""The compiled per-kernel loop of `kernels_lib.method.search`'s exact search (numba).

Imported on the first fast search, not with the package, so that `import kernels_lib` does not
pay for numba; compiled once per machine and cached beside this file (or in numba's user cache).

Why compiled: the search does about 80 short dot products per kernel (d = 24 or 48) whose
choice depends on the kernel. Grouping kernels into dense NumPy products costs more in sorting,
gathering and masking than the arithmetic itself; one loop per kernel costs only the arithmetic.
Dot products are vectorised with reassociation (`fastmath` "reassoc"/"contract"): their rounding
differs from BLAS by a few units in the last place, which the float32 bounds' margin (8× the worst
float32 error, far above any float64 rounding) already covers, and which stays identical from run
to run on one machine.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

_FASTMATH = {"reassoc", "contract"}


@njit(fastmath=_FASTMATH, inline="always")
def _dot(x, i, u, j):
    """x[i] · u[j], accumulated in the arrays' own precision."""
    acc = x.dtype.type(0)
    for k in range(x.shape[1]):
        acc += x[i, k] * u[j, k]
    return acc


@njit(inline="always")
def _chord(lo, hi, bulge, inv_4bulge, tol):
    """max over λ ∈ [0, 1] of (1−λ)·lo + λ·hi + bulge·λ(1−λ), plus the rounding margin (see search._chord_bound)."""
    t = max(bulge - abs(hi - lo), 0.0)
    return max(lo, hi) + t * t * inv_4bulge + tol


@njit(fastmath=_FASTMATH, inline="always")
def _scan(x, i, u, lo, hi, best, best_idx):
    """Exact float64 scan of codes lo..hi (both included); ties go to the lowest code."""
    for j in range(lo, hi + 1):
        v = _dot(x, i, u, j)
        if v > best or (v == best and j < best_idx):
            best = v
            best_idx = j
    return best, best_idx


@njit(types.void(types.float64[:, ::1], types.float64[::1], types.int64[::1], types.float64[:, ::1], types.float32[:, ::1]),
      nogil=True, cache=True)
def unit_rows(raw, norms, rows, x, x32):
    """x[r] = raw[rows[r]] / norms[rows[r]] and its float32 copy x32, in one pass (no temporaries)."""
    for r in range(rows.shape[0]):
        src = rows[r]
        inv = 1.0 / norms[src]
        for k in range(raw.shape[1]):
            v = raw[src, k] * inv
            x[r, k] = v
            x32[r, k] = np.float32(v)


_SIGNATURE = types.void(
    types.float64[:, ::1], types.float32[:, ::1], types.float32[:, ::1],                      # x, x32, s1
    types.float64[:, ::1], types.float32[:, ::1], types.int64[::1], types.int64[::1],          # unit, fine anchors, fine, coarse
    types.float64[::1], types.float64[::1], types.float64[::1],                               # fine bulge, 1/(4·bulge), bulge/4 + tol
    types.float64[::1], types.float64[::1], types.float32[::1],                               # coarse bulge, 1/(4·bulge), bulge/4 + tol (f32)
    types.float64, types.float64[::1], types.int64[::1])                                      # tol, best, best_idx


@njit(_SIGNATURE, nogil=True, fastmath=_FASTMATH, cache=True)
def search_rows(x, x32, s1, unit, fine_anchors32, fine, coarse, fine_bulge, fine_inv, fine_quarter,
                coarse_bulge, coarse_inv, coarse_quarter32, tol, best_out, idx_out):
    """Exact nearest code of every row of x (unit, float64; x32 its float32 copy).

    s1 [n, B+1]: x32 · (coarse anchors). Writes the best float64 similarity and its code (lowest
    on ties) to best_out / idx_out. Stages as in `search`: fine anchors of the two coarse blocks
    around the best coarse anchor (float32); the exact scan of the fine block beside the best fine
    anchor, on its better neighbour's side; then every other fine block of that window and every
    other coarse block (through its fine anchors) whose chord bound reaches the best similarity
    found so far is scanned too. The pruning tests are conservative,
    so the result does not depend on the order in which blocks are visited.
    """
    nb = coarse.shape[0] - 1
    nf = fine.shape[0] - 1
    g = np.empty(fine.shape[0], dtype=np.float64)       # float32 similarities to fine anchors
    candidates = np.empty(max(nb, 1), dtype=np.int64)
    for i in range(x.shape[0]):
        top = s1[i, 0]
        for b in range(1, nb + 1):  # a vectorised max, then its first position
            top = max(top, s1[i, b])
        k = 0
        while k < nb and s1[i, k] != top:
            k += 1
        flo = coarse[max(k - 1, 0)]
        fhi = coarse[min(k + 1, nb)]
        t = flo
        gt = -np.inf
        for a in range(flo, fhi + 1):
            v = np.float64(_dot(x32, i, fine_anchors32, a))
            g[a] = v
            if v > gt:
                t = a
                gt = v
        if nf == 0:  # a single code
            best, best_idx = _scan(x, i, unit, 0, 0, -np.inf, -1)
        else:
            first = t if t == flo or (t < fhi and g[t + 1] >= g[t - 1]) else t - 1
            best, best_idx = _scan(x, i, unit, fine[first], fine[first + 1], -np.inf, -1)
            for a in range(flo, fhi):
                if a != first and max(g[a], g[a + 1]) + fine_quarter[a] >= best \
                        and _chord(g[a], g[a + 1], fine_bulge[a], fine_inv[a], tol) >= best:
                    best, best_idx = _scan(x, i, unit, fine[a], fine[a + 1], best, best_idx)
            # coarse blocks outside the window: a branch-free float32 pre-test (larger anchor + bulge/4
            # + margin, itself a bound), then the chord bound, then their fine anchors
            floor32 = np.float32(best - 1e-6)
            n_cand = 0
            for b in range(nb):
                candidates[n_cand] = b
                n_cand += max(s1[i, b], s1[i, b + 1]) + coarse_quarter32[b] >= floor32
            for c in range(n_cand):
                b = candidates[c]
                if b == k - 1 or b == k:
                    continue
                lo = np.float64(s1[i, b])
                hi = np.float64(s1[i, b + 1])
                if _chord(lo, hi, coarse_bulge[b], coarse_inv[b], tol) < best:
                    continue
                for a in range(coarse[b], coarse[b + 1] + 1):
                    g[a] = _dot(x32, i, fine_anchors32, a)
                for a in range(coarse[b], coarse[b + 1]):
                    if max(g[a], g[a + 1]) + fine_quarter[a] >= best \
                            and _chord(g[a], g[a + 1], fine_bulge[a], fine_inv[a], tol) >= best:
                        best, best_idx = _scan(x, i, unit, fine[a], fine[a + 1], best, best_idx)
        best_out[i] = best
        idx_out[i] = best_idx
