"""Why an autoencoder and not k-means? The baseline and one evaluation for both.

`kmeans_baseline` clusters the same preprocessed kernels the autoencoder sees (centred, unit
length, hyperplane coordinates) into K groups. Each centroid c_j is scaled to unit length and
named the way the autoencoder's spectrum is named: by its nearest DoG-family template under the
mean-centred cosine (`kernels_lib.dog.nearest_template`), "other" when that cosine is below
`min_similarity`. A kernel x is then classified exactly like the autoencoder path: it takes the
label of argmin_j (1 − cos(x, c_j)) when that dissimilarity is below the threshold. Both paths
give an `analysis.PrototypeClassifier`, so `evaluate` scores them with the same code:

* merged-class accuracy: the share of *all* kernels whose predicted merged class is the true
  one (an unclustered kernel counts as wrong), and the same among clustered kernels only;
* per-class precision |pred = c ∧ true = c| / |pred = c| and recall |pred = c ∧ true = c| / |true = c|;
* the clustered fraction, on the labelled kernels and on i.i.d. random kernels (which should
  hardly cluster: a method that clusters noise finds patterns that are not there).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import dog, spectrum
from .analysis import AUTOENCODER, UNCLUSTERED, AnalysisError, PrototypeClassifier
from .preprocess import from_hyperplane, prepare

#: K of the comparison: the paper's 10 classes, its 16 fine classes, and a generous 64.
KMEANS_SIZES = (10, 16, 64)
#: Auto-labelling cosine of both paths (`kernels_lib.spectrum.propose_labels`' default).
MIN_SIMILARITY = 0.8


def _coords(kernels) -> tuple[np.ndarray, tuple[int, int]]:
    arr = np.asarray(kernels)
    if arr.ndim != 3:
        raise AnalysisError(f"expected kernels [N, k, k], got shape {arr.shape}")
    prep = prepare(arr)
    return prep.coords, prep.kernel_shape


def kmeans_baseline(train, n_clusters: int, seed: int = 0, threshold: float | None = None,
                    min_similarity: float = MIN_SIMILARITY, kernel_shape=None, n_init: int = 4) -> PrototypeClassifier:
    """k-means on hyperplane coordinates, centroids auto-labelled by the nearest DoG template.

    train: raw kernels [N, k, k] (degenerate ones are dropped) or hyperplane coordinates
    [N, k*k-1] with `kernel_shape` given. threshold: 1 − cos below which a kernel is clustered
    (default the paper's for the size). Same seed and data → same centroids.
    """
    from sklearn.cluster import KMeans

    from .classify import PAPER_THRESHOLDS

    arr = np.asarray(train)
    if arr.ndim == 3:
        coords, kernel_shape = _coords(arr)
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
    if threshold is None:
        if k not in PAPER_THRESHOLDS:
            raise AnalysisError(f"the paper gives no threshold for {k}×{k} kernels; pass threshold=")
        threshold = PAPER_THRESHOLDS[k]
    km = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed).fit(coords)
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


def autoencoder_path(train, seed: int = 0, threshold: float | None = None, min_similarity: float = MIN_SIMILARITY,
                     n_codes: int = spectrum.CLASSIFY_CODES, progress: bool = False, **train_kwargs):
    """Train an autoencoder on `train` [N, k, k], auto-label its spectrum, return (classifier, autoencoder).

    The intervals come from `spectrum.propose_labels` on `n_codes` decoded codes, with no
    human in the loop, so the comparison with k-means is like for like.
    """
    from .analysis import autoencoder_classifier
    from .autoencoder import train as train_autoencoder

    ae = train_autoencoder(np.asarray(train), seed=seed, progress=progress, **train_kwargs)
    intervals = spectrum.propose_labels(spectrum.decode_spectrum(ae, n_codes), min_similarity)
    clf = autoencoder_classifier(ae, threshold=threshold, labels=intervals, n_codes=n_codes)
    clf.info.update({"intervals": intervals, "final_loss": ae.provenance["final_loss"],
                     "epochs_run": ae.provenance["epochs_run"]})
    return clf, ae


def evaluate(classifier: PrototypeClassifier, kernels, true_classes, random_kernels=None,
             search: str = "fast") -> dict:
    """Scores of a classifier on labelled kernels (true merged or fine class names).

    Returns {method, n, accuracy, accuracy_clustered, clustered_fraction, random_clustered_fraction
    (None without random kernels), chance (share of the most common true class),
    per_class: DataFrame[class, support, predicted, precision, recall]}. Precision of a class
    never predicted is 0 (with predicted = 0 to say why), never NaN.
    """
    true = np.array([dog.merge_class(c) for c in np.asarray(true_classes, dtype=str)])
    pred = classifier.classify(np.asarray(kernels), search=search)
    if len(pred) != len(true):
        raise AnalysisError(f"{len(pred)} kernels but {len(true)} true classes")
    if len(true) == 0:
        raise AnalysisError("no kernels to evaluate")
    p = pred["merged"].to_numpy(dtype=str)
    clustered = pred["clustered"].to_numpy()
    rows = []
    for c in [c for c in dog.MERGED_CLASSES if c in set(true) | set(p)]:
        tp = int(np.sum((p == c) & (true == c)))
        n_pred, n_true = int(np.sum(p == c)), int(np.sum(true == c))
        rows.append({"class": c, "support": n_true, "predicted": n_pred,
                     "precision": tp / n_pred if n_pred else 0.0, "recall": tp / n_true if n_true else 0.0})
    correct = p == true
    out = {
        "method": classifier.method,
        "n": int(len(true)),
        "accuracy": float(correct.mean()),
        "accuracy_clustered": float(correct[clustered].mean()) if clustered.any() else 0.0,
        "clustered_fraction": float(clustered.mean()),
        "chance": float(pd.Series(true).value_counts(normalize=True).iloc[0]),
        "random_clustered_fraction": None,
        "per_class": pd.DataFrame(rows, columns=["class", "support", "predicted", "precision", "recall"]),
        "unclustered": int(np.sum(p == UNCLUSTERED)),
    }
    if random_kernels is not None:
        out["random_clustered_fraction"] = float(classifier.classify(np.asarray(random_kernels), search=search)["clustered"].mean())
    return out


def compare(train, test, test_classes, random_kernels, n_clusters=KMEANS_SIZES, seed: int = 0,
            threshold: float | None = None, min_similarity: float = MIN_SIMILARITY, autoencoder_kwargs=None,
            n_codes: int = spectrum.CLASSIFY_CODES, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Autoencoder path vs k-means with each K in `n_clusters`, trained on `train`, scored on `test`.

    autoencoder_kwargs go to `autoencoder.train`; n_codes is the number of decoded codes.
    Returns (summary: one row per method, per_class: one row per method and class, classifiers
    by method name).
    """
    classifiers = {}
    clf, _ = autoencoder_path(train, seed=seed, threshold=threshold, min_similarity=min_similarity,
                              n_codes=n_codes, progress=progress, **(autoencoder_kwargs or {}))
    classifiers[AUTOENCODER] = clf
    for k in n_clusters:
        km = kmeans_baseline(train, int(k), seed=seed, threshold=threshold, min_similarity=min_similarity)
        classifiers[km.method] = km
    summary, per_class = [], []
    for name, c in classifiers.items():
        ev = evaluate(c, test, test_classes, random_kernels)
        per_class.append(ev.pop("per_class").assign(method=name))
        ev["n_prototypes"] = len(c.prototypes)
        ev["labelled_prototypes"] = int(np.sum(c.merged != dog.OTHER))
        summary.append(ev)
    cols = ["method", "n_prototypes", "labelled_prototypes", "n", "accuracy", "accuracy_clustered",
            "clustered_fraction", "random_clustered_fraction", "chance", "unclustered"]
    per = pd.concat(per_class, ignore_index=True)[["method", "class", "support", "predicted", "precision", "recall"]]
    return pd.DataFrame(summary)[cols], per, classifiers
