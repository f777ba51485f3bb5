"""The exact nearest-code search of the paper's classification (§4.2), brute force and fast.

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
* Three stages per kernel: x·(coarse anchors) in float32 for a whole chunk (one dense product);
  x·(fine anchors) inside the two coarse blocks around the best coarse anchor (float32); the codes
  of the fine block beside the best fine anchor, on its better neighbour's side, in float64. That
  gives the best similarity found, s.
* Certificate. Every other fine block of the window, and every coarse block outside it (through
  its own fine anchors), whose bound reaches s is scanned exactly too, s rising as better codes
  turn up. Bounds carry a margin 8× the worst float32 rounding, so nothing that could win or tie
  is ever pruned: the result is exact whatever the decoded rows look like; smoothness only makes
  it fast. The per-kernel stages run as one compiled loop (`kernels_lib.method._search_loop`, numba):
  the work they choose differs from kernel to kernel, which dense NumPy products serve badly.

`kernels_lib.method.classify` adds thresholds and labels on top, and may skip the exact search where
the bounds already decide a kernel's label (through `Searcher`'s bounds and the `settle` hook of
`nearest_codes`).
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..preprocess import _no_direction_error, as_rows, row_norms, unit_rows


@dataclass(frozen=True)
class _Kernels:
    """The usable rows of a kernel matrix, normalised a chunk at a time (no full unit copy)."""

    raw: np.ndarray            # [N, d] float64
    norms: np.ndarray          # [N]
    rows: np.ndarray | None    # positions of the usable rows; None: all of them

    @classmethod
    def of(cls, x, flag_degenerate: bool) -> tuple["_Kernels", np.ndarray]:
        """(usable kernels, degenerate mask [N]); raises on degenerate rows unless flagging."""
        raw = np.ascontiguousarray(as_rows(x, "kernels"))
        norms = row_norms(raw)
        bad = ~(norms > 0)
        if bad.any() and not flag_degenerate:
            raise _no_direction_error(bad, "kernels")
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

    def unit_pair(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit rows start..stop, float64 and float32, in one compiled pass (for the fast search)."""
        from ._search_loop import unit_rows

        rows = np.arange(start, min(stop, len(self)), dtype=np.int64) if self.rows is None else self.rows[start:stop]
        x = np.empty((len(rows), self.dim))
        x32 = np.empty((len(rows), self.dim), dtype=np.float32)
        unit_rows(self.raw, self.norms, rows, x, x32)
        return x, x32


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
        u = unit_rows(decoded, "decoded codes")
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

    @functools.cached_property
    def searcher(self) -> "Searcher":
        """The search's float32 copies and bound tables, made once per index (a few ms for 10,000 codes)."""
        return Searcher(self)


def default_blocks(m: int) -> tuple[int, int]:
    """(codes per fine block, fine blocks per coarse block) for M codes.

    Per kernel the search costs about M/(fine·coarse) coarse anchors (one dense float32 product)
    + 2·coarse fine anchors (float32) + 2·fine codes (float64), plus one bound per coarse block
    and the blocks the certificate scans. On the trained 7×7 and 5×5 reference decoders (10,000
    codes) block sizes from (12, 8) to (24, 6) ran within the machine's noise of each other; (16, 8)
    is the middle of that range.
    """
    root = m ** (1 / 3)
    return max(2, int(round(0.75 * root))), max(2, int(round(0.37 * root)))


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


class Searcher:
    """The exact three-stage search of `nearest_code_fast` (see the module docstring).

    Methods work on one chunk: xc [n, d] float64 unit kernels, x32 its float32 copy, s1 their
    float32 similarities to the coarse anchors (`coarse_sims`, one dense product). `exact` runs
    the compiled per-kernel loop (`kernels_lib.method._search_loop`); `coarse_simple_bounds` and
    `coarse_blocks` serve `classify`'s shortcut, which decides labels from the coarse bounds alone.
    """

    def __init__(self, index: CurveIndex):
        self.ix = ix = index
        u, fine, coarse = ix.unit, ix.fine, ix.coarse
        d = u.shape[1]
        self.nb = len(coarse) - 1
        # float32 dot products of unit vectors in d dimensions err by at most ~(d+2)·2⁻²⁴;
        # the margin is 8× that, so rounding never prunes a code that could win or tie.
        self.tol = 4.0 * (d + 2) * float(np.finfo(np.float32).eps)
        self.coarse_quarter = _round_up32(ix.coarse_bulge / 4 + self.tol)
        u32 = u.astype(np.float32)
        self.coarse_t = np.ascontiguousarray(u32[fine[coarse]].T)          # [d, B+1]
        self._loop_args = (
            np.ascontiguousarray(u), np.ascontiguousarray(u32[fine]), fine, coarse,
            ix.fine_bulge, _inverse_4(ix.fine_bulge), ix.fine_bulge / 4 + self.tol,
            ix.coarse_bulge, _inverse_4(ix.coarse_bulge), self.coarse_quarter, self.tol)

    def coarse_sims(self, x32: np.ndarray) -> np.ndarray:
        """x·(coarse anchor), float32 [n, B+1]."""
        return x32 @ self.coarse_t

    def coarse_simple_bounds(self, s1):
        """Cheap float32 upper bound of every coarse block [n, B]: larger anchor + bulge/4 + margin."""
        ub = np.maximum(s1[:, :-1], s1[:, 1:])
        ub += self.coarse_quarter
        return ub

    def coarse_blocks(self, s1, floor, ub=None):
        """(row, coarse block) pairs whose chord bound reaches floor[row] (float64 [n]), rows sorted.

        The cheap bound (`ub`, computed if not given) is tried on every block first, the exact
        chord bound only on the blocks that pass it.
        """
        if ub is None:
            ub = self.coarse_simple_bounds(s1)
        live = ub >= (floor - 1e-6).astype(np.float32)[:, None]
        i, b = np.divmod(np.flatnonzero(live), self.nb)
        keep = _chord_bound(s1[i, b], s1[i, b + 1], self.ix.coarse_bulge[b], self.tol) >= floor[i]
        return i[keep], b[keep]

    def exact(self, xc, x32, s1):
        """Exact best similarity [n] and code [n] of every kernel of the chunk."""
        from ._search_loop import search_rows  # numba: loaded (and compiled or read from its cache) on first use

        best = np.empty(len(xc))
        best_idx = np.empty(len(xc), dtype=np.int64)
        if len(xc):
            search_rows(np.ascontiguousarray(xc), np.ascontiguousarray(x32), np.ascontiguousarray(s1),
                        *self._loop_args, best, best_idx)
        return best, best_idx


def _inverse_4(bulge: np.ndarray) -> np.ndarray:
    """1/(4·bulge), 0 where the bulge is 0 (a straight block: the chord bound adds nothing)."""
    return np.divide(1.0, 4 * bulge, out=np.zeros_like(bulge), where=bulge > 0)


def _round_up32(a: np.ndarray) -> np.ndarray:
    """float32 values not below a (a bound stays a bound after rounding)."""
    a32 = a.astype(np.float32)
    return np.where(a32.astype(np.float64) < a, np.nextafter(a32, np.float32(np.inf)), a32).astype(np.float32)


#: Kernels per chunk of the fast search: its float32 similarities to the coarse anchors stay in cache.
FAST_CHUNK = 8192


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
    searcher = ix.searcher
    idx = np.empty(len(xk), dtype=np.int64)
    sim = np.empty(len(xk))
    exact = np.ones(len(xk), dtype=bool)

    def work(s, e):
        xc, x32 = xk.unit_pair(s, e)
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


@dataclass(frozen=True)
class Nearest:
    """The winning decoded code of every kernel. Kernels with no direction (all zero, NaN/inf) have
    index −1, similarity NaN (undefined) and `degenerate` True."""

    index: np.ndarray        # [N] int64 row of the winning decoded code, −1 if degenerate
    similarity: np.ndarray   # [N] float64 cos to it
    exact: np.ndarray        # [N] bool: the true nearest code (False where `settle` decided without it)
    degenerate: np.ndarray   # [N] bool

    @property
    def dissimilarity(self) -> np.ndarray:
        """1 − cos, clipped to [0, 2]; NaN where undefined."""
        return np.where(self.degenerate, np.nan, _dissimilarity(np.nan_to_num(self.similarity)))


def nearest_codes(x, decoded, method: str = "fast", settle=None, on_degenerate: str = "flag", chunk: int | None = None,
                  workers: int | None = None, progress: bool = False, dtype=np.float64) -> Nearest:
    """Nearest decoded code of every kernel x [N, d] (or [N, kh, kw]) among `decoded` [M, d] (rows in code order).

    method "fast" (the exact pruned search; `decoded` may be a prebuilt `CurveIndex`; `workers`
    threads, default CPU count ≤ 8, each holding a few hundred floats per kernel of its `chunk`)
    or "reference" (brute force in `dtype`; ties go to the lowest index). `settle(searcher, xc, x32,
    s1)` may return (mask, code, similarity) for kernels of a chunk that need no exact search (fast
    only). Kernels with no direction are flagged (on_degenerate="flag") or refused ("raise").
    """
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    if on_degenerate not in ("flag", "raise"):
        raise ValueError(f"on_degenerate must be 'flag' or 'raise', got {on_degenerate!r}")
    xk, bad = _Kernels.of(x, flag_degenerate=on_degenerate == "flag")
    if method == "fast":
        ix = _as_index(decoded)
        _check_dims(xk.dim, ix.unit)
        idx, sim, exact = _fast(xk, ix, chunk or FAST_CHUNK, workers, progress, settle)
    else:
        unit = decoded.unit if isinstance(decoded, CurveIndex) else unit_rows(decoded, "decoded codes")
        _check_dims(xk.dim, unit)
        idx, sim = _reference(xk, unit, chunk or 1024, dtype, progress)
        exact = np.ones(len(xk), dtype=bool)
    good = np.flatnonzero(~bad)
    out_index = np.full(len(bad), -1, dtype=np.int64)
    out_sim = np.full(len(bad), np.nan)
    out_exact = np.zeros(len(bad), dtype=bool)
    out_index[good], out_sim[good], out_exact[good] = idx, sim, exact
    return Nearest(out_index, out_sim, out_exact, bad)


def nearest_code_reference(x, decoded, chunk: int = 1024, dtype=np.float64, progress: bool = False):
    """The paper's brute force: cosine of every kernel with every decoded code, keep the best.
    Returns (index [N] of the winning decoded row, dissimilarity [N] = 1 − cos); refuses kernels
    with no direction."""
    near = nearest_codes(x, decoded, "reference", on_degenerate="raise", chunk=chunk, dtype=dtype, progress=progress)
    return near.index, near.dissimilarity


def nearest_code_fast(x, decoded, chunk: int = FAST_CHUNK, workers: int | None = None, progress: bool = False):
    """Exactly what `nearest_code_reference` returns (the index may differ only where two codes tie
    to float64 rounding), much faster on a smooth decoded curve."""
    near = nearest_codes(x, decoded, "fast", on_degenerate="raise", chunk=chunk, workers=workers, progress=progress)
    return near.index, near.dissimilarity
