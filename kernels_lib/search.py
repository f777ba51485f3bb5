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
* Three stages, grouped so each is a few dense matrix products: x·(coarse anchors) in float32;
  x·(fine anchors) inside the two coarse blocks around the best coarse anchor (float32); every
  code of the two fine blocks around the best fine anchor in float64. That gives the best
  similarity found, s.
* Certificate. Every other fine block of the window, and every coarse block outside it (through
  its own fine anchors), whose bound reaches s is scanned exactly too. Bounds carry a margin 8×
  the worst float32 rounding, so nothing that could win or tie is ever pruned: the result is
  exact whatever the decoded rows look like; smoothness only makes it fast.

`kernels_lib.classify` adds thresholds and labels on top, and may skip the exact search where
the bounds already decide a kernel's label (through `Searcher`'s bounds and the `settle` hook of
`nearest_codes`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .preprocess import _no_direction_error, as_rows, row_norms, unit_rows


@dataclass(frozen=True)
class _Kernels:
    """The usable rows of a kernel matrix, normalised a chunk at a time (no full unit copy)."""

    raw: np.ndarray            # [N, d] float64
    norms: np.ndarray          # [N]
    rows: np.ndarray | None    # positions of the usable rows; None: all of them

    @classmethod
    def of(cls, x, flag_degenerate: bool) -> tuple["_Kernels", np.ndarray]:
        """(usable kernels, degenerate mask [N]); raises on degenerate rows unless flagging."""
        raw = as_rows(x, "kernels")
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


class Searcher:
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
    searcher = Searcher(ix)
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
        idx, sim, exact = _fast(xk, ix, chunk or 65536, workers, progress, settle)
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


def nearest_code_fast(x, decoded, chunk: int = 65536, workers: int | None = None, progress: bool = False):
    """Exactly what `nearest_code_reference` returns (the index may differ only where two codes tie
    to float64 rounding), much faster on a smooth decoded curve."""
    near = nearest_codes(x, decoded, "fast", on_degenerate="raise", chunk=chunk, workers=workers, progress=progress)
    return near.index, near.dissimilarity
