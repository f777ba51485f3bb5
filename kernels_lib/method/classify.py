"""The paper's classification rule (§4.2) on top of the nearest-code search: thresholds and labels.

A kernel x (centred, unit length, hyperplane coordinates) is compared with M prototypes p_j —
the decoded kernels of 10,000 equally spaced codes of an autoencoder, or k-means centroids — by
the cosine dissimilarity δ(x) = min_j (1 − cos(x, p_j)). With δ(x) strictly below the threshold
(0.3 for 7×7, 0.2 for 5×5) it takes the label of the winning prototype (its code interval's
class), otherwise it is "unclustered"; a kernel with no direction is "degenerate".

`label_kernels` is that rule on arrays of coordinates (`kernels_lib.method.search` finds the codes);
`PrototypeClassifier` bundles prototypes, labels and threshold and `predict`s raw kernels;
`autoencoder_classifier` builds the paper's classifier from an autoencoder and its label file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import spectrum
from ..errors import AnalysisError
from ..preprocess import prepare, to_hyperplane
from .search import CurveIndex, Searcher, nearest_codes
from ..vocab import AUTOENCODER, DEGENERATE, UNCLUSTERED, merge_classes, paper_threshold


@dataclass(frozen=True)
class CodeAssignment:
    """One entry per kernel: its nearest prototype, dissimilarity, label and clustered flag.

    Degenerate kernels (no direction) have code_index −1, code and dissimilarity NaN (undefined),
    label "degenerate" and clustered False: flagged and counted, never classified.
    """

    code: np.ndarray           # [N] float64 code in [0, 1] of the nearest decoded kernel
    code_index: np.ndarray     # [N] int64 row of the nearest decoded kernel
    dissimilarity: np.ndarray  # [N] float64 1 − cos to it
    label: np.ndarray          # [N] str: the code's interval label, "unclustered" or "degenerate"
    clustered: np.ndarray      # [N] bool: dissimilarity strictly below the threshold
    degenerate: np.ndarray     # [N] bool
    exact: np.ndarray          # [N] bool: code and dissimilarity are the true nearest (see label_kernels)

    def __len__(self) -> int:
        return len(self.code)


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
    def settle(searcher: Searcher, xc, x32, s1):
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


def label_kernels(
    x,
    decoded,
    code_labels,
    threshold: float,
    method: str = "fast",
    need_exact_code: bool = True,
    codes=None,
    on_degenerate: str = "flag",
    chunk: int | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> CodeAssignment:
    """Nearest decoded code of every kernel, with the paper's threshold and interval labels.

    x: kernels [N, d] (or [N, kh, kw]) in the same space as `decoded` [M, d] (e.g. both hyperplane
    coordinates); decoded may be a prebuilt `search.CurveIndex`. code_labels: label of each
    decoded code (e.g. `spectrum.code_labels`). codes: code value of each row (default M
    equally spaced in [0, 1]). A kernel is clustered when 1 − cos is strictly below threshold.

    method "reference" is the brute force, "fast" the exact pruned search. With
    need_exact_code=False the fast search skips kernels whose label and clustered flag its bounds
    already decide; their code and dissimilarity are then those of the best coarse anchor (a
    true code, its dissimilarity an upper bound of the minimum) and `exact` is False.
    on_degenerate: "flag" (see `CodeAssignment`) or "raise".
    """
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    threshold = float(threshold)
    if not 0.0 < threshold <= 2.0:
        raise ValueError(f"threshold is a dissimilarity 1 − cos in (0, 2], got {threshold}")
    if method == "fast" and not isinstance(decoded, CurveIndex):
        decoded = CurveIndex.build(decoded)
    m = len(decoded.unit) if isinstance(decoded, CurveIndex) else len(np.asarray(decoded))
    ids, names = _label_ids(code_labels, m)
    code_values = np.linspace(0.0, 1.0, m) if codes is None else np.asarray(codes, dtype=np.float64)
    if code_values.shape != (m,) or not np.isfinite(code_values).all():
        raise ValueError(f"codes must be {m} finite numbers, one per decoded code")
    settle = None
    if method == "fast" and not need_exact_code:
        settle = _settler(1.0 - threshold, _block_labels(decoded, ids))
    near = nearest_codes(x, decoded, method=method, settle=settle, on_degenerate=on_degenerate, chunk=chunk,
                         workers=workers, progress=progress)
    bad = near.degenerate
    good = ~bad
    dis = near.dissimilarity
    clustered = good & (np.nan_to_num(dis, nan=np.inf) < threshold)
    all_names = np.r_[names, [UNCLUSTERED, DEGENERATE]].astype(str)
    lab = np.where(bad, len(names) + 1, np.where(clustered, ids[np.maximum(near.index, 0)], len(names)))
    code = np.where(good, code_values[np.maximum(near.index, 0)], np.nan)
    return CodeAssignment(code=code, code_index=near.index, dissimilarity=dis, label=all_names[lab],
                          clustered=clustered, degenerate=bad, exact=near.exact)


@dataclass
class PrototypeClassifier:
    """Kernels take the label of their most similar prototype when 1 − cos is below `threshold`.

    The autoencoder path and the k-means baseline both reduce to this, so one function
    classifies and one function evaluates both. Prototypes are unit rows in hyperplane
    coordinates (k² − 1 numbers), in order (codes increasing for an autoencoder).
    """

    method: str                  # e.g. "autoencoder", "kmeans-16"
    kernel_shape: tuple[int, int]
    prototypes: np.ndarray       # [M, k*k-1] float64, unit rows
    labels: np.ndarray           # [M] str, fine label of each prototype
    threshold: float
    codes: np.ndarray | None = None   # [M] code of each prototype (autoencoder), None for k-means
    info: dict = field(default_factory=dict)
    _index: object = field(default=None, init=False, repr=False, compare=False)   # CurveIndex, built on first use

    def __post_init__(self):
        self.prototypes = np.asarray(self.prototypes, dtype=np.float64)
        self.labels = np.asarray(self.labels, dtype=str)
        kh, kw = self.kernel_shape
        if self.prototypes.ndim != 2 or self.prototypes.shape[1] != kh * kw - 1:
            raise AnalysisError(f"prototypes must be [M, {kh * kw - 1}] hyperplane coordinates, got {self.prototypes.shape}")
        if len(self.labels) != len(self.prototypes):
            raise AnalysisError(f"{len(self.prototypes)} prototypes but {len(self.labels)} labels")
        if not 0.0 < float(self.threshold) <= 2.0:
            raise AnalysisError(f"threshold is a dissimilarity 1 − cos in (0, 2], got {self.threshold}")
        merge_classes(self.labels)   # every label must be a class of kernels_lib.vocab

    @property
    def merged(self) -> np.ndarray:
        return merge_classes(self.labels)

    def predict(self, kernels: np.ndarray, search: str = "fast", progress: bool = False) -> pd.DataFrame:
        """One row per kernel [N, kh, kw]: prototype, code, dissimilarity, label, merged, clustered, degenerate.

        The search is `label_kernels` ("fast": exact pruned search along the
        decoded curve; "reference": brute force; prototypes without codes — k-means centroids,
        a handful — are always searched by brute force). Degenerate kernels get no code and no
        dissimilarity (missing values, not NaN) and the label "degenerate".
        """
        arr = np.asarray(kernels)
        if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(self.kernel_shape):
            raise AnalysisError(f"expected kernels [N, {self.kernel_shape[0]}, {self.kernel_shape[1]}], got {arr.shape}")
        if search not in ("fast", "reference"):
            raise AnalysisError(f"search must be 'fast' or 'reference', got {search!r}")
        prep = prepare(arr)
        coords = np.zeros((len(arr), self.prototypes.shape[1]))
        coords[prep.index] = prep.coords        # degenerate rows stay zero: the search flags them
        if self.codes is None:
            search, decoded = "reference", self.prototypes
        else:
            if self._index is None:
                self._index = CurveIndex.build(self.prototypes)
            decoded = self._index
        result = label_kernels(coords, decoded, self.labels, self.threshold, method=search,
                               codes=self.codes, progress=progress)
        degenerate = result.degenerate
        label = result.label.astype(str)
        return pd.DataFrame({
            "prototype": result.code_index,
            "code": _with_missing(result.code, degenerate | (self.codes is None)),
            "dissimilarity": _with_missing(result.dissimilarity, degenerate),
            "threshold": _with_missing(np.full(len(arr), float(self.threshold)), False),
            "label": label,
            "merged": merge_classes(label),
            "clustered": result.clustered,
            "degenerate": degenerate,
        })


def _with_missing(values: np.ndarray, missing) -> pd.arrays.FloatingArray:
    """A nullable float column: missing (pd.NA, not NaN) where a value does not exist."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.broadcast_to(np.asarray(missing, dtype=bool), values.shape).copy()
    return pd.arrays.FloatingArray(np.where(mask, 0.0, values), mask)


def autoencoder_classifier(autoencoder, threshold: float | None = None, labels=None,
                           n_codes: int = spectrum.CLASSIFY_CODES) -> PrototypeClassifier:
    """The paper's classifier: `n_codes` decoded codes of an autoencoder and its label file.

    autoencoder: a directory written by `Autoencoder.save` (its ``labels.yaml`` is used unless
    `labels` is given) or a loaded `Autoencoder` (then `labels` — a label file or a list of
    intervals — is required). threshold: default the paper's for the kernel size.
    """
    from .autoencoder import Autoencoder

    if isinstance(autoencoder, (str, os.PathLike)):
        directory = Path(autoencoder)
        ae = Autoencoder.load(directory, device="cpu")
        if labels is None:
            labels = directory / spectrum.LABEL_FILE
            if not labels.is_file():
                raise AnalysisError(
                    f"{directory} has no {spectrum.LABEL_FILE}: label its spectrum first "
                    f"(kernels_lib.method.spectrum.label_spectrum({str(directory)!r}), then review the file)")
        source = str(directory)
    else:
        ae = autoencoder
        if labels is None:
            raise AnalysisError("pass labels= (a label file or intervals) with an in-memory autoencoder")
        source = "in-memory"
    if threshold is None:
        threshold = paper_threshold(ae.kernel_shape[0])
    codes = spectrum.code_grid(n_codes)
    decoded = ae.decode(codes)
    coords = to_hyperplane(decoded.reshape(len(codes), -1))
    return PrototypeClassifier(
        method=AUTOENCODER, kernel_shape=tuple(ae.kernel_shape), prototypes=coords,
        labels=spectrum.code_labels(labels, codes), threshold=float(threshold), codes=codes,
        info={"autoencoder": source, "labels": labels if isinstance(labels, (str, os.PathLike)) else "given",
              "n_codes": int(n_codes)},
    )
