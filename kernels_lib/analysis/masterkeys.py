"""How few filters explain a corpus: greedy coverage by prototypes.

The authors' follow-up ("The Quest for Universal Master Key Filters in DS-CNNs", arXiv
2509.11711) claims that eight filters suffice: trained depthwise kernels are mostly a·f + b of
one of them. Here that is measured with the paper's own yardstick. After centring and scaling
(which removes b and |a|), a kernel x is *covered* by a prototype f when 1 − |cos(x, f)| is
strictly below the paper's threshold (0.2 for 5×5, 0.3 for 7×7); |cos| because a may be
negative (`signed=True` keeps the sign, as the paper's classes do: On and Off are different).

`greedy_cover` picks, k = 1, 2, …, the prototype that covers most kernels not yet covered
(the classic greedy for maximum coverage, within 1 − 1/e of the best possible k prototypes;
ties go to the lower index) and returns the share covered after each pick. `elbow` is the
number of picks that each add at least `min_gain` (default 1 %) of the kernels: greedy gains
never increase, so after the elbow every further prototype explains less than 1 % more.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import fit as fitting
from ..database import store
from .crosscheck import RANDOM_INIT, TRAINED, group_of
from ..errors import AnalysisError
from ..paths import REFERENCE_AUTOENCODERS
from ..preprocess import centre_normalise, degenerate_mask
from ..method.spectrum import code_grid
from ..vocab import paper_threshold

#: Default marginal gain below which a further prototype is not worth it (share of the kernels).
MIN_GAIN = 0.01
#: Entries of the kernels × prototypes similarity block computed at once.
_BLOCK = 1 << 24


@dataclass(frozen=True)
class Coverage:
    """Greedy coverage of one set of kernels. `share[i]` is the share covered by the first i + 1 picks."""

    picks: np.ndarray          # [K] indices into the candidates, in the order picked
    gains: np.ndarray          # [K] kernels each pick newly covers
    share: np.ndarray          # [K] cumulative share of the usable kernels covered
    n_kernels: int             # usable (non-degenerate) kernels
    n_degenerate: int
    threshold: float
    signed: bool
    k_max: int

    def elbow(self, min_gain: float = MIN_GAIN) -> int | None:
        """`elbow` of this curve; None when there are no usable kernels or it lies beyond k_max."""
        if not self.n_kernels:
            return None
        return elbow(self.gains / self.n_kernels, min_gain, self.k_max)


def _unit_rows(kernels, what: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(kernels, dtype=np.float64)
    if arr.ndim != 3:
        raise AnalysisError(f"{what} must have shape [N, k, k], got {arr.shape}")
    flat = arr.reshape(len(arr), -1)
    bad = degenerate_mask(flat) if len(flat) else np.zeros(0, dtype=bool)
    return (centre_normalise(flat[~bad]) if (~bad).any() else np.zeros((0, flat.shape[1]))), bad


def covering_pairs(kernels, candidates, threshold: float, signed: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kernel, candidate) index pairs within the threshold, and the usable-kernel mask (degenerate
    kernels cover nothing and are counted out). Degenerate candidates are refused."""
    x, bad = _unit_rows(kernels, "kernels")
    c, cbad = _unit_rows(candidates, "candidates")
    if cbad.any():
        raise AnalysisError(f"{int(cbad.sum())} candidate prototypes are constant or hold NaN/inf; drop them")
    if x.shape[1] != c.shape[1]:
        raise AnalysisError(f"kernels ({x.shape[1]} weights) and candidates ({c.shape[1]}) differ in size")
    if not 0.0 < float(threshold) <= 2.0:
        raise AnalysisError(f"threshold is a dissimilarity 1 − cos in (0, 2], got {threshold}")
    usable = np.flatnonzero(~bad)
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    step = max(1, _BLOCK // max(len(c), 1))
    for start in range(0, len(x), step):
        sims = x[start:start + step] @ c.T
        if not signed:
            sims = np.abs(sims)
        r, j = np.nonzero(1.0 - sims < float(threshold))
        rows.append(usable[r + start])
        cols.append(j.astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols), ~bad


def greedy_from_pairs(rows: np.ndarray, cols: np.ndarray, n_kernels: int, n_candidates: int,
                      k_max: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximum coverage on covering pairs: (picks, newly covered per pick), at most `k_max`
    picks; it stops early when no candidate covers anything new."""
    if k_max < 1:
        raise AnalysisError(f"k_max must be >= 1, got {k_max}")
    picks, gains = [], []
    rows, cols = np.asarray(rows), np.asarray(cols)
    for _ in range(int(k_max)):
        if not len(rows):
            break
        count = np.bincount(cols, minlength=n_candidates)
        best = int(count.argmax())
        picks.append(best)
        gains.append(int(count[best]))
        covered = np.zeros(n_kernels, dtype=bool)
        covered[rows[cols == best]] = True
        keep = ~covered[rows]
        rows, cols = rows[keep], cols[keep]
    return np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.int64)


def _coverage(rows, cols, usable: np.ndarray, n_candidates: int, threshold: float, k_max: int,
              signed: bool) -> Coverage:
    n = int(usable.sum())
    picks, gains = greedy_from_pairs(rows, cols, len(usable), n_candidates, k_max)
    share = np.cumsum(gains) / n if n else np.full(len(gains), np.nan)
    return Coverage(picks=picks, gains=gains, share=share, n_kernels=n, n_degenerate=int((~usable).sum()),
                    threshold=float(threshold), signed=bool(signed), k_max=int(k_max))


def greedy_cover(kernels, candidates, threshold: float, k_max: int = 50, signed: bool = False) -> Coverage:
    """Greedy coverage of kernels [N, k, k] by candidate prototypes [M, k, k] (see the module)."""
    rows, cols, usable = covering_pairs(kernels, candidates, threshold, signed)
    return _coverage(rows, cols, usable, len(candidates), threshold, k_max, signed)


def greedy_cover_groups(kernels, groups, candidates, threshold: float, k_max: int = 50,
                        signed: bool = False) -> dict:
    """{group: `Coverage`} of each group of kernels (`groups`: one key per kernel, e.g. the model), each
    picking its own prototypes from the same candidates; the similarities are computed once."""
    groups = np.asarray(groups)
    if len(groups) != len(kernels):
        raise AnalysisError(f"{len(groups)} group keys for {len(kernels)} kernels")
    rows, cols, usable = covering_pairs(kernels, candidates, threshold, signed)
    out = {}
    for key in sorted(set(groups.tolist()), key=str):
        member = groups == key
        keep = member[rows]
        out[key] = _coverage(rows[keep], cols[keep], usable & member, len(candidates), threshold, k_max, signed)
    return out


def elbow(gain_shares, min_gain: float = MIN_GAIN, k_max: int | None = None) -> int | None:
    """Number of leading picks that each add at least `min_gain` of the kernels; None when every one of
    `k_max` picks does (the elbow lies beyond k_max)."""
    g = np.asarray(gain_shares, dtype=np.float64)
    below = np.flatnonzero(~(g >= min_gain))
    if len(below):
        return int(below[0])
    k_max = len(g) if k_max is None else k_max
    return None if len(g) >= k_max else int(len(g))


def padded_share(coverage: Coverage, k_max: int) -> np.ndarray:
    """The share curve at k = 1 … k_max: flat after the last pick (nothing more could be covered)."""
    share = np.full(k_max, np.nan)
    if coverage.n_kernels == 0:
        return share
    last = coverage.share[-1] if len(coverage.share) else 0.0
    share[:len(coverage.share)] = coverage.share
    share[len(coverage.share):] = last
    return share


#: Where candidate prototypes come from: the fitted family templates of a sample of the corpus's own
#: kernels, and the decoded kernels of equally spaced codes of the reference autoencoder.
POOLS = ("fitted", "decoded")
#: The pooled curve's model name.
ALL_MODELS = "all models"


def fitted_prototypes(kernels, n: int, seed: int = 0) -> np.ndarray:
    """Fitted family templates [≤ n, k, k] of n kernels drawn (seeded) from the usable ones: every
    candidate is a member of the DoG family, placed where the corpus has kernels."""
    arr = np.asarray(kernels)
    usable = np.flatnonzero(~degenerate_mask(arr.reshape(len(arr), -1))) if len(arr) else np.zeros(0, np.int64)
    if not len(usable):
        return np.zeros((0, *arr.shape[1:]))
    pick = np.sort(np.random.default_rng(seed).choice(usable, min(int(n), len(usable)), replace=False))
    return fitting.fitted_templates(fitting.fit_kernels(arr[pick]), arr.shape[1])


def decoded_prototypes(autoencoder_dir, n: int) -> np.ndarray:
    """Decoded kernels [n, k, k] of n equally spaced codes of an autoencoder (its spectrum)."""
    from ..method.autoencoder import Autoencoder

    ae = Autoencoder.load(autoencoder_dir, device="cpu")
    return np.asarray(ae.decode(code_grid(int(n))), dtype=np.float64).reshape(int(n), *ae.kernel_shape)


@dataclass(frozen=True)
class CorpusCoverage:
    """Greedy coverage of a kernel database: `curves` (pool, kernel_size, group, model, k, share),
    `summary` (one row per curve: n, share at k = 1, 8 and k_max, elbow) and the first picks of each
    pooled curve, `prototypes[(pool, kernel_size, group)]` [≤ 8, k, k] with their `gains` (shares)."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    prototypes: dict
    gains: dict


def corpus_coverage(db, kernel_sizes=(5, 7), k_max: int = 50, signed: bool = False, n_fitted: int = 3000,
                    n_decoded: int = 2000, autoencoder_dirs: dict | None = None, thresholds: dict | None = None,
                    min_gain: float = MIN_GAIN, seed: int = 0, keep: int = 8) -> CorpusCoverage:
    """Greedy coverage of every k×k kernel of a database, per model and pooled, trained kernels and
    random-init twins alike, for each pool of candidates (`POOLS`): the fitted pool is drawn from
    the group's own kernels, the decoded pool from the autoencoder of the size (default the
    reference; sizes without one have no decoded pool). Thresholds default to the paper's."""
    dirs = dict(REFERENCE_AUTOENCODERS if autoencoder_dirs is None else autoencoder_dirs)
    curves, summary, prototypes, gains = [], [], {}, {}
    for k in kernel_sizes:
        k = int(k)
        meta, kernels = store.read_kernel_array(db, k, columns=["model", "weights_tag"])
        if not len(meta):
            continue
        threshold = float((thresholds or {}).get(k) or paper_threshold(k))
        groups = group_of(meta["weights_tag"])
        decoded = decoded_prototypes(dirs[k], n_decoded) if k in dirs else None
        for group in (TRAINED, RANDOM_INIT):
            rows = np.flatnonzero(groups == group)
            if not len(rows):
                continue
            pools = {"fitted": fitted_prototypes(kernels[rows], n_fitted, seed)}
            if decoded is not None:
                pools["decoded"] = decoded
            models = meta["model"].to_numpy()[rows]
            for pool, candidates in pools.items():
                if not len(candidates):
                    continue
                per_model = greedy_cover_groups(kernels[rows], models, candidates, threshold, k_max, signed)
                per_model[ALL_MODELS] = greedy_cover(kernels[rows], candidates, threshold, k_max, signed)
                for model, cov in per_model.items():
                    share = padded_share(cov, k_max)
                    gain = np.diff(np.r_[0.0, share])
                    curves.append(pd.DataFrame({"pool": pool, "kernel_size": k, "group": group, "model": model,
                                                "k": np.arange(1, k_max + 1), "share": share, "gain": gain}))
                    summary.append({"pool": pool, "kernel_size": k, "group": group, "model": model,
                                    "n_kernels": cov.n_kernels, "n_degenerate": cov.n_degenerate,
                                    "threshold": threshold, "signed": bool(signed),
                                    "share_at_1": share[0], "share_at_8": share[min(7, k_max - 1)],
                                    f"share_at_{k_max}": share[-1], "elbow": cov.elbow(min_gain),
                                    "min_gain": min_gain, "n_candidates": len(candidates)})
                pooled = per_model[ALL_MODELS]
                prototypes[pool, k, group] = candidates[pooled.picks[:keep]]
                gains[pool, k, group] = pooled.gains[:keep] / max(pooled.n_kernels, 1)
    if not curves:
        raise AnalysisError(f"no {', '.join(f'{k}×{k}' for k in kernel_sizes)} kernels in {db}")
    curves = pd.concat(curves, ignore_index=True)
    summary = pd.DataFrame(summary)
    curves = curves.merge(summary[["pool", "kernel_size", "group", "model", "elbow"]],
                          on=["pool", "kernel_size", "group", "model"], how="left")
    return CorpusCoverage(curves, summary, prototypes, gains)
