"""Three answers to "which class is this kernel?", side by side, and what the direct fit says about
scale and orientation.

The answers: the paper's method (nearest decoded code of the reference autoencoders, under the
paper's threshold; `results.classify_kernels`), the direct fit to the DoG family under the same
threshold (`fit.fit_labels`) and k-means with 64 clusters whose centroids are named by their
nearest template (`kmeans.kmeans_baseline`, fitted on the kernels it labels). All three speak the
merged classes of `kernels_lib.vocab` plus "unclustered" (and the autoencoder's "other").

`agreement_matrix` counts how two answers pair up; `cohen_kappa` is the chance-corrected
agreement κ = (p_o − p_e) / (1 − p_e); `agreement_summary` gives, per pair, κ over all labels,
κ of the clustered/unclustered decision alone and κ of the class among kernels both answers
cluster. κ is undefined (NaN) when chance agreement is already 1 (both answers constant).

`axis_preference` and `scale_depth` summarise the fit's θ of first derivatives and σ of the
DoG-family kernels per model, for trained kernels and their random-init twins alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import fit as fitting
from ..method import per_set
from ..errors import AnalysisError
from ..method.kmeans import kmeans_baseline
from ..paths import CLASSIFICATION_DIR, REFERENCE_AUTOENCODERS
from ..preprocess import degenerate_mask
from .results import classify_kernels, kernels_of_size
from .selection import kernels_of as selection_kernels
from ..vocab import DEGENERATE, UNCLUSTERED, order_classes, paper_threshold, random_init_mask

#: The three answers, as columns of `label_table`.
METHODS = ("autoencoder", "fit", "kmeans")
#: Kernel identity shared by the kernel database, a classification and a fit.
KEYS = ["model", "weights_tag", "layer", "channel", "kh", "kw"]
TRAINED, RANDOM_INIT = "trained", "random init"
#: Distance (degrees) to the nearest axis within which a first derivative counts as axis-aligned:
#: a quarter of the 0–45° range, so uniform orientations put 25 % there.
AXIS_TOLERANCE = 11.25


def cohen_kappa(a, b) -> float:
    """Cohen's κ of two label sequences of equal length; NaN when undefined (no items, or chance
    agreement 1: both sequences hold one and the same label)."""
    a, b = np.asarray(a, dtype=str), np.asarray(b, dtype=str)
    if a.shape != b.shape or a.ndim != 1:
        raise AnalysisError(f"κ needs two label sequences of equal length, got shapes {a.shape} and {b.shape}")
    if not len(a):
        return float("nan")
    cats, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[:len(a)], inv[len(a):]
    observed = float(np.mean(ia == ib))
    expected = float(np.bincount(ia, minlength=len(cats)) @ np.bincount(ib, minlength=len(cats))) / len(a) ** 2
    if expected >= 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)


def agreement_matrix(a, b, name_a: str = "a", name_b: str = "b") -> pd.DataFrame:
    """Counts of each (label of a, label of b) pair: rows a, columns b, classes in display order."""
    a, b = pd.Series(np.asarray(a, dtype=str), name=name_a), pd.Series(np.asarray(b, dtype=str), name=name_b)
    table = pd.crosstab(a, b)
    return table.reindex(index=order_classes(table.index), columns=order_classes(table.columns), fill_value=0)


def _clustered(labels: np.ndarray) -> np.ndarray:
    return ~np.isin(labels, [UNCLUSTERED, DEGENERATE])


def agreement_summary(labels: pd.DataFrame, methods=METHODS, by=("kernel_size", "group")) -> pd.DataFrame:
    """Per group and pair of methods: n, observed agreement, κ over all labels, κ of the
    clustered/unclustered decision, and the class κ among the kernels both methods cluster.
    Degenerate kernels (no direction) are left out: every method flags them alike."""
    rows = []
    for key, part in labels.groupby(list(by), sort=True):
        part = part[~part["degenerate"].to_numpy(dtype=bool)]
        for i, first in enumerate(methods):
            for second in methods[i + 1:]:
                a, b = part[first].to_numpy(dtype=str), part[second].to_numpy(dtype=str)
                both = _clustered(a) & _clustered(b)
                rows.append({
                    **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                    "pair": f"{first} vs {second}", "n": len(a),
                    "agreement": float(np.mean(a == b)) if len(a) else float("nan"),
                    "kappa": cohen_kappa(a, b),
                    "kappa_clustered": cohen_kappa(_clustered(a).astype(str), _clustered(b).astype(str)),
                    "n_both_clustered": int(both.sum()),
                    "kappa_class_both_clustered": cohen_kappa(a[both], b[both]),
                    f"clustered_{first}": float(np.mean(_clustered(a))) if len(a) else float("nan"),
                    f"clustered_{second}": float(np.mean(_clustered(b))) if len(b) else float("nan"),
                })
    return pd.DataFrame(rows)


def group_of(weights_tags) -> np.ndarray:
    """"trained" or "random init" of each weights tag."""
    return np.where(random_init_mask(weights_tags), RANDOM_INIT, TRAINED)


#: Which autoencoders label the kernels: the shipped reference ones, or those notebook 07 classifies with
#: (the set's own where notebook 05 trained one, `kernels_lib.method.per_set`).
AUTOENCODER_CHOICES = ("reference", "pipeline")


def autoencoder_choices(which: str, model_set: str, kernel_sizes=(5, 7), reference_dir=None,
                        classification_dir=CLASSIFICATION_DIR) -> dict:
    """{k: `per_set.Choice`} of the autoencoders whose labels are compared: `which` is "reference" (the
    reference autoencoders in `reference_dir`, default data/autoencoders) or "pipeline" (the set's
    own autoencoder of a size where notebook 05 trained one, else the reference, as notebook 07)."""
    if which not in AUTOENCODER_CHOICES:
        raise AnalysisError(f"autoencoders must be one of {AUTOENCODER_CHOICES}, got {which!r}")
    references = REFERENCE_AUTOENCODERS if reference_dir is None else \
        {int(k): Path(reference_dir) / f"{k}x{k}" for k in kernel_sizes}
    own = per_set.autoencoders_dir(model_set, classification_dir) if which == "pipeline" else None
    return per_set.choose(own, kernel_sizes, references)


def label_table(db, fit_table: pd.DataFrame, kernel_sizes=(5, 7), autoencoder_dirs: dict | None = None,
                thresholds: dict | None = None, kmeans_clusters: int = 64, seed: int = 0) -> pd.DataFrame:
    """One row per k×k kernel of a database: its identity, group (trained / random init), the fit's
    parameters and the merged label of each method in `METHODS`.

    `fit_table`: `fit.fit_database` of the same database. The autoencoder labels come from
    `results.classify_kernels` (reference autoencoders unless `autoencoder_dirs`), thresholds are
    the paper's unless `thresholds` ({k: 1 − cos}) says otherwise, and k-means is fitted per
    kernel size and group on that group's kernels (seeded)."""
    given = thresholds or {}
    thresholds = {int(k): float(given[k]) if given.get(k) is not None else paper_threshold(int(k)) for k in kernel_sizes}
    dirs = None if autoencoder_dirs is None else {int(k): autoencoder_dirs[k] for k in kernel_sizes}
    ae = classify_kernels(db, dirs, thresholds=thresholds, kmeans_clusters=None, progress=False)
    if dirs is None:
        ae = ae[ae["kh"].isin(list(kernel_sizes))]
    parts = []
    for k in kernel_sizes:
        meta, kernels = kernels_of_size(db, int(k))
        if not len(meta):
            continue
        meta = meta.reset_index(drop=True)
        group = group_of(meta["weights_tag"])
        degenerate = degenerate_mask(kernels)
        km = np.where(degenerate, DEGENERATE, UNCLUSTERED).astype(object)   # too few kernels for k-means: unclustered
        for g in (TRAINED, RANDOM_INIT):
            rows = np.flatnonzero(group == g)
            if int((~degenerate[rows]).sum()) < kmeans_clusters:
                continue
            classifier = kmeans_baseline(kernels[rows], kmeans_clusters, seed=seed, threshold=thresholds[int(k)])
            km[rows] = classifier.predict(kernels[rows])["merged"].to_numpy()
        table = meta[KEYS + ["depth", "stride"]].assign(kernel_size=int(k), group=group, kmeans=km.astype(str))
        parts.append(table)
    if not parts:
        raise AnalysisError(f"no {', '.join(f'{k}×{k}' for k in kernel_sizes)} kernels in {db}")
    table = pd.concat(parts, ignore_index=True)
    fits = fit_table.assign(fit=_fit_labels_by_size(fit_table, thresholds))
    out = table.merge(ae[KEYS + ["merged"]].rename(columns={"merged": "autoencoder"}), on=KEYS, how="left",
                      validate="one_to_one")
    out = out.merge(fits[KEYS + fitting.FIT_COLUMNS + ["fit"]], on=KEYS, how="left",
                    validate="one_to_one")
    missing = out["autoencoder"].isna() | out["fit"].isna()
    if missing.any():
        first = out.loc[missing, KEYS].iloc[0].to_dict()
        raise AnalysisError(f"{int(missing.sum())} kernels of {db} have no classification or no fit (e.g. {first}); "
                            "fit and classify the same database")
    return out[KEYS + ["depth", "stride", "kernel_size", "group", *METHODS] +
               [c for c in fitting.FIT_COLUMNS if c not in ("merged",)]]


def _fit_labels_by_size(fit_table: pd.DataFrame, thresholds: dict) -> np.ndarray:
    labels = np.empty(len(fit_table), dtype=object)
    for k, idx in fit_table.groupby("kh", sort=False).indices.items():
        labels[idx] = fitting.fit_labels(fit_table.iloc[idx], thresholds.get(int(k), paper_threshold(int(k))))
    return labels.astype(str)


def axis_preference(theta) -> dict:
    """How strongly first-derivative orientations θ (degrees) sit on the image axes: the share within
    `AXIS_TOLERANCE` of an axis (uniform θ: 0.25) and the two-sided binomial p-value against 0.25.
    NaN share and p-value when there is no θ."""
    from scipy.stats import binomtest

    distance = fitting.theta_axis_distance(np.asarray(theta, dtype=np.float64))
    distance = distance[np.isfinite(distance)]
    near = int((distance <= AXIS_TOLERANCE).sum())
    uniform = AXIS_TOLERANCE / 45.0
    if not len(distance):
        return {"n": 0, "near_axis": 0, "share_near_axis": float("nan"), "uniform_share": uniform,
                "p_value": float("nan")}
    return {"n": int(len(distance)), "near_axis": near, "share_near_axis": near / len(distance),
            "uniform_share": uniform, "p_value": float(binomtest(near, len(distance), uniform).pvalue)}


def scale_depth(sigma, depth) -> dict:
    """Spearman's ρ between σ and normalised depth (does scale grow with depth?), its p-value and n;
    NaN when fewer than 3 kernels or either variable is constant."""
    from scipy.stats import spearmanr

    s, d = np.asarray(sigma, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(d)
    s, d = s[keep], d[keep]
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(d) == 0:
        return {"n": int(len(s)), "rho": float("nan"), "p_value": float("nan")}
    rho, p = spearmanr(s, d)
    return {"n": int(len(s)), "rho": float(rho), "p_value": float(p)}


#: Kernels a σ/θ statistic is taken over: trained kernels the fit clusters, and the random-init twins'
#: fits whatever their cosine (they are hardly ever clustered; their fits show the fitter's own biases,
#: e.g. the pixel grid's pull towards the axes).
SELECTIONS = {"trained, clustered by the fit": (TRAINED, True), "random init, every fit": (RANDOM_INIT, False)}
_SHORT = {TRAINED: "trained", RANDOM_INIT: "twin"}
#: Kinds whose σ is the DoG family's centre σ (crosses have their own σ, squares none).
SIGMA_KINDS = ("dog", "d1", "ridge", "saddle")


def select_fits(labels: pd.DataFrame, group: str, clustered_only: bool, kind: str | None = None) -> pd.DataFrame:
    """Rows of a `label_table` of one group, optionally only those the fit clusters, optionally of one kind."""
    rows = labels[(labels["group"] == group) & ~labels["degenerate"].to_numpy(dtype=bool)]
    if clustered_only:
        rows = rows[_clustered(rows["fit"].to_numpy(dtype=str))]
    if kind is not None:
        rows = rows[rows["kind"] == kind]
    return rows


def orientation_scale_summary(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel size and model: for trained kernels the fit clusters and, beside them, every
    fit of the random-init twin (`SELECTIONS`): the share of first derivatives within
    `AXIS_TOLERANCE` of an axis (with the binomial p-value against uniform θ and Fisher's exact
    p-value against the twin), the median σ of the DoG-family kinds at stride 1 and 2, and
    Spearman's ρ of σ with depth."""
    from scipy.stats import fisher_exact

    stats, names = {}, []
    for group, clustered_only in SELECTIONS.values():
        chosen = select_fits(labels, group, clustered_only)
        for (k, model), part in chosen.groupby(["kernel_size", "model"], sort=True):
            axis = axis_preference(part.loc[part["kind"] == "d1", "theta"])
            dog_family = part[part["kind"].isin(SIGMA_KINDS)]
            scale = scale_depth(dog_family["sigma"], dog_family["depth"])
            by_stride = dog_family.groupby("stride")["sigma"].median()
            stats.setdefault((int(k), model), {})[_SHORT[group]] = {
                "n_first_derivatives": axis["n"], "near_axis": axis["near_axis"],
                "share_near_axis": axis["share_near_axis"], "axis_p_uniform": axis["p_value"],
                "n_sigma": scale["n"],
                "median_sigma_stride1": float(by_stride.get(1, np.nan)),
                "median_sigma_stride2": float(by_stride.get(2, np.nan)),
                "sigma_depth_rho": scale["rho"], "sigma_depth_p": scale["p_value"]}
            names = list(stats[int(k), model][_SHORT[group]])
    rows = []
    for (k, model), by_group in stats.items():
        row = {"kernel_size": k, "model": model}
        for short in _SHORT.values():   # a group the set lacks (no twins) leaves its columns undefined
            for name in names:
                row[f"{name}_{short}"] = by_group.get(short, {}).get(name, float("nan"))
        trained, twin = by_group.get("trained"), by_group.get("twin")
        row["axis_p_vs_twin"] = float("nan")
        if trained and twin and trained["n_first_derivatives"] and twin["n_first_derivatives"]:
            table = [[trained["near_axis"], trained["n_first_derivatives"] - trained["near_axis"]],
                     [twin["near_axis"], twin["n_first_derivatives"] - twin["near_axis"]]]
            row["axis_p_vs_twin"] = float(fisher_exact(table).pvalue)
        rows.append(row)
    return pd.DataFrame(rows)


def fit_selection_table(labels: pd.DataFrame) -> pd.DataFrame:
    """The fits the σ/θ figures show, one row per kernel and selection (`SELECTIONS`): kernel size,
    model, layer, depth, stride, kind, σ, θ, its angle to the nearest axis, and the selection's name."""
    parts = []
    for name, (group, clustered_only) in SELECTIONS.items():
        rows = select_fits(labels, group, clustered_only)
        parts.append(rows[["kernel_size", "model", "layer", "depth", "stride", "kind", "sigma", "theta"]]
                     .assign(axis_distance=fitting.theta_axis_distance(rows["theta"]), selection=name))
    return pd.concat(parts, ignore_index=True)


def example_rows(db, labels: pd.DataFrame, kernel_size: int, group: str = TRAINED, per_class: int = 6,
                 seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Rows for `plots.kernel_rows`: for each class the fit clusters in `group`, up to `per_class`
    random kernels and, below them, their fitted templates (with the cosine in the label)."""
    rows = labels[(labels["kernel_size"] == kernel_size) & (labels["group"] == group)]
    rows = rows[_clustered(rows["fit"].to_numpy(dtype=str))]
    rng = np.random.default_rng(seed)
    out = []
    for cls in order_classes(rows["fit"].unique()):
        members = rows[rows["fit"] == cls]
        pick = members.iloc[np.sort(rng.choice(len(members), min(per_class, len(members)), replace=False))]
        kernels = selection_kernels(pick, db)
        fits = fitting.fitted_templates(pick, int(kernel_size))
        out.append((f"{cls}\n(n={len(members)})", kernels))
        out.append((f"fit, cos {pick['cosine'].min():.2f}–{pick['cosine'].max():.2f}", fits))
    return out
