"""Scoring classifiers on kernels whose class is known, and why an autoencoder and not k-means.

`evaluate` scores any `classify.PrototypeClassifier` — the autoencoder path or the k-means
baseline (`kmeans.kmeans_baseline`) — with the same code:

* merged-class accuracy: the share of *all* kernels whose predicted merged class is the true
  one (an unclustered kernel counts as wrong), and the same among clustered kernels only;
* per-class precision |pred = c ∧ true = c| / |pred = c| and recall |pred = c ∧ true = c| / |true = c|
  (undefined, NaN, when the denominator is 0);
* the clustered fraction, on the labelled kernels and on i.i.d. random kernels (which should
  hardly cluster: a method that clusters noise finds patterns that are not there);
* the confusion matrix: how many kernels of each true merged class went to each prediction
  ("unclustered" and "other" included), so that one sees where the misses go.

The labelled kernels to score on come from `kernels_lib.analysis.groundtruth` (a generator written
apart from the DoG family the autoencoders learn from), never from the bank a method trained on.

`autoencoder_path` trains an autoencoder and labels its spectrum with no human in the loop, so
`compare` can set it against k-means like for like. `encoder_dissimilarity` is notebook 05's
check of the encoder itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import autoencoder, spectrum
from ..method.classify import PrototypeClassifier, autoencoder_classifier
from ..errors import AnalysisError
from ..method.kmeans import MIN_SIMILARITY, kmeans_baseline
from ..preprocess import Prepared, to_hyperplane
from ..vocab import AUTOENCODER, CLASS_ORDER, MERGED_CLASSES, OTHER, UNCLUSTERED, merge_classes

#: K of the comparison: the paper's 10 classes, its 16 fine classes, and a generous 64.
KMEANS_SIZES = (10, 16, 64)


def autoencoder_path(train, seed: int = 0, threshold: float | None = None, min_similarity: float = MIN_SIMILARITY,
                     n_codes: int = spectrum.CLASSIFY_CODES, progress: bool = False, **train_kwargs):
    """Train an autoencoder on `train` [N, k, k], auto-label its spectrum, return (classifier, autoencoder).

    The intervals come from `spectrum.propose_labels` on `n_codes` decoded codes, with no
    human in the loop, so the comparison with k-means is like for like.
    """
    ae = autoencoder.train(np.asarray(train), seed=seed, progress=progress, **train_kwargs)
    intervals = spectrum.propose_labels(spectrum.decode_spectrum(ae, n_codes), min_similarity)
    clf = autoencoder_classifier(ae, threshold=threshold, labels=intervals, n_codes=n_codes)
    clf.info.update({"intervals": intervals, "best_loss": ae.provenance["best_loss"],
                     "epochs_run": ae.provenance["epochs_run"]})
    return clf, ae


def evaluate(classifier: PrototypeClassifier, kernels, true_classes, random_kernels=None,
             search: str = "fast") -> dict:
    """Scores of a classifier on labelled kernels (true merged or fine class names).

    Returns {method, n, accuracy, accuracy_clustered, clustered_fraction, random_clustered_fraction
    (None without random kernels), chance (share of the most common true class),
    per_class: DataFrame[class, support, predicted, precision, recall], confusion: `confusion_matrix`,
    predicted: the merged class (or "unclustered"/"degenerate") of every kernel}.
    Precision of a class never predicted (and recall of a class absent from the truth) is
    undefined: NaN, with predicted = 0 (support = 0) to say why.
    """
    true = merge_classes(np.asarray(true_classes, dtype=str))
    pred = classifier.predict(np.asarray(kernels), search=search)
    if len(pred) != len(true):
        raise AnalysisError(f"{len(pred)} kernels but {len(true)} true classes")
    if len(true) == 0:
        raise AnalysisError("no kernels to evaluate")
    p = pred["merged"].to_numpy(dtype=str)
    clustered = pred["clustered"].to_numpy()
    rows = []
    for c in [c for c in MERGED_CLASSES if c in set(true) | set(p)]:
        tp = int(np.sum((p == c) & (true == c)))
        n_pred, n_true = int(np.sum(p == c)), int(np.sum(true == c))
        rows.append({"class": c, "support": n_true, "predicted": n_pred,
                     "precision": tp / n_pred if n_pred else np.nan, "recall": tp / n_true if n_true else np.nan})
    correct = p == true
    out = {
        "method": classifier.method,
        "n": int(len(true)),
        "accuracy": float(correct.mean()),
        "accuracy_clustered": float(correct[clustered].mean()) if clustered.any() else np.nan,
        "clustered_fraction": float(clustered.mean()),
        "chance": float(pd.Series(true).value_counts(normalize=True).iloc[0]),
        "random_clustered_fraction": None,
        "per_class": pd.DataFrame(rows, columns=["class", "support", "predicted", "precision", "recall"]),
        "confusion": confusion_matrix(true, p),
        "predicted": p,
        "unclustered": int(np.sum(p == UNCLUSTERED)),
    }
    if random_kernels is not None:
        out["random_clustered_fraction"] = float(classifier.predict(np.asarray(random_kernels), search=search)["clustered"].mean())
    return out


def confusion_matrix(true_classes, predicted) -> pd.DataFrame:
    """Counts of kernels by true merged class (rows) and predicted merged class (columns), both in
    display order; the columns include "other" and "unclustered" when they occur."""
    true = merge_classes(np.asarray(true_classes, dtype=str))
    pred = merge_classes(np.asarray(predicted, dtype=str))
    rows = [c for c in CLASS_ORDER if c in set(true)]
    cols = [c for c in CLASS_ORDER if c in set(true) | set(pred)]
    table = pd.crosstab(pd.Categorical(true, categories=rows), pd.Categorical(pred, categories=cols), dropna=False)
    table.index.name, table.columns.name = "true", "predicted"
    return table.astype(np.int64)


def recall_by_angle(true_classes, predicted, angles, bins=(0.0, 15.0, 30.0, 45.0)) -> pd.DataFrame:
    """Recall of each derivative class by the angle between its kernels' axes and the grid's
    (`groundtruth.angle_from_axes`), in the intervals [bins[i], bins[i+1]) (the last one closed):
    whether a method finds diagonal derivatives as well as the axis-aligned ones of the paper."""
    true = merge_classes(np.asarray(true_classes, dtype=str))
    pred = merge_classes(np.asarray(predicted, dtype=str))
    angles = np.asarray(angles, dtype=np.float64)
    rows = []
    for c in ("1st-derivative", "2nd-derivative"):
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = (true == c) & (angles >= lo) & ((angles < hi) | ((hi == bins[-1]) & (angles == hi)))
            n = int(sel.sum())
            rows.append({"class": c, "from_deg": float(lo), "to_deg": float(hi), "support": n,
                         "recall": float(np.mean(pred[sel] == c)) if n else np.nan})
    return pd.DataFrame(rows, columns=["class", "from_deg", "to_deg", "support", "recall"])


def compare(train, test, test_classes, random_kernels, n_clusters=KMEANS_SIZES, seed: int = 0,
            threshold: float | None = None, min_similarity: float = MIN_SIMILARITY, autoencoder_kwargs=None,
            n_codes: int = spectrum.CLASSIFY_CODES, progress: bool = False,
            fixed: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Autoencoder path vs k-means with each K in `n_clusters`, trained on `train`, scored on `test`.

    autoencoder_kwargs go to `autoencoder.train`; n_codes is the number of decoded codes.
    fixed: {name: classifier} already built (a reference autoencoder, say), scored alongside.
    Returns (summary: one row per method, per_class: one row per method and class, classifiers
    by method name, each with its confusion matrix in `info["confusion"]` and its prediction of
    every test kernel in `info["predicted"]`).
    """
    classifiers = {}
    clf, _ = autoencoder_path(train, seed=seed, threshold=threshold, min_similarity=min_similarity,
                              n_codes=n_codes, progress=progress, **(autoencoder_kwargs or {}))
    classifiers[AUTOENCODER] = clf
    for k in n_clusters:
        km = kmeans_baseline(train, int(k), seed=seed, threshold=threshold, min_similarity=min_similarity)
        classifiers[km.method] = km
    classifiers.update(fixed or {})
    summary, per_class = [], []
    for name, c in classifiers.items():
        ev = evaluate(c, test, test_classes, random_kernels)
        ev["method"] = name
        per_class.append(ev.pop("per_class").assign(method=name))
        c.info["confusion"], c.info["predicted"] = ev.pop("confusion"), ev.pop("predicted")
        ev["n_prototypes"] = len(c.prototypes)
        ev["labelled_prototypes"] = int(np.sum(c.merged != OTHER))
        summary.append(ev)
    cols = ["method", "n_prototypes", "labelled_prototypes", "n", "accuracy", "accuracy_clustered",
            "clustered_fraction", "random_clustered_fraction", "chance", "unclustered"]
    per = pd.concat(per_class, ignore_index=True)[["method", "class", "support", "predicted", "precision", "recall"]]
    return pd.DataFrame(summary)[cols], per, classifiers


def encoder_dissimilarity(ae: autoencoder.Autoencoder, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """(codes, 1 − cos between each kernel and the decoding of its own code): how well one number
    keeps a kernel's shape when the encoder, not a search over codes, picks the number."""
    codes = ae.encode_coords(prepared.coords)
    recon = to_hyperplane(ae.decode(codes).reshape(len(codes), -1))
    return codes, 1.0 - np.einsum("ij,ij->i", prepared.coords, recon)
