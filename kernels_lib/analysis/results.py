"""Classification of kernels, from an array or a whole kernel database, and its results file.

`classify_array` answers for one array of k×k kernels: 5×5 and 7×7 kernels through an
autoencoder's decoded codes (the reference autoencoders by default, `classify.autoencoder_classifier`)
under the paper's thresholds; 3×3 kernels through k-means on min-max encoded kernels
(Appendix N, `kmeans.kmeans_3x3`). `classify_kernels` does the same for every kernel of a
kernel table or database, model by model for k-means, and keeps each kernel's metadata: one row
per kernel with `RESULT_COLUMNS`, which notebooks 07–13 read back with `read_results`.

Undefined stays undefined: a degenerate kernel has no code and no dissimilarity (missing
values), and a k-means row has no "clustered" flag (k-means assigns every kernel; it reports
cluster shares, never a % clustered) — missing, not True.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..database import store
from ..method.classify import _with_missing, autoencoder_classifier
from ..database.cluster import dask_client, map_tasks, wants_cluster
from ..errors import AnalysisError, KernelsLibError
from ..fileio import atomic_write, remove_stale_temp_files
from ..method.kmeans import KMeansFit, kmeans_3x3, minmax_encode
from ..paths import REFERENCE_AUTOENCODERS
from ..vocab import AUTOENCODER, DEGENERATE, KMEANS, PAPER_THRESHOLDS, UNCLUSTERED, merge_classes

#: Columns of `classify_array`, in order. Their names and meaning are a stable interface.
ARRAY_COLUMNS = [
    "clustering",        # "autoencoder" (5×5, 7×7) or "kmeans" (3×3)
    "prototype",         # index of the winning decoded code / k-means cluster; -1 if degenerate
    "code",              # the winning code in [0, 1] (autoencoder rows); missing for k-means and degenerate rows
    "dissimilarity",     # 1 − cos to the winning prototype, in [0, 2]; missing for k-means and degenerate rows
    "threshold",         # the threshold the row was classified with; missing for k-means rows
    "label",             # fine label of the prototype's interval/cluster; "unclustered" / "degenerate"
    "merged",            # merged class (kernels_lib.vocab.merge_class)
    "clustered",         # dissimilarity < threshold; missing for k-means rows (k-means has no threshold)
    "degenerate",        # no direction: excluded from the clustering
]
#: Kernel metadata kept in a database's classification.
META_COLUMNS = ["model", "weights_tag", "source", "layer", "module", "layer_order", "depth", "channel", "kh", "kw"]
#: Columns of a classification result (`classify_kernels`), in order.
RESULT_COLUMNS = META_COLUMNS + ARRAY_COLUMNS + ["total_activation", "norm"]


def _missing(n: int) -> pd.arrays.FloatingArray:
    return _with_missing(np.zeros(n), True)


def kmeans_rows(fit: KMeansFit) -> pd.DataFrame:
    """A `kmeans.kmeans_3x3` fit in the `ARRAY_COLUMNS` layout: the cluster id as prototype, the
    cluster's name as label; code, dissimilarity, threshold and clustered are undefined."""
    n = len(fit.cluster)
    return pd.DataFrame({
        "clustering": KMEANS, "prototype": fit.cluster, "code": _missing(n), "dissimilarity": _missing(n),
        "threshold": _missing(n), "label": fit.label, "merged": merge_classes(fit.label),
        "clustered": pd.array([pd.NA] * n, dtype="boolean"), "degenerate": fit.degenerate,
    })


def _too_few_for_kmeans(kernels: np.ndarray) -> pd.DataFrame:
    """Rows of a model with fewer usable 3×3 kernels than clusters: no cluster, said as "unclustered"."""
    n = len(kernels)
    degenerate = minmax_encode(kernels)[1]
    label = np.where(degenerate, DEGENERATE, UNCLUSTERED).astype(str)
    return pd.DataFrame({
        "clustering": KMEANS, "prototype": np.full(n, -1, dtype=np.int64), "code": _missing(n),
        "dissimilarity": _missing(n), "threshold": _missing(n), "label": label, "merged": label,
        "clustered": pd.array([pd.NA] * n, dtype="boolean"), "degenerate": degenerate,
    })


def classify_array(kernels, autoencoder=None, threshold: float | None = None, kmeans_clusters: int = 10,
                   seed: int = 0, search: str = "fast", progress: bool = False) -> pd.DataFrame:
    """One row per kernel of a NumPy array [N, k, k], with `ARRAY_COLUMNS`.

    5×5 and 7×7: nearest decoded code of `autoencoder` (a directory or loaded `Autoencoder`;
    default the reference autoencoder of the size, `paths.REFERENCE_AUTOENCODERS`) under
    `threshold` (default the paper's). 3×3: k-means with `kmeans_clusters` classes (seeded) on
    min-max encoded kernels. Other sizes need an `autoencoder` of that size and a `threshold`.
    """
    arr = np.asarray(kernels)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise AnalysisError(f"expected square kernels [N, k, k], got shape {arr.shape}")
    k = arr.shape[1]
    if k == 3 and autoencoder is None:
        if (~minmax_encode(arr)[1]).sum() < kmeans_clusters:
            return _too_few_for_kmeans(arr)
        return kmeans_rows(kmeans_3x3(arr, n_classes=kmeans_clusters, seed=seed))
    if autoencoder is None:
        if k not in REFERENCE_AUTOENCODERS:
            raise AnalysisError(f"no reference autoencoder for {k}×{k} kernels (there are "
                                f"{', '.join(f'{s}×{s}' for s in REFERENCE_AUTOENCODERS)}); pass autoencoder=")
        autoencoder = REFERENCE_AUTOENCODERS[k]
    rows = autoencoder_classifier(autoencoder, threshold).predict(arr, search=search, progress=progress)
    rows.insert(0, "clustering", AUTOENCODER)
    return rows[ARRAY_COLUMNS]


def kernels_of_size(db, k: int, models=None, weights_tags=None) -> tuple[pd.DataFrame, np.ndarray]:
    """(metadata rows, kernels [N, k, k]) of the k×k kernels of a kernel table or database path."""
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


@dataclass(frozen=True)
class ModelKMeans:
    """Appendix N's k-means of one model's 3×3 kernels: its kernel metadata, kernels and fit."""

    model: str
    weights_tag: str
    meta: pd.DataFrame
    kernels: np.ndarray
    fit: KMeansFit | None      # None: fewer usable kernels than clusters


def kmeans_by_model(db, n_classes: int = 10, seed: int = 0, name_min_cosine: float = 0.9,
                    models=None, weights_tags=None) -> dict[tuple[str, str], ModelKMeans]:
    """{(model, weights tag): its k-means} of the 3×3 kernels of a table or database: one k-means per
    model, as the paper clusters one model at a time (cluster ids are not comparable across models)."""
    meta, kernels = kernels_of_size(db, 3, models, weights_tags)
    out = {}
    for (model, tag), rows in meta.groupby(["model", "weights_tag"], sort=True):
        idx = rows.index.to_numpy()
        usable = (~minmax_encode(kernels[idx])[1]).sum()
        fit = kmeans_3x3(kernels[idx], n_classes=n_classes, seed=seed, name_min_cosine=name_min_cosine) \
            if usable >= n_classes else None
        out[model, tag] = ModelKMeans(model, tag, rows.reset_index(drop=True), kernels[idx], fit)
    return out


def kmeans_table(per_model: dict) -> pd.DataFrame:
    """The classification rows (`RESULT_COLUMNS`) of `kmeans_by_model`'s fits."""
    parts = [pd.concat([one.meta[META_COLUMNS], kmeans_rows(one.fit) if one.fit is not None
                        else _too_few_for_kmeans(one.kernels), one.meta[["total_activation", "norm"]]], axis=1)
             for one in per_model.values()]
    return pd.concat(parts, ignore_index=True)[RESULT_COLUMNS] if parts else pd.DataFrame(columns=RESULT_COLUMNS)


def classify_kernels(db, autoencoder_dirs: dict | None = None, thresholds: dict | None = None,
                     method: str = "fast", kmeans_clusters: int | None = 10, seed: int = 0,
                     models=None, weights_tags=None, progress: bool = True,
                     workers: int | None = None, scheduler=None) -> pd.DataFrame:
    """Classify every kernel of a kernel table, Parquet file or database directory.

    autoencoder_dirs: {kernel size: autoencoder directory} (default: the reference ones);
    thresholds: {kernel size: dissimilarity} (default the paper's, 0.2 for 5×5 and 0.3 for 7×7).
    method: "fast" (exact, pruned search) or "reference" (brute force). kmeans_clusters: classes
    of the 3×3 k-means, run per model and weights (None leaves 3×3 kernels out). Kernels of
    other sizes are left out. Returns one row per kernel with `RESULT_COLUMNS`, sorted by model,
    weights tag, layer and channel.

    workers=N (a local Dask cluster of N processes) or scheduler (an address or a
    `distributed.Client`, see `kernels_lib.database.cluster`) classify a database path one kernel file
    per task: the same rows as in this process, since every kernel is classified on its own
    and the k-means runs per model, and a model never spans two files.
    """
    autoencoder_dirs = dict(REFERENCE_AUTOENCODERS if autoencoder_dirs is None else autoencoder_dirs)
    thresholds = {**PAPER_THRESHOLDS, **(thresholds or {})}
    if method not in ("fast", "reference"):
        raise AnalysisError(f"method must be 'fast' or 'reference', got {method!r}")
    sizes = _kernel_sizes(autoencoder_dirs, kmeans_clusters)
    options = (autoencoder_dirs, thresholds, method, kmeans_clusters, seed, models, weights_tags)
    if not wants_cluster(workers, scheduler):
        parts = _classify_parts(db, *options, progress=progress)
    elif isinstance(db, pd.DataFrame):
        raise AnalysisError("a Dask cluster classifies a kernel database one file per task: give the path of "
                            "the database (store.write_kernels writes a table), or leave workers/scheduler out")
    else:
        files = store.kernel_files(db)
        parts = [None] * len(files)
        with dask_client(workers, scheduler) as client:
            for index, part in tqdm(map_tasks(client, _classify_file, files, options), total=len(files),
                                    desc="classify files", unit="file", disable=not progress):
                if isinstance(part, KernelsLibError):
                    raise part
                parts[index] = part
        parts = [part for part in parts if part is not None]
    if not parts:
        raise AnalysisError(f"no {', '.join(f'{k}×{k}' for k in sizes)} kernels in the database "
                            f"(models={models}, weights_tags={weights_tags})")
    out = pd.concat(parts, ignore_index=True)[RESULT_COLUMNS]
    out = out.sort_values(["model", "weights_tag", "layer", "channel"], kind="stable").reset_index(drop=True)
    return out.astype({"layer": "int32", "channel": "int32", "kh": "int16", "kw": "int16", "prototype": "int64",
                       "clustered": "boolean"})


def _kernel_sizes(autoencoder_dirs, kmeans_clusters) -> list[int]:
    return sorted(int(k) for k in autoencoder_dirs) + ([3] if kmeans_clusters else [])


def _classify_parts(db, autoencoder_dirs, thresholds, method, kmeans_clusters, seed, models, weights_tags,
                    progress: bool = False) -> list[pd.DataFrame]:
    """The result rows of each kernel size of `db` (none if it holds no kernel of the sizes asked)."""
    sizes = _kernel_sizes(autoencoder_dirs, kmeans_clusters)
    parts = []
    for k in tqdm(sizes, desc="classify sizes", disable=not progress):
        if k == 3:
            per_model = kmeans_by_model(db, int(kmeans_clusters), seed, models=models, weights_tags=weights_tags)
            if per_model:
                parts.append(kmeans_table(per_model))
            continue
        meta, kernels = kernels_of_size(db, k, models, weights_tags)
        if not len(meta):
            continue
        rows = classify_array(kernels, autoencoder_dirs[k], thresholds.get(k), search=method, progress=progress)
        parts.append(pd.concat([meta[META_COLUMNS], rows, meta[["total_activation", "norm"]]], axis=1))
    return parts


def _classify_file(file, options) -> pd.DataFrame | None | KernelsLibError:
    """One Dask task: the result rows of one kernel file (None if it holds none), or the error that stopped it."""
    try:
        parts = _classify_parts(file, *options)
    except KernelsLibError as err:
        return err
    return pd.concat(parts, ignore_index=True) if parts else None


#: Key of the JSON provenance (which autoencoder classified each size, …) in a results file's metadata.
METADATA_KEY = b"kernels_lib"


def write_results(results: pd.DataFrame, path, provenance: dict | None = None) -> Path:
    """Write a classification atomically (`kernels_lib.fileio`), with `provenance` (e.g. which
    autoencoder classified each kernel size, `method.Choice.record`) in the file's metadata; stale
    temporaries of killed writers go first."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise AnalysisError(f"results lack columns {missing}; build them with classify_kernels")
    path = Path(path)
    remove_stale_temp_files(path.parent)
    table = pa.Table.from_pandas(results, preserve_index=False)
    meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(provenance or {}, sort_keys=True).encode()}
    table = table.replace_schema_metadata(meta)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_provenance(path) -> dict:
    """The provenance a classification was written with (`write_results`); {} when none was recorded."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"no classification at {path}; run notebook 07")
    return json.loads((pq.read_schema(path).metadata or {}).get(METADATA_KEY, b"{}"))


def read_results(path) -> pd.DataFrame:
    """Read a classification written by `write_results`."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"no classification at {path}; run notebook 07 or "
                            "results.write_results(results.classify_kernels(db), path)")
    return pd.read_parquet(path)
