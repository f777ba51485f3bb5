"""From a kernel database to the paper's numbers: per-kernel classes, % clustered, proportions.

`classify_database` runs every kernel of a database through the paper's method (§4.2): a kernel
x (centred, unit length, hyperplane coordinates) is compared with M prototypes p_j — the decoded
kernels of 10,000 equally spaced codes of the autoencoder of its size — by the cosine
dissimilarity

    δ(x) = min_j (1 − cos(x, p_j)),

and with δ(x) below the threshold (0.2 for 5×5, 0.3 for 7×7) it takes the label of the winning
code's interval in the spectrum's label file; otherwise it is *unclustered*. 3×3 kernels go
through k-means (Appendix N) instead: their rows say ``clustering == "kmeans"`` so no table
mixes the two methods by accident. Degenerate kernels (constant after centring, NaN/inf) have
no direction: they keep a row with ``degenerate`` True, label "degenerate", no code, and are
counted, never turned into NaN.

The summaries reproduce Tables 1/3/4 (`clustered_fraction`, with the paper's reported % joined
from data/models/paper.yaml), Figures 7/8 (`layer_proportions`), 11/28 (`model_proportions`)
and 10 (`activation_by_class`).
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import classify, dog, spectrum
from .errors import KernelsLibError
from .preprocess import prepare, to_hyperplane

#: Reference autoencoders shipped with the repository, by kernel size.
REFERENCE_AUTOENCODERS = {k: Path(__file__).resolve().parents[1] / "data" / "autoencoders" / f"{k}x{k}" for k in (5, 7)}
#: Default place of a model set's classification (notebook 07 writes it, notebooks 09–13 read it).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "data" / "results"
RESULTS_FILE = "classification.parquet"
UNCLUSTERED = classify.UNCLUSTERED
DEGENERATE = classify.DEGENERATE
AUTOENCODER = "autoencoder"
KMEANS = "kmeans"
#: Weights tags of random-init twins start with this (see kernels_lib.zoo).
RANDOM_INIT_PREFIX = "random-init"

#: Columns of a classification result, in order.
RESULT_COLUMNS = [
    "model", "weights_tag", "source", "layer", "module", "depth", "channel", "kh", "kw",
    "clustering",        # "autoencoder" (5×5, 7×7) or "kmeans" (3×3)
    "prototype",         # index of the winning decoded code / k-means centroid; -1 if degenerate
    "code",              # the winning code in [0, 1] (autoencoder rows); missing for k-means and degenerate rows
    "dissimilarity",     # 1 − cos to the winning prototype, in [0, 2]; missing for degenerate rows
    "threshold",         # the threshold the row was classified with
    "label",             # fine label of the prototype's interval/cluster; "unclustered" / "degenerate"
    "merged",            # merged class (kernels_lib.dog.merge_class); "unclustered" / "degenerate"
    "clustered",         # dissimilarity < threshold
    "degenerate",        # no direction: excluded from the clustering
    "total_activation",  # sum of the raw weights (Figure 10)
    "norm",              # L2 norm of the raw weights
]


class AnalysisError(KernelsLibError, ValueError):
    """Inputs that cannot be analysed as asked; the message says what to change."""


def merged_label(label: str) -> str:
    """Merged class of a label; a name the DoG family does not know (a human's own) stays as it is."""
    try:
        return dog.merge_class(label)
    except ValueError:
        return label


# ---------------------------------------------------------------------------------------------
# Prototype classifiers: the autoencoder's decoded codes or k-means centroids
# ---------------------------------------------------------------------------------------------

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

    @property
    def merged(self) -> np.ndarray:
        return np.array([merged_label(v) for v in self.labels], dtype=str)

    def classify(self, kernels: np.ndarray, search: str = "fast", progress: bool = False) -> pd.DataFrame:
        """One row per kernel [N, kh, kw]: prototype, code, dissimilarity, label, merged, clustered, degenerate.

        The search is `kernels_lib.classify.classify` ("fast": exact pruned search along the
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
        coords[prep.index] = prep.coords        # degenerate rows stay zero: classify flags them
        if self.codes is None:
            search, decoded = "reference", self.prototypes
        else:
            if self._index is None:
                self._index = classify.CurveIndex.build(self.prototypes)
            decoded = self._index
        result = classify.classify(coords, decoded, self.labels, self.threshold, method=search,
                                   codes=self.codes, progress=progress)
        degenerate = result.degenerate
        label = result.label.astype(str)
        return pd.DataFrame({
            "prototype": result.code_index,
            "code": _with_missing(result.code, degenerate | (self.codes is None)),
            "dissimilarity": _with_missing(result.dissimilarity, degenerate),
            "threshold": _with_missing(np.full(len(arr), float(self.threshold)), False),
            "label": label,
            "merged": np.array([merged_label(v) for v in label], dtype=str),
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
                    f"(kernels_lib.spectrum.label_spectrum({str(directory)!r}), then review the file)")
        source = str(directory)
    else:
        ae = autoencoder
        if labels is None:
            raise AnalysisError("pass labels= (a label file or intervals) with an in-memory autoencoder")
        source = "in-memory"
    k = ae.kernel_shape[0]
    if threshold is None:
        if k not in classify.PAPER_THRESHOLDS:
            raise AnalysisError(f"the paper gives no threshold for {k}×{k} kernels; pass threshold=")
        threshold = classify.PAPER_THRESHOLDS[k]
    codes = spectrum.code_grid(n_codes)
    decoded = ae.decode(codes)
    coords = to_hyperplane(decoded.reshape(len(codes), -1))
    return PrototypeClassifier(
        method=AUTOENCODER, kernel_shape=tuple(ae.kernel_shape), prototypes=coords,
        labels=spectrum.code_labels(labels, codes), threshold=float(threshold), codes=codes,
        info={"autoencoder": source, "labels": labels if isinstance(labels, (str, os.PathLike)) else "given",
              "n_codes": int(n_codes)},
    )


# ---------------------------------------------------------------------------------------------
# A whole database
# ---------------------------------------------------------------------------------------------

def _kmeans_rows(kernels: np.ndarray, n_clusters: int, seed: int) -> pd.DataFrame:
    """3×3 kernels of one model through `classify.kmeans_3x3` (Appendix N), in the result row layout.

    Every non-degenerate kernel is clustered (k-means has no threshold); `prototype` is the
    cluster id (by decreasing size) and `label` the cluster's name. k-means measures Euclidean
    distance in min-max space, not 1 − cos, so `code`, `dissimilarity` and `threshold` stay
    missing. A model with fewer usable kernels than clusters cannot be clustered: its kernels
    are "unclustered".
    """
    n = len(kernels)
    missing = np.ones(n, dtype=bool)
    degenerate = classify.minmax_encode(kernels)[1]
    if (~degenerate).sum() < n_clusters:
        label = np.where(degenerate, DEGENERATE, UNCLUSTERED).astype(str)
        prototype, clustered = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    else:
        fit = classify.kmeans_3x3(kernels, n_classes=n_clusters, seed=seed)
        label, prototype, clustered, degenerate = fit.label.astype(str), fit.code_index, fit.clustered, fit.degenerate
    return pd.DataFrame({
        "prototype": prototype, "code": _with_missing(np.zeros(n), missing),
        "dissimilarity": _with_missing(np.zeros(n), missing), "threshold": _with_missing(np.zeros(n), missing),
        "label": label, "merged": np.array([merged_label(v) for v in label], dtype=str),
        "clustered": clustered, "degenerate": degenerate,
    })


def _kernels_of_size(db, k: int, models=None, weights_tags=None) -> tuple[pd.DataFrame, np.ndarray]:
    """(metadata rows, kernels [N, k, k]) of the k×k kernels of a kernel table or database path."""
    from . import store

    if not isinstance(db, pd.DataFrame):
        return store.read_kernel_array(db, k, models=models, weights_tags=weights_tags)
    table = db
    for col, values in (("model", models), ("weights_tag", weights_tags)):
        if values is not None:
            table = table[table[col].isin([values] if isinstance(values, str) else list(values))]
    table = table[(table.kh == k) & (table.kw == k)].reset_index(drop=True)
    if not len(table):
        return table, np.zeros((0, k, k), np.float32)
    return table, np.stack(table["kernel"].to_numpy()).astype(np.float32).reshape(len(table), k, k)


def training_config(directory) -> dict:
    """The hyper-parameters an autoencoder directory was trained with (its config and provenance), as
    keyword arguments of `autoencoder.train`, to train another one the same way.

    Only the optimisation settings are taken (hidden widths, slope, learning rate and its drops,
    batch size, epochs, plateau rule); data, seed, device and threads are the caller's choice.
    """
    import inspect
    import json

    from .autoencoder import train

    root = Path(directory)
    try:
        config = json.loads((root / "config.json").read_text())
        prov = json.loads((root / "provenance.json").read_text())
    except (OSError, ValueError) as err:
        raise AnalysisError(f"{root} is not a readable autoencoder directory ({err})") from err
    wanted = set(inspect.signature(train).parameters) - {"kernels", "seed", "device", "num_threads", "progress", "corpus"}
    out = {"hidden": list(config["hidden"]), "negative_slope": config["negative_slope"]}
    out.update({k: prov[k] for k in sorted(wanted & set(prov))})
    return out


def classify_database(db, autoencoder_dirs: dict | None = None, thresholds: dict | None = None,
                      method: str = "fast", kmeans_clusters: int | None = 10, seed: int = 0,
                      models=None, weights_tags=None, progress: bool = True) -> pd.DataFrame:
    """Classify every kernel of a database (a kernel table, a Parquet file or a directory).

    autoencoder_dirs: {kernel size: autoencoder directory} (default: the reference ones in
    data/autoencoders); thresholds: {kernel size: dissimilarity} (default the paper's, 0.2 for
    5×5 and 0.3 for 7×7). method: "fast" (exact, pruned search) or "reference" (brute force).
    kmeans_clusters: classes of the 3×3 k-means, run per model and weights (None leaves 3×3
    kernels out; cluster ids are not comparable across models). Kernels of other
    sizes are left out. Returns one row per kernel with `RESULT_COLUMNS`, sorted by model, weights
    tag, layer and channel.
    """
    from tqdm.auto import tqdm

    autoencoder_dirs = dict(REFERENCE_AUTOENCODERS if autoencoder_dirs is None else autoencoder_dirs)
    thresholds = {**classify.PAPER_THRESHOLDS, **(thresholds or {})}
    if method not in ("fast", "reference"):
        raise AnalysisError(f"method must be 'fast' or 'reference', got {method!r}")
    sizes = sorted(int(k) for k in autoencoder_dirs) + ([3] if kmeans_clusters else [])
    meta_cols = ["model", "weights_tag", "source", "layer", "module", "depth", "channel", "kh", "kw"]
    parts = []
    for k in tqdm(sizes, desc="classify sizes", disable=not progress):
        meta, kernels = _kernels_of_size(db, k, models, weights_tags)
        if not len(meta):
            continue
        if k == 3:   # one k-means per model and weights, as the paper clusters one model (Appendix N)
            ident = (meta["model"] + "\0" + meta["weights_tag"]).to_numpy()
            rows = pd.concat([_kmeans_rows(kernels[ident == i], int(kmeans_clusters), seed).set_index(
                np.flatnonzero(ident == i)) for i in pd.unique(ident)]).sort_index()
            rows.insert(0, "clustering", KMEANS)
        else:
            clf = autoencoder_classifier(autoencoder_dirs[k], thresholds.get(k))
            rows = clf.classify(kernels, search=method, progress=progress)
            rows.insert(0, "clustering", AUTOENCODER)
        parts.append(pd.concat([meta[meta_cols], rows, meta[["total_activation", "norm"]]], axis=1))
    if not parts:
        raise AnalysisError(f"no {', '.join(f'{k}×{k}' for k in sizes)} kernels in the database "
                            f"(models={models}, weights_tags={weights_tags})")
    out = pd.concat(parts, ignore_index=True)[RESULT_COLUMNS]
    out = out.sort_values(["model", "weights_tag", "layer", "channel"], kind="stable").reset_index(drop=True)
    return out.astype({"layer": "int32", "channel": "int32", "kh": "int16", "kw": "int16", "prototype": "int64"})


def default_results_path(model_set: str) -> Path:
    """data/results/<model set>/classification.parquet of this checkout."""
    return RESULTS_DIR / model_set / RESULTS_FILE


def write_results(results: pd.DataFrame, path) -> Path:
    """Write a classification atomically (temporary file in the same folder, then rename).

    Temporary files are named as the kernel database's, so `store.remove_stale_temp_files`
    clears those a killed writer left behind (it runs here first).
    """
    from . import store

    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise AnalysisError(f"results lack columns {missing}; build them with classify_database")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.remove_stale_temp_files(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        results.to_parquet(tmp, index=False, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_results(path) -> pd.DataFrame:
    """Read a classification written by `write_results`."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"no classification at {path}; run notebook 07 or "
                            "analysis.write_results(analysis.classify_database(db), path)")
    return pd.read_parquet(path)


# ---------------------------------------------------------------------------------------------
# Tables and proportions
# ---------------------------------------------------------------------------------------------

def paper_numbers(model_set: str = "paper") -> pd.DataFrame:
    """The % clustered the paper reports (Tables 1/3/4), from the model set's `paper:` fields.

    One row per paper row: model, weights_tag, table, row, clustered_pct.
    """
    from . import zoo

    rows = [{"model": e.model, "weights_tag": e.weights_tag, "table": r["table"], "row": r["row"],
             "clustered_pct": float(r["clustered_pct"])}
            for e in zoo.load_model_set(model_set).entries for r in e.paper]
    return pd.DataFrame(rows, columns=["model", "weights_tag", "table", "row", "clustered_pct"])


def _arch(model: str) -> str:
    """timm's "tf_" prefix marks TensorFlow-ported weights of the same architecture."""
    return model[3:] if model.startswith("tf_") else model


def _paper_columns(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Add paper_pct/paper_row (same weights) and paper_related (same architecture, other weights)."""
    pct, row, related = [], [], []
    for model, tag, k in zip(frame["model"], frame["weights_tag"], frame["kh"]):
        table_no = {5: 3, 7: 4}.get(int(k))
        cand = paper[paper["table"] == table_no] if table_no else paper.iloc[:0]
        exact = cand[(cand["model"] == model) & (cand["weights_tag"] == tag)]
        pct.append(float(exact["clustered_pct"].iloc[0]) if len(exact) else np.nan)
        row.append("; ".join(exact["row"]) if len(exact) else "")
        if tag.startswith(RANDOM_INIT_PREFIX) or len(exact):
            related.append("")
            continue
        same_arch = cand[cand["model"].map(_arch) == _arch(model)].drop_duplicates(["model", "weights_tag"])
        related.append("; ".join(f"{m}.{t}: {p:.2f}" for m, t, p in
                                 zip(same_arch["model"], same_arch["weights_tag"], same_arch["clustered_pct"])))
    return frame.assign(paper_pct=pct, paper_row=row, paper_related=related)


def clustered_fraction(results: pd.DataFrame, paper: pd.DataFrame | None = None,
                       clustering: str = AUTOENCODER) -> pd.DataFrame:
    """Tables 1/3/4: per model, weights and kernel size, the % of kernels clustered.

    clustered_pct = clustered / (kernels − degenerate) · 100; degenerate kernels are counted in
    their own column. `paper` (default: `paper_numbers()`) adds the paper's % where the same
    weights are in the paper (paper_pct, paper_row) and, for other weights of the same
    architecture, the paper's rows as text (paper_related). Only rows of one clustering method
    are summarised (default the autoencoder's), so k-means never mixes in silently.
    """
    sub = results[results["clustering"] == clustering]
    if sub.empty:
        raise AnalysisError(f"no {clustering!r} rows in the results (methods present: "
                            f"{sorted(results['clustering'].unique())})")
    g = sub.groupby(["model", "weights_tag", "kh", "kw"], sort=True)
    table = pd.DataFrame({
        "n_kernels": g.size(),
        "n_degenerate": g["degenerate"].sum(),
        "n_clustered": g["clustered"].sum(),
    }).reset_index()
    usable = table["n_kernels"] - table["n_degenerate"]
    table["clustered_pct"] = np.where(usable > 0, 100.0 * table["n_clustered"] / usable.clip(lower=1), 0.0)
    table["random_init"] = table["weights_tag"].str.startswith(RANDOM_INIT_PREFIX)
    table["threshold"] = g["threshold"].first().to_numpy()
    table = _paper_columns(table, paper_numbers() if paper is None else paper)
    return table.astype({"n_kernels": "int64", "n_degenerate": "int64", "n_clustered": "int64"})


def _ordered(columns) -> list[str]:
    rank = {c: i for i, c in enumerate(dog.MERGED_CLASSES + (UNCLUSTERED, DEGENERATE))}
    return sorted(columns, key=lambda c: (rank.get(c, len(rank) - 2), c))


def _select(results, clustering, kernel_size):
    sub = results[results["clustering"] == clustering]
    if kernel_size is not None:
        sub = sub[sub["kh"] == int(kernel_size)]
    return sub


def layer_proportions(results: pd.DataFrame, model: str, weights_tag: str | None = None,
                      kernel_size: int | None = None, class_col: str = "merged",
                      clustering: str = AUTOENCODER) -> pd.DataFrame:
    """Figures 7/8: per depthwise layer (rows), the share of each class among *all* its kernels.

    Columns are the classes in display order, then "unclustered" and "degenerate" where present,
    so each row sums to 1; drop those two columns for the paper's bars (which do not reach 1).
    """
    sub = _select(results[results["model"] == model], clustering, kernel_size)
    tags = sorted(sub["weights_tag"].unique())
    if weights_tag is None:
        if len(tags) > 1:
            raise AnalysisError(f"model {model!r} has several weights in the results ({tags}); pass weights_tag=")
    else:
        sub = sub[sub["weights_tag"] == weights_tag]
    if sub.empty:
        raise AnalysisError(f"no {clustering} rows for model {model!r} (weights {weights_tag}, size {kernel_size}); "
                            f"models present: {sorted(results['model'].unique())}")
    counts = pd.crosstab(sub["layer"], sub[class_col])
    props = counts.div(counts.sum(axis=1), axis=0)
    return props[_ordered(props.columns)].rename_axis(columns=None)


def model_proportions(results: pd.DataFrame, kernel_size: int | None = None, class_col: str = "merged",
                      clustering: str = AUTOENCODER) -> pd.DataFrame:
    """Figures 11/28: per model ("model.weights_tag" rows), the share of each class among all its kernels."""
    sub = _select(results, clustering, kernel_size)
    if sub.empty:
        raise AnalysisError(f"no {clustering} rows of size {kernel_size} in the results")
    ident = (sub["model"] + "." + sub["weights_tag"]).rename("model")
    counts = pd.crosstab(ident, sub[class_col])
    props = counts.div(counts.sum(axis=1), axis=0)
    return props[_ordered(props.columns)].rename_axis(columns=None)


def activation_by_class(results: pd.DataFrame, class_col: str = "merged", clustering: str = AUTOENCODER,
                        include_unclustered: bool = False) -> pd.DataFrame:
    """Figure 10: total activation (sum of weights) per class: count, mean, std and quartiles.

    Degenerate kernels are left out (a NaN kernel has no sum to show); unclustered ones too
    unless asked.
    """
    sub = results[(results["clustering"] == clustering) & ~results["degenerate"]]
    if not include_unclustered:
        sub = sub[sub["clustered"]]
    if sub.empty:
        raise AnalysisError("no clustered kernels to summarise")
    g = sub.groupby(class_col)["total_activation"]
    stats = pd.DataFrame({
        "n": g.size(), "mean": g.mean(), "std": g.std(ddof=0),
        "q25": g.quantile(0.25), "median": g.median(), "q75": g.quantile(0.75),
    })
    return stats.loc[_ordered(stats.index)].rename_axis("class").reset_index()
