"""Nearest-code classification (paper §4.2): each kernel takes the label of its closest decoded code.

The decoder, evaluated at M equally spaced codes, gives M decoded kernels D_j. A kernel x is
assigned the code j* = argmax_j cos(x, D_j); with dissimilarity 1 − cos(x, D_j*) strictly below
the threshold (0.3 for 7×7, 0.2 for 5×5) it takes the label of j*'s code interval, otherwise it is
unclustered.

`nearest_code_reference` is that brute force, written plainly. `nearest_code_fast` returns the
same winning code (or one tied with it to float64 rounding) with far less arithmetic, because the
decoded kernels lie on a smooth 1-D curve:

* Chord bound. Cut the codes into blocks of consecutive codes with end codes p, q (*anchors*).
  Every unit decoded vector of a block is u_j = (1−λ_j)p + λ_j q + e_j with λ_j ∈ [0, 1] and
  ‖e_j‖ ≤ c·λ_j(1−λ_j), where the *bulge* c is measured once per block. For a unit kernel x,
  x·u_j ≤ max over λ of (1−λ)x·p + λx·q + cλ(1−λ), a closed form in x·p and x·q (`_chord_bound`).
  On a smooth curve c shrinks with the square of the block length, so the bound is tight.
* Three stages, grouped so each is a few dense matrix products: x·(coarse anchors) in float32;
  x·(fine anchors) inside the two coarse blocks around the best coarse anchor (float32); every
  code of the two fine blocks around the best fine anchor in float64. That gives the best
  similarity found, s.
* Certificate. Every other fine block of the window, and every coarse block outside it (through
  its own fine anchors), whose bound reaches s is scanned exactly too. Bounds carry a margin 8×
  the worst float32 rounding, so nothing that could win or tie is ever pruned: the result is
  exact whatever the decoded rows look like; smoothness only makes it fast.

`classify` adds thresholds and labels and may skip the exact search where the bounds already
decide the label and clustered flag (`need_exact_code=False`). `kmeans_3x3` is the paper's
method for 3×3 kernels (Appendix N). `synthetic_curve` and `kernels_near_curve` build test data
shaped like a decoder's output.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

#: Dissimilarity thresholds of the paper (§4.2), by kernel size.
PAPER_THRESHOLDS = {7: 0.3, 5: 0.2}
#: Label of a kernel whose best dissimilarity is not below the threshold.
UNCLUSTERED = "unclustered"
#: Label of a kernel with no direction (all zero, constant after centring, NaN/inf).
DEGENERATE = "degenerate"


def _flat(a, what: str) -> np.ndarray:
    """[N, kh, kw] or [N, d] as a float64 [N, d] matrix."""
    arr = np.asarray(a)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must have shape [N, kh, kw] or [N, d], got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _row_norms(a: np.ndarray) -> np.ndarray:
    """Row lengths; 0 for rows holding NaN/inf (so they count as degenerate)."""
    norms = np.sqrt(np.einsum("ij,ij->i", a, a))
    odd = np.flatnonzero(~np.isfinite(norms))          # NaN/inf inside, or squares that overflow
    if len(odd):
        rows = a[odd]
        finite = np.isfinite(rows).all(axis=1)
        scale = np.where(finite, np.abs(np.where(np.isfinite(rows), rows, 0.0)).max(axis=1), 0.0)
        safe = np.divide(rows, scale[:, None], out=np.zeros_like(rows), where=scale[:, None] > 0)
        norms[odd] = np.where(finite, scale * np.linalg.norm(safe, axis=1), 0.0)
    return norms


def _degenerate_error(bad: np.ndarray, what: str) -> ValueError:
    first = np.flatnonzero(bad)[:5].tolist()
    return ValueError(
        f"{int(bad.sum())} of {len(bad)} rows of {what} are zero or hold NaN/inf (first: {first}); "
        "they have no direction. Drop them (kernels_lib.preprocess.prepare does and counts them) "
        "or call classify(..., on_degenerate='flag')"
    )


def _unit_rows(a, what: str) -> np.ndarray:
    """Rows scaled to unit length; refuses zero/NaN/inf rows instead of producing NaN."""
    m = _flat(a, what)
    norms = _row_norms(m)
    if not (norms > 0).all():
        raise _degenerate_error(~(norms > 0), what)
    return m / norms[:, None]


@dataclass(frozen=True)
class _Kernels:
    """The usable rows of a kernel matrix, normalised a chunk at a time (no full unit copy)."""

    raw: np.ndarray            # [N, d] float64
    norms: np.ndarray          # [N]
    rows: np.ndarray | None    # positions of the usable rows; None: all of them

    @classmethod
    def of(cls, x, flag_degenerate: bool) -> tuple["_Kernels", np.ndarray]:
        """(usable kernels, degenerate mask [N]); raises on degenerate rows unless flagging."""
        raw = _flat(x, "kernels")
        norms = _row_norms(raw)
        bad = ~(norms > 0)
        if bad.any() and not flag_degenerate:
            raise _degenerate_error(bad, "kernels")
        return cls(raw, norms, np.flatnonzero(~bad) if bad.any() else None), bad

    def __len__(self) -> int:
        return len(self.raw) if self.rows is None else len(self.rows)

    @property
    def dim(self) -> int:
        return self.raw.shape[1]

    def unit(self, start: int, stop: int) -> np.ndarray:
        """Unit rows start..stop (positions among the usable rows), float64."""
        sel = slice(start, stop) if self.rows is None else self.rows[start:stop]
        return self.raw[sel] / self.norms[sel, None]


def _check_dims(d: int, u: np.ndarray) -> None:
    if d != u.shape[1]:
        raise ValueError(
            f"kernels have {d} coordinates but decoded codes have {u.shape[1]}: "
            "both must be in the same space (e.g. both hyperplane coordinates from kernels_lib.preprocess)"
        )
    if len(u) == 0:
        raise ValueError("no decoded codes to compare against")


def _progress(total: int, chunk: int, progress: bool, desc: str):
    starts = range(0, total, chunk)
    return tqdm(starts, desc=desc, unit="chunk", disable=not progress or len(starts) <= 1)


def _dissimilarity(sim: np.ndarray) -> np.ndarray:
    """1 − cos, clipped to its true range [0, 2] (rounding can push cos a hair past ±1)."""
    return np.clip(1.0 - sim, 0.0, 2.0)


def nearest_code_reference(x, decoded, chunk: int = 1024, dtype=np.float64, progress: bool = False):
    """The paper's brute force: cosine of every kernel with every decoded code, keep the best.

    Returns (index [N] int64 of the winning decoded row, dissimilarity [N] = 1 − cos).
    Ties go to the lowest index (np.argmax). Memory is bounded by `chunk` × M similarities.
    """
    xk, _ = _Kernels.of(x, flag_degenerate=False)
    uu = _unit_rows(decoded, "decoded codes")
    _check_dims(xk.dim, uu)
    idx, sim = _reference(xk, uu, chunk, dtype, progress)
    return idx, _dissimilarity(sim)


def _reference(xk: _Kernels, uu, chunk, dtype, progress):
    """Brute force: (index, similarity) of every usable kernel."""
    ut = np.ascontiguousarray(uu.T.astype(dtype))
    idx = np.empty(len(xk), dtype=np.int64)
    sim = np.empty(len(xk), dtype=np.float64)
    for s in _progress(len(xk), chunk, progress, "brute-force codes"):
        g = xk.unit(s, s + chunk).astype(dtype, copy=False) @ ut
        j = g.argmax(axis=1)
        idx[s:s + chunk] = j
        sim[s:s + chunk] = g[np.arange(len(j)), j]
    return idx, sim


@dataclass(frozen=True)
class CurveIndex:
    """Decoded codes prepared for the fast exact search (build once, reuse for many kernels).

    Two levels of anchors cut the codes into blocks of consecutive codes. `fine` holds the code
    index of every fine anchor (fine block t spans codes fine[t]..fine[t+1], both included);
    `coarse` holds the positions in `fine` of the coarse anchors (coarse block b spans fine anchors
    coarse[b]..coarse[b+1]). For each block, with p, q its end anchors, every unit decoded vector
    is written u_j = (1−λ_j)·p + λ_j·q + e_j with λ_j ∈ [0, 1] and ‖e_j‖ ≤ bulge·λ_j(1−λ_j): the
    curve leaves the chord at most parabolically and touches it at the anchors. On a smooth curve
    the bulge grows with the square of the block's length.
    """

    unit: np.ndarray          # [M, d] float64, unit rows
    fine: np.ndarray          # [F+1] int64 code indices
    coarse: np.ndarray        # [B+1] int64 indices into `fine`
    fine_bulge: np.ndarray    # [F]
    coarse_bulge: np.ndarray  # [B]

    @classmethod
    def build(cls, decoded, fine_block: int | None = None, coarse_block: int | None = None) -> "CurveIndex":
        """`fine_block` codes per fine block, `coarse_block` fine blocks per coarse block."""
        u = _unit_rows(decoded, "decoded codes")
        m = len(u)
        if m == 0:
            raise ValueError("no decoded codes to compare against")
        f_default, c_default = default_blocks(m)
        fine_block = f_default if fine_block is None else int(fine_block)
        coarse_block = c_default if coarse_block is None else int(coarse_block)
        if fine_block < 1 or coarse_block < 1:
            raise ValueError(f"block sizes must be ≥ 1, got fine_block={fine_block}, coarse_block={coarse_block}")
        fine, fine_bulge = _partition(lambda lo, hi: u[lo:hi + 1], m, fine_block)
        coarse, coarse_bulge = _partition(lambda lo, hi: u[fine[lo]:fine[hi] + 1], len(fine), coarse_block)
        return cls(u, fine, coarse, fine_bulge, coarse_bulge)


def default_blocks(m: int) -> tuple[int, int]:
    """(codes per fine block, fine blocks per coarse block) for M codes.

    Per kernel the search costs about M/(fine·coarse) coarse anchors + 2·coarse fine anchors
    (float32) + 2·fine codes (float64), plus a fixed cost per group of kernels sharing a fine
    anchor, which favours fine blocks somewhat longer than the arithmetic alone would (measured
    on 10,000 codes, 7×7 kernels).
    """
    root = m ** (1 / 3)
    return max(2, int(round(0.75 * root))), max(2, int(round(0.6 * root)))


#: A block may bulge this many times the median bulge of equal blocks before it is split.
BULGE_TOLERANCE = 2.0


def _partition(segment, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut points 0..n−1 into blocks of at most `size` steps, shorter where the curve bends.

    `segment(lo, hi)` gives the unit rows from point lo to point hi. Blocks of `size` steps are
    kept when their bulge is within BULGE_TOLERANCE × the median of such equal blocks; the
    others are shortened (binary search) until they are, so a decoder that races through part of
    the code range gets short blocks there and pruning stays tight. Returns (ends, bulges).
    """
    if n == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(0)
    equal = np.unique(np.r_[np.arange(0, n, size), n - 1])
    target = BULGE_TOLERANCE * float(np.median([_bulge(segment(lo, hi)) for lo, hi in zip(equal[:-1], equal[1:])]))
    ends, bulges = [0], []
    while ends[-1] < n - 1:
        lo = ends[-1]
        hi = min(lo + size, n - 1)
        c = _bulge(segment(lo, hi))
        if c > target:
            good, good_c, bad = lo + 1, _bulge(segment(lo, lo + 1)), hi
            while bad - good > 1:  # largest end with bulge ≤ target (one step is always allowed)
                mid = (good + bad) // 2
                cm = _bulge(segment(lo, mid))
                good, good_c, bad = (mid, cm, bad) if cm <= target else (good, good_c, mid)
            hi, c = good, good_c
        ends.append(hi)
        bulges.append(c)
    return np.asarray(ends, dtype=np.int64), np.asarray(bulges)


_LAMBDA_GRID = np.linspace(0.0, 1.0, 257)[1:-1]


def _bulge(seg: np.ndarray) -> float:
    """Smallest c with ‖u_j − chord(λ_j)‖ ≤ c·λ_j(1−λ_j) for all rows of seg (anchors at both ends).

    Any λ_j ∈ (0, 1) gives a valid decomposition; per row we take the best of the orthogonal
    projection and a fixed grid, then measure that choice directly in float64 (plus a margin).
    """
    p, q = seg[0], seg[-1]
    w = seg[1:-1] - p
    if len(w) == 0:
        return 0.0
    v = q - p
    vv = float(v @ v)
    wv = w @ v
    lam_p = np.clip(wv / vv, 1e-6, 1 - 1e-6) if vv > 0 else np.full(len(w), 0.5)
    lam = np.concatenate([lam_p[:, None], np.broadcast_to(_LAMBDA_GRID, (len(w), len(_LAMBDA_GRID)))], axis=1)
    # ‖w − λv‖² = ‖w‖² − 2λ w·v + λ²‖v‖² for every candidate λ of every row
    dist2 = np.einsum("ij,ij->i", w, w)[:, None] - 2 * lam * wv[:, None] + lam**2 * vv
    pick = (np.sqrt(np.maximum(dist2, 0.0)) / (lam * (1 - lam))).argmin(axis=1)
    lam_best = lam[np.arange(len(w)), pick]
    e = np.linalg.norm(w - lam_best[:, None] * v, axis=1)
    return float((e / (lam_best * (1 - lam_best))).max() * (1 + 1e-9) + 1e-12)


def _as_index(decoded) -> CurveIndex:
    return decoded if isinstance(decoded, CurveIndex) else CurveIndex.build(decoded)


def _chord_bound(lo, hi, bulge, tol):
    """Upper bound of x·u over a block from x·(its anchors) (float64 result).

    x·u_j ≤ (1−λ)·lo + λ·hi + c·λ(1−λ); the maximum over λ ∈ [0, 1] is
    max(lo, hi) + (c − |hi − lo|)₊² / (4c). It is non-decreasing in lo and hi, so adding the
    rounding margin `tol` of lo and hi to the result keeps it a bound.
    """
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    t = np.maximum(bulge - np.abs(hi - lo), 0.0)
    extra = np.divide(t * t, 4 * bulge, out=np.zeros_like(t), where=bulge > 0)
    return np.maximum(lo, hi) + extra + tol


def _runs(keys: np.ndarray):
    """(key, start, end) of the runs of equal values in a sorted key array."""
    if len(keys) == 0:
        return []
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(keys)]
    return zip(keys[starts].tolist(), starts.tolist(), ends.tolist())


def _window(k: int, n_anchors: int) -> tuple[int, int]:
    """Anchor range [k−1, k+1] clipped: the one or two blocks that touch anchor k."""
    return max(k - 1, 0), min(k + 1, n_anchors - 1)


def _clear_pair(mask: np.ndarray, col: np.ndarray) -> None:
    """mask[i, col[i]] = mask[i, col[i]+1] = False wherever those columns exist."""
    rows = np.arange(len(mask))
    for c in (col, col + 1):
        ok = (c >= 0) & (c < mask.shape[1])
        mask[rows[ok], c[ok]] = False


def _sort_keys(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of small non-negative ints (radix sort when they fit in 16 bits)."""
    small = keys.astype(np.uint16) if len(keys) and keys.max() < 65536 else keys
    return np.argsort(small, kind="stable")


class _Searcher:
    """The exact three-stage search of `nearest_code_fast` (see the module docstring).

    All methods work on one chunk: xc [n, d] float64 unit kernels, x32 its float32 copy.
    """

    def __init__(self, index: CurveIndex):
        self.ix = ix = index
        u, fine, coarse = ix.unit, ix.fine, ix.coarse
        d = u.shape[1]
        self.nb, self.nf = len(coarse) - 1, len(fine) - 1
        # float32 dot products of unit vectors in d dimensions err by at most ~(d+2)·2⁻²⁴;
        # the margin is 8× that, so rounding never prunes a code that could win or tie.
        self.tol = 4.0 * (d + 2) * float(np.finfo(np.float32).eps)
        self.coarse_quarter = (ix.coarse_bulge / 4 + self.tol).astype(np.float32)
        self.fine_slack = float(ix.fine_bulge.max(initial=0.0)) / 4 + self.tol
        u32 = u.astype(np.float32)
        self.coarse_t = np.ascontiguousarray(u32[fine[coarse]].T)                    # [d, B+1]
        # fine anchors of the coarse window around each coarse anchor, and of each coarse block
        self.cwin = [_window(k, self.nb + 1) for k in range(self.nb + 1)]
        self.cwin_t = [np.ascontiguousarray(u32[fine[coarse[lo]:coarse[hi] + 1]].T) for lo, hi in self.cwin]
        self.cwin_first = np.array([coarse[lo] for lo, _ in self.cwin], dtype=np.int64)
        self.cwin_width = max(w.shape[1] for w in self.cwin_t)
        self.cblock_t = [np.ascontiguousarray(u32[fine[coarse[b]:coarse[b + 1] + 1]].T) for b in range(self.nb)]
        # codes of the fine window around each fine anchor, and of each fine block (float64)
        fwin = [_window(t, self.nf + 1) for t in range(self.nf + 1)]
        self.fwin_lo = fine[[lo for lo, _ in fwin]]
        self.fwin_t = [np.ascontiguousarray(u[fine[lo]:fine[hi] + 1].T) for lo, hi in fwin]
        self.fblock_t = [np.ascontiguousarray(u[fine[t]:fine[t + 1] + 1].T) for t in range(self.nf)]

    def coarse_sims(self, x32: np.ndarray) -> np.ndarray:
        """x·(coarse anchor), float32 [n, B+1]."""
        return x32 @ self.coarse_t

    def coarse_simple_bounds(self, s1):
        """Cheap float32 upper bound of every coarse block [n, B]: larger anchor + bulge/4 + margin."""
        ub = np.maximum(s1[:, :-1], s1[:, 1:])
        ub += self.coarse_quarter
        return ub

    def coarse_blocks(self, s1, floor, skip=None, ub=None):
        """(row, coarse block) pairs whose chord bound reaches floor[row] (float64 [n]).

        The cheap bound (`ub`, computed if not given) is tried on every block first, the exact
        chord bound only on the blocks that pass it. `skip` [n] leaves out blocks skip−1 and
        skip (the window already searched).
        """
        if ub is None:
            ub = self.coarse_simple_bounds(s1)
        live = ub >= (floor - 1e-6).astype(np.float32)[:, None]
        if skip is not None:
            _clear_pair(live, skip - 1)
        i, b = np.divmod(np.flatnonzero(live), self.nb)
        keep = _chord_bound(s1[i, b], s1[i, b + 1], self.ix.coarse_bulge[b], self.tol) >= floor[i]
        return i[keep], b[keep]

    def _fine_blocks(self, g, first, width, floor, skip=None):
        """(row, fine block) pairs whose chord bound reaches floor[row], from fine-anchor sims.

        Row i of g holds x·(fine anchors first[i] .. first[i]+width[i]−1), padded with −inf.
        `skip` [n] leaves out fine blocks skip−1 and skip (already scanned).
        """
        live = np.maximum(g[:, :-1], g[:, 1:]) >= (floor - self.fine_slack - 1e-6).astype(np.float32)[:, None]
        if skip is not None:
            _clear_pair(live, skip - first - 1)
        i, j = np.nonzero(live)
        ok = j < width[i] - 1
        i, j = i[ok], j[ok]
        t = first[i] + j
        ub = _chord_bound(g[i, j], g[i, j + 1], self.ix.fine_bulge[t], self.tol)
        keep = ub >= floor[i]
        return i[keep], t[keep]

    def _scan_update(self, xc, rows, blocks, best, best_idx):
        """Exact float64 scan of kernel rows[k] against fine block blocks[k]; updates in place."""
        order = _sort_keys(blocks)
        rows, blocks = rows[order], blocks[order]
        xs = xc[rows]
        fine = self.ix.fine
        for key, s, e in _runs(blocks):
            g = xs[s:e] @ self.fblock_t[key]
            j = g.argmax(axis=1)
            v = g[np.arange(e - s), j]
            code = fine[key] + j
            r = rows[s:e]
            cur = best[r]
            better = (v > cur) | ((v == cur) & (code < best_idx[r]))
            best[r[better]] = v[better]
            best_idx[r[better]] = code[better]

    def exact(self, xc, x32, s1):
        """Exact best similarity [n] and code [n] of every kernel of the chunk."""
        n = len(xc)
        best = np.full(n, -np.inf)
        best_idx = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return best, best_idx
        # Stage 2: fine anchors of the coarse window around the best coarse anchor.
        star1 = s1.argmax(axis=1)
        order = _sort_keys(star1)
        keys = star1[order]
        xs = x32[order]
        g = np.full((n, self.cwin_width), -np.inf, dtype=np.float32)
        width = np.empty(n, dtype=np.int64)
        for key, s, e in _runs(keys):
            w = self.cwin_t[key]
            g[s:e, :w.shape[1]] = xs[s:e] @ w
            width[s:e] = w.shape[1]
        first = self.cwin_first[keys]
        star2 = first + g.argmax(axis=1)                 # best fine anchor (rows in `order`)
        # Stage 3: exact scan of the fine window around it.
        order2 = _sort_keys(star2)
        rows2, keys2 = order[order2], star2[order2]
        xs2 = xc[rows2]
        v = np.empty(n)
        code = np.empty(n, dtype=np.int64)
        ar = np.arange(n)
        for key, s, e in _runs(keys2):
            h = xs2[s:e] @ self.fwin_t[key]
            j = h.argmax(axis=1)
            v[s:e] = h[ar[:e - s], j]
            code[s:e] = self.fwin_lo[key] + j
        best[rows2] = v
        best_idx[rows2] = code
        # Certificate: any other fine block of the window, or coarse block outside it, whose
        # bound reaches the best found is scanned too.
        i, t = self._fine_blocks(g, first, width, best[order], skip=star2)
        rows_c, blocks_c = [order[i]], [t]
        i, b = self.coarse_blocks(s1, best, skip=star1)
        if len(i):
            ob = _sort_keys(b)
            i, b = i[ob], b[ob]
            xs3 = x32[i]
            for key, s, e in _runs(b):
                h = xs3[s:e] @ self.cblock_t[key]
                w = np.full(e - s, h.shape[1])
                fi, ft = self._fine_blocks(h, np.full(e - s, self.ix.coarse[key]), w, best[i[s:e]])
                rows_c.append(i[s:e][fi])
                blocks_c.append(ft)
        self._scan_update(xc, np.concatenate(rows_c), np.concatenate(blocks_c), best, best_idx)
        return best, best_idx


def _run_chunks(n: int, chunk: int, workers: int, work, progress: bool, desc: str) -> None:
    """Call work(start, stop) for every chunk, on `workers` threads with single-threaded BLAS.

    numpy releases the GIL inside BLAS and most array loops; one BLAS thread per worker avoids
    the oversubscription that makes many small multi-threaded matrix products crawl.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be ≥ 1, got {chunk}")
    starts = list(range(0, n, chunk))
    bar = tqdm(total=n, desc=desc, unit="kernel", disable=not progress or len(starts) <= 1)
    with threadpool_limits(1, user_api="blas"):
        if workers <= 1 or len(starts) <= 1:
            for s in starts:
                work(s, min(s + chunk, n))
                bar.update(min(s + chunk, n) - s)
        else:
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(work, s, min(s + chunk, n)) for s in starts]
                for f, s in zip(futures, starts):
                    f.result()
                    bar.update(min(s + chunk, n) - s)
    bar.close()


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _fast(xk: _Kernels, ix: CurveIndex, chunk, workers, progress, settle=None):
    """Fast search of every usable kernel: (index, similarity, exact). `settle(searcher, xc, x32, s1)` may
    return (mask, code, similarity) for kernels that need no exact search (their exact = False)."""
    searcher = _Searcher(ix)
    idx = np.empty(len(xk), dtype=np.int64)
    sim = np.empty(len(xk))
    exact = np.ones(len(xk), dtype=bool)

    def work(s, e):
        xc = xk.unit(s, e)
        x32 = xc.astype(np.float32)
        s1 = searcher.coarse_sims(x32)
        if settle is None:
            sim[s:e], idx[s:e] = searcher.exact(xc, x32, s1)
            return
        done, code, value = settle(searcher, xc, x32, s1)
        rest = np.flatnonzero(~done)
        v, c = searcher.exact(xc[rest], x32[rest], s1[rest])
        value[rest], code[rest] = v, c
        sim[s:e], idx[s:e], exact[s:e] = value, code, ~done

    _run_chunks(len(xk), chunk, workers or _default_workers(), work, progress, "nearest codes")
    return idx, sim, exact


def nearest_code_fast(x, decoded, chunk: int = 65536, workers: int | None = None, progress: bool = False):
    """Exactly what `nearest_code_reference` returns, much faster on a smooth decoded curve.

    `decoded` is the [M, d] decoded kernels (rows in code order) or a prebuilt `CurveIndex`.
    Returns (index [N] int64, dissimilarity [N]); the index equals the brute force's except
    where two codes tie to float64 rounding. Runs `workers` threads (default: CPU count, at
    most 8), each holding a few hundred floats per kernel of its `chunk`.
    """
    ix = _as_index(decoded)
    xk, _ = _Kernels.of(x, flag_degenerate=False)
    _check_dims(xk.dim, ix.unit)
    idx, sim, _ = _fast(xk, ix, chunk, workers, progress)
    return idx, _dissimilarity(sim)


# ---------------------------------------------------------------------------------------------
# Classification: thresholds and labels
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Classification:
    """One entry per kernel. Degenerate kernels (no direction) have code_index −1, code −1,
    dissimilarity +inf, label "degenerate", clustered False: flagged and counted, never NaN."""

    code: np.ndarray           # [N] float64 code in [0, 1] of the nearest decoded kernel (k-means: cluster id)
    code_index: np.ndarray     # [N] int64 row of the nearest decoded kernel (k-means: cluster id)
    dissimilarity: np.ndarray  # [N] float64 1 − cos to it (k-means: distance to the centroid)
    label: np.ndarray          # [N] str: the code's interval label, "unclustered" or "degenerate"
    clustered: np.ndarray      # [N] bool: dissimilarity strictly below the threshold
    degenerate: np.ndarray     # [N] bool
    exact: np.ndarray          # [N] bool: code and dissimilarity are the true nearest (see classify)

    def __len__(self) -> int:
        return len(self.code)

    @property
    def n_degenerate(self) -> int:
        return int(self.degenerate.sum())

    def to_frame(self) -> pd.DataFrame:
        """The same as a DataFrame (label as a categorical)."""
        return pd.DataFrame({
            "code": self.code, "code_index": self.code_index, "dissimilarity": self.dissimilarity,
            "label": pd.Categorical(self.label), "clustered": self.clustered,
            "degenerate": self.degenerate, "exact": self.exact,
        })


def _label_ids(code_labels, m: int):
    """Integer label of every code and the label names."""
    labels = np.asarray(code_labels)
    if labels.ndim != 1 or len(labels) != m:
        raise ValueError(f"code_labels must hold one label per decoded code ({m}), got shape {labels.shape}")
    ids, names = pd.factorize(labels.astype(str))
    return ids.astype(np.int64), np.asarray(names, dtype=object)


def _block_labels(ix: CurveIndex, ids: np.ndarray) -> np.ndarray:
    """Label id of each coarse block if all its codes share it, else −1."""
    out = np.empty(len(ix.coarse) - 1, dtype=np.int64)
    for b, (lo, hi) in enumerate(zip(ix.fine[ix.coarse[:-1]], ix.fine[ix.coarse[1:]])):
        seg = ids[lo:hi + 1]
        out[b] = seg[0] if (seg == seg[0]).all() else -1
    return out


def _settler(min_sim: float, block_label: np.ndarray):
    """Decide from the coarse bounds alone the kernels whose label and clustered flag are known.

    Unclustered for sure: the upper bound of every block is below 1 − threshold. Clustered with a
    known label: the best anchor is already above 1 − threshold and every block that could hold
    a code at least as good is labelled, all with the same label. Such kernels get the best
    anchor as their code (exact = False).
    """
    def settle(searcher: _Searcher, xc, x32, s1):
        n = len(xc)
        rows = np.arange(n)
        k = s1.argmax(axis=1)
        best_anchor = s1[rows, k].astype(np.float64)
        ub = searcher.coarse_simple_bounds(s1)
        top = np.maximum(ub.max(axis=1, initial=-np.inf), best_anchor + searcher.tol)  # one code: no blocks
        done = top < min_sim
        lb = best_anchor - searcher.tol
        inn = np.flatnonzero(lb > min_sim)
        if len(inn) and len(block_label):
            i, b = searcher.coarse_blocks(s1[inn], lb[inn], ub=ub[inn])   # i sorted
            lab = block_label[b]
            starts = np.r_[0, np.flatnonzero(np.diff(i)) + 1]
            lo = np.minimum.reduceat(lab, starts)
            hi = np.maximum.reduceat(lab, starts)
            done[inn[i[starts]]] = (lo == hi) & (lo >= 0)
        code = searcher.ix.fine[searcher.ix.coarse[k]]
        value = np.empty(n)
        value[done] = np.einsum("ij,ij->i", xc[done], searcher.ix.unit[code[done]])  # exact similarity
        return done, code, value

    return settle


def classify(
    x,
    decoded,
    code_labels,
    threshold: float,
    method: str = "fast",
    need_exact_code: bool = True,
    codes=None,
    on_degenerate: str = "flag",
    chunk: int = 65536,
    workers: int | None = None,
    progress: bool = False,
) -> Classification:
    """Nearest decoded code of every kernel, with the paper's threshold and interval labels.

    x: kernels [N, d] (or [N, kh, kw]) in the same space as `decoded` [M, d] (e.g. both hyperplane
    coordinates); decoded may be a prebuilt `CurveIndex`. code_labels: label of each decoded
    code (e.g. kernels_lib.spectrum.code_labels). codes: code value of each row (default M
    equally spaced in [0, 1]). A kernel is clustered when 1 − cos is strictly below threshold.

    method "reference" is the brute force, "fast" the exact pruned search. With
    need_exact_code=False the fast search skips kernels whose label and clustered flag its bounds
    already decide; their code and dissimilarity are then those of the best coarse anchor (a
    true code, its dissimilarity an upper bound of the minimum) and `exact` is False.
    on_degenerate: "flag" (see `Classification`) or "raise".
    """
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    if on_degenerate not in ("flag", "raise"):
        raise ValueError(f"on_degenerate must be 'flag' or 'raise', got {on_degenerate!r}")
    threshold = float(threshold)
    if not 0.0 < threshold <= 2.0:
        raise ValueError(f"threshold is a dissimilarity 1 − cos in (0, 2], got {threshold}")
    if isinstance(decoded, CurveIndex) or method == "fast":
        ix = _as_index(decoded)
        unit = ix.unit
    else:  # the brute force needs no index
        unit = _unit_rows(decoded, "decoded codes")
    m = len(unit)
    ids, names = _label_ids(code_labels, m)
    code_values = np.linspace(0.0, 1.0, m) if codes is None else np.asarray(codes, dtype=np.float64)
    if code_values.shape != (m,) or not np.isfinite(code_values).all():
        raise ValueError(f"codes must be {m} finite numbers, one per decoded code")

    xk, bad = _Kernels.of(x, flag_degenerate=on_degenerate == "flag")
    _check_dims(xk.dim, unit)
    if method == "reference":
        idx, sim = _reference(xk, unit, 1024, np.float64, progress)
        exact = np.ones(len(xk), dtype=bool)
    else:
        settle = None if need_exact_code else _settler(1.0 - threshold, _block_labels(ix, ids))
        idx, sim, exact = _fast(xk, ix, chunk, workers, progress, settle)
    dis = _dissimilarity(sim)
    ok = dis < threshold

    n = len(bad)
    good = np.flatnonzero(~bad)
    out_index = np.full(n, -1, dtype=np.int64)
    out_index[good] = idx
    out_dis = np.full(n, np.inf)
    out_dis[good] = dis
    all_names = np.r_[names, [UNCLUSTERED, DEGENERATE]].astype(str)
    lab = np.full(n, len(names) + 1)
    lab[good] = np.where(ok, ids[idx], len(names))
    clustered = np.zeros(n, dtype=bool)
    clustered[good] = ok
    out_exact = np.zeros(n, dtype=bool)
    out_exact[good] = exact
    code_out = np.full(n, -1.0)
    code_out[good] = code_values[idx]
    return Classification(code=code_out, code_index=out_index, dissimilarity=out_dis, label=all_names[lab],
                          clustered=clustered, degenerate=bad, exact=out_exact)


# ---------------------------------------------------------------------------------------------
# 3×3 kernels: k-means on min-max encoded kernels (Appendix N)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KMeansClassification(Classification):
    """`Classification` of 3×3 kernels by k-means; code_index/code are the cluster id and the
    dissimilarity is the Euclidean distance to the centroid in min-max space. Clusters are
    numbered by decreasing size."""

    centroids: np.ndarray = None        # [K, 3, 3] in min-max space
    names: np.ndarray = None            # [K] str: nearest DoG-family template class, or "other"
    template_cosine: np.ndarray = None  # [K] mean-centred cosine of each centroid with that template
    inertia: float = 0.0


def minmax_encode(kernels) -> tuple[np.ndarray, np.ndarray]:
    """(w − min) / (max − min) per kernel, and the degenerate mask (constant or NaN/inf: all 0)."""
    from .preprocess import degenerate_mask

    arr = np.asarray(kernels, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"kernels must have shape [N, kh, kw], got {arr.shape}")
    flat = arr.reshape(len(arr), arr.shape[1] * arr.shape[2])
    bad = degenerate_mask(flat) if len(flat) else np.zeros(0, dtype=bool)
    safe = np.where(bad[:, None], 0.0, flat)
    lo = safe.min(axis=1, keepdims=True, initial=np.inf)
    span = safe.max(axis=1, keepdims=True, initial=-np.inf) - lo
    enc = np.divide(safe - lo, span, out=np.zeros_like(safe), where=~bad[:, None])
    return enc.reshape(arr.shape), bad


def kmeans_3x3(kernels, n_classes: int = 10, seed: int = 0, n_init: int = 10,
               name_min_cosine: float = 0.9) -> KMeansClassification:
    """The paper's 3×3 method: k-means with `n_classes` clusters on min-max encoded kernels.

    Deterministic for a given seed: k-means runs on one thread, so the float sums (and hence
    borderline assignments) do not depend on the number of cores. Each cluster is named after the DoG-family template
    (kernels_lib.dog) nearest to its centroid when their mean-centred cosine reaches
    `name_min_cosine`, else "other". Every non-degenerate kernel is clustered.
    """
    from sklearn.cluster import KMeans

    from . import dog

    enc, bad = minmax_encode(kernels)
    n, kh, kw = enc.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"kmeans_3x3 takes 3×3 kernels, got {kh}×{kw}; larger kernels go through classify()")
    good = np.flatnonzero(~bad)
    if len(good) < n_classes:
        raise ValueError(f"{len(good)} usable kernels ({int(bad.sum())} degenerate) cannot form {n_classes} clusters")
    data = enc.reshape(n, -1)[good]
    with threadpool_limits(1):
        km = KMeans(n_clusters=n_classes, n_init=n_init, random_state=seed).fit(data)
    # number clusters by decreasing size (ties: by centroid), independent of sklearn's order
    sizes = np.bincount(km.labels_, minlength=n_classes)
    order = np.lexsort((*km.cluster_centers_.T[::-1], -sizes))
    rank = np.empty(n_classes, dtype=np.int64)
    rank[order] = np.arange(n_classes)
    centroids = km.cluster_centers_[order]
    assign = rank[km.labels_]
    dist = np.linalg.norm(data - centroids[assign], axis=1)

    match = dog.nearest_template(centroids.reshape(n_classes, kh, kw), dog.template_bank(3),
                                 min_cosine=name_min_cosine)
    names = np.asarray(match.classes, dtype=str)

    code_index = np.full(n, -1, dtype=np.int64)
    code_index[good] = assign
    dissimilarity = np.full(n, np.inf)
    dissimilarity[good] = dist
    label = np.full(n, DEGENERATE, dtype=object)
    label[good] = names[assign]
    return KMeansClassification(
        code=code_index.astype(np.float64), code_index=code_index, dissimilarity=dissimilarity,
        label=label.astype(str), clustered=~bad, degenerate=bad, exact=~bad,
        centroids=centroids.reshape(n_classes, kh, kw), names=names,
        template_cosine=np.asarray(match.cosine), inertia=float(km.inertia_),
    )


# ---------------------------------------------------------------------------------------------
# Synthetic data shaped like a decoder's output (tests, benchmarks, demonstrations)
# ---------------------------------------------------------------------------------------------

def synthetic_curve(m: int, d: int, seed: int = 0, harmonics: int = 8) -> np.ndarray:
    """A smooth curve of m unit vectors in R^d: a random Fourier path, normalised.

    Harmonic h has amplitude 1/h, so the curve bends like a decoder's spectrum rather than
    jumping; rows are in curve order, as decoded codes are.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, m)[:, None]
    h = np.arange(1, harmonics + 1)[None, :]
    a, b = rng.standard_normal((2, harmonics, d)) / h.T
    path = np.cos(2 * np.pi * t * h) @ a + np.sin(2 * np.pi * t * h) @ b + 0.5 * rng.standard_normal(d)
    return path / np.linalg.norm(path, axis=1, keepdims=True)


def kernels_near_curve(curve: np.ndarray, n: int, noise, seed: int = 0) -> np.ndarray:
    """n unit vectors: random points of the curve plus isotropic Gaussian noise of norm ≈ noise
    (a number, or one per kernel)."""
    rng = np.random.default_rng(seed)
    m, d = curve.shape
    scale = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n,))[:, None]
    x = curve[rng.integers(0, m, n)] + scale * rng.standard_normal((n, d)) / math.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
