"""k-means on kernels, with one determinism policy: Appendix N's 3×3 method and the baseline that
the autoencoder is compared with.

* `kmeans_3x3` — the paper's method for 3×3 kernels (Appendix N): k-means with 10 classes on
  min-max encoded kernels, (w − min w) / (max w − min w), per model. Every usable kernel is
  assigned to a cluster: k-means has no threshold, so it reports *cluster shares*, never a
  "% clustered". Each cluster is named after the DoG-family template nearest to its centroid.
* `kmeans_baseline` — k-means on the same preprocessed kernels the autoencoder sees (centred,
  unit length, hyperplane coordinates), its unit centroids named like the spectrum's codes, used
  with the paper's threshold as a `classify.PrototypeClassifier` (`kernels_lib.analysis.evaluate`).

Both run scikit-learn's KMeans on one thread with a given seed and number of initialisations,
so the float sums — and hence borderline assignments — do not depend on the machine's cores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from . import dog
from .classify import PrototypeClassifier
from ..errors import AnalysisError
from ..preprocess import degenerate_mask, from_hyperplane, prepare
from ..vocab import DEGENERATE, paper_threshold

#: Auto-labelling cosine of the baseline's centroids (`spectrum.propose_labels`' default).
MIN_SIMILARITY = 0.8


def fit_kmeans(data: np.ndarray, n_clusters: int, seed: int, n_init: int):
    """scikit-learn KMeans on one thread: the same data and seed give the same clusters on any machine."""
    from sklearn.cluster import KMeans

    with threadpool_limits(1):
        return KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed).fit(data)


@dataclass(frozen=True)
class KMeansFit:
    """Appendix N's k-means of one set of 3×3 kernels. Clusters are numbered by decreasing size.

    Degenerate kernels (constant, NaN/inf) are in no cluster: cluster −1, distance NaN
    (undefined), label "degenerate".
    """

    cluster: np.ndarray          # [N] int64 cluster id, −1 if degenerate
    distance: np.ndarray         # [N] float64 Euclidean distance to the centroid in min-max space
    label: np.ndarray            # [N] str: the cluster's name, or "degenerate"
    degenerate: np.ndarray       # [N] bool
    centroids: np.ndarray        # [K, 3, 3] in min-max space
    names: np.ndarray            # [K] str: nearest DoG-family template class, or "other"
    template_cosine: np.ndarray  # [K] mean-centred cosine of each centroid with that template
    inertia: float

    @property
    def sizes(self) -> np.ndarray:
        """Kernels in each cluster."""
        return np.bincount(self.cluster[~self.degenerate], minlength=len(self.names))


def minmax_encode(kernels) -> tuple[np.ndarray, np.ndarray]:
    """(w − min) / (max − min) per kernel, and the degenerate mask (constant or NaN/inf: all 0)."""
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
               name_min_cosine: float = 0.9) -> KMeansFit:
    """The paper's 3×3 method: k-means with `n_classes` clusters on min-max encoded kernels.

    Each cluster is named after the DoG-family template (`kernels_lib.method.dog`) nearest to its
    centroid when their mean-centred cosine reaches `name_min_cosine`, else "other".
    """
    enc, bad = minmax_encode(kernels)
    n, kh, kw = enc.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"kmeans_3x3 takes 3×3 kernels, got {kh}×{kw}; larger kernels go through the autoencoder")
    good = np.flatnonzero(~bad)
    if len(good) < n_classes:
        raise AnalysisError(f"{len(good)} usable kernels ({int(bad.sum())} degenerate) cannot form {n_classes} clusters")
    data = enc.reshape(n, -1)[good]
    km = fit_kmeans(data, n_classes, seed, n_init)
    # number clusters by decreasing size (ties: by centroid), independent of sklearn's order
    sizes = np.bincount(km.labels_, minlength=n_classes)
    order = np.lexsort((*km.cluster_centers_.T[::-1], -sizes))
    rank = np.empty(n_classes, dtype=np.int64)
    rank[order] = np.arange(n_classes)
    centroids = km.cluster_centers_[order]
    assign = rank[km.labels_]
    match = dog.nearest_template(centroids.reshape(n_classes, kh, kw), dog.template_bank(3),
                                 min_cosine=name_min_cosine)
    names = np.asarray(match.classes, dtype=str)
    cluster = np.full(n, -1, dtype=np.int64)
    cluster[good] = assign
    distance = np.full(n, np.nan)
    distance[good] = np.linalg.norm(data - centroids[assign], axis=1)
    label = np.full(n, DEGENERATE, dtype=object)
    label[good] = names[assign]
    return KMeansFit(cluster=cluster, distance=distance, label=label.astype(str), degenerate=bad,
                     centroids=centroids.reshape(n_classes, kh, kw), names=names,
                     template_cosine=np.asarray(match.cosine), inertia=float(km.inertia_))


def kmeans_baseline(train, n_clusters: int, seed: int = 0, threshold: float | None = None,
                    min_similarity: float = MIN_SIMILARITY, kernel_shape=None, n_init: int = 4) -> PrototypeClassifier:
    """k-means on hyperplane coordinates, centroids auto-labelled by the nearest DoG template.

    train: raw kernels [N, k, k] (degenerate ones are dropped) or hyperplane coordinates
    [N, k*k-1] with `kernel_shape` given. threshold: 1 − cos below which a kernel is clustered
    (default the paper's for the size). Same seed and data → same centroids.
    """
    arr = np.asarray(train)
    if arr.ndim == 3:
        prep = prepare(arr)
        coords, kernel_shape = prep.coords, prep.kernel_shape
    elif arr.ndim == 2 and kernel_shape is not None:
        coords, kernel_shape = arr.astype(np.float64), tuple(kernel_shape)
        norms = np.linalg.norm(coords, axis=1)
        if coords.shape[1] != kernel_shape[0] * kernel_shape[1] - 1 or not np.allclose(norms, 1.0, atol=1e-6):
            raise AnalysisError("coordinates must be unit rows with k*k-1 columns (kernels_lib.preprocess.prepare)")
    else:
        raise AnalysisError("pass kernels [N, k, k], or hyperplane coordinates [N, k*k-1] with kernel_shape=")
    if len(coords) < n_clusters:
        raise AnalysisError(f"k-means with {n_clusters} clusters needs at least {n_clusters} usable kernels, got {len(coords)}")
    k = kernel_shape[0]
    threshold = paper_threshold(k) if threshold is None else threshold
    km = fit_kmeans(coords, n_clusters, seed, n_init)
    cent = km.cluster_centers_
    norms = np.linalg.norm(cent, axis=1)
    if not (norms > 0).all():
        raise AnalysisError("a k-means centroid is the zero vector (opposite kernels cancelled); use another seed or K")
    cent = cent / norms[:, None]
    kernels = from_hyperplane(cent).reshape(len(cent), *kernel_shape)
    match = dog.nearest_template(kernels, dog.template_bank(k), min_cosine=min_similarity)
    return PrototypeClassifier(
        method=f"kmeans-{n_clusters}", kernel_shape=tuple(kernel_shape), prototypes=cent,
        labels=match.merged, threshold=float(threshold),
        info={"n_clusters": int(n_clusters), "seed": int(seed), "template_cosine": match.cosine,
              "cluster_sizes": np.bincount(km.labels_, minlength=n_clusters), "inertia": float(km.inertia_)},
    )
