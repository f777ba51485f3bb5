"""Recall on the extended ground truth (`groundtruth_extended`), sliced the ways issue 17 asks:
per class and rendering, per scale, per angle, the smallest-scale band, shifted and elongated
kernels, with the i.i.d. random control beside them.

One function scores a classifier (`score`) and returns plain tables, so build_reference.py,
tests/test_ground_truth.py and notebook 08 report the same numbers the same way.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import dog_bank
from ..method.classify import PrototypeClassifier
from ..vocab import MERGED_CLASSES, merge_classes
from . import evaluate, groundtruth, groundtruth_extended

#: Edges (px², variance s = σ²) of the scale bands of `by_scale`.
SCALE_EDGES = (0.25, 0.5, 1.0, 2.0, 4.0, 16.0)
#: Sub-pixel shift (px) from which a point-sampled kernel counts as shifted.
SHIFTED = 0.25
#: Long/short axis ratio from which a point-sampled or affine kernel counts as elongated.
ELONGATED = 1.3


def slices(bank) -> dict[str, np.ndarray]:
    """Named subsets (boolean masks) of an extended bank: everything, each rendering, the
    smallest-scale band (discrete kernels with s ≤ `groundtruth_extended.SMALLEST_BAND`), shifted
    point samples and elongated kernels (point-sampled or affine)."""
    p = bank.params
    rendering = p["rendering"].to_numpy()
    scale = p["scale"].to_numpy(dtype=np.float64)
    shift = p["shift"].to_numpy(dtype=np.float64)
    aspect = p["aspect"].to_numpy(dtype=np.float64)
    out = {"all": np.ones(len(p), dtype=bool)}
    out.update({f"rendering {r}": rendering == r for r in groundtruth_extended.RENDERINGS})
    out[f"smallest scales (discrete, s <= {groundtruth_extended.SMALLEST_BAND:g} px²)"] = (
        (rendering == "discrete") & (scale <= groundtruth_extended.SMALLEST_BAND))
    out[f"shifted (point-sampled, shift >= {SHIFTED:g} px)"] = (rendering == "sampled") & (shift >= SHIFTED)
    out[f"elongated (point-sampled or affine, axes >= {ELONGATED:g}:1)"] = (
        np.isin(rendering, ["sampled", "affine"]) & (aspect >= ELONGATED))
    return out


def _recall(true: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> dict:
    """Accuracy and per-class recall on one subset; None where it holds no kernel."""
    row = {"support": int(mask.sum()), "accuracy": float(np.mean(pred[mask] == true[mask])) if mask.any() else None}
    for c in (c for c in MERGED_CLASSES if c in set(true)):
        sel = mask & (true == c)
        row[c] = float(np.mean(pred[sel] == c)) if sel.any() else None
    return row


def by_slice(bank, predicted) -> pd.DataFrame:
    """One row per `slices` subset: support, merged-class accuracy, recall of every class."""
    true, pred = np.asarray(bank.merged, dtype=str), merge_classes(np.asarray(predicted, dtype=str))
    return pd.DataFrame([{"slice": name, **_recall(true, pred, mask)} for name, mask in slices(bank).items()])


def by_scale(bank, predicted) -> pd.DataFrame:
    """Recall of the DoG family (blobs and derivatives) per rendering and band of variance s
    (`SCALE_EDGES`; s = σ² for the continuous renderings, the discrete kernel's own s otherwise)."""
    p = bank.params
    true, pred = np.asarray(bank.merged, dtype=str), merge_classes(np.asarray(predicted, dtype=str))
    scale = np.where(p["rendering"] == "discrete", p["scale"], p["sigma"] ** 2).astype(np.float64)
    rows = []
    for rendering in groundtruth_extended.RENDERINGS:
        for lo, hi in zip(SCALE_EDGES[:-1], SCALE_EDGES[1:]):
            mask = (p["rendering"].to_numpy() == rendering) & (scale >= lo) & (scale < hi)
            if mask.any():
                rows.append({"rendering": rendering, "scale_from": lo, "scale_to": hi, **_recall(true, pred, mask)})
    return pd.DataFrame(rows)


def by_angle(bank, predicted) -> pd.DataFrame:
    """Recall of first and second derivatives per 15° band of angle from the grid's axes, per rendering."""
    angles = groundtruth.angle_from_axes(bank)
    rendering = bank.params["rendering"].to_numpy()
    tables = [evaluate.recall_by_angle(bank.merged[rendering == r], np.asarray(predicted)[rendering == r],
                                       angles[rendering == r]).assign(rendering=r)
              for r in groundtruth_extended.RENDERINGS]
    tables.append(evaluate.recall_by_angle(bank.merged, predicted, angles).assign(rendering="all"))
    return pd.concat(tables, ignore_index=True)


def random_control(classifier: PrototypeClassifier, k: int, n: int = 20_000) -> dict:
    """Share of i.i.d. random kernels clustered: N(0, 1) (seed 7) and PyTorch's Kaiming default (seed 8)."""
    random = {"normal": dog_bank.random_kernels(k, n, seed=7),
              "kaiming": dog_bank.random_kernels(k, n, seed=8, distribution="kaiming")}
    return {name: float(classifier.predict(r)["clustered"].mean()) for name, r in random.items()}


def score(classifier: PrototypeClassifier, k: int, n: int, seed: int, snr: float = groundtruth.MODERATE_SNR,
          n_random: int = 20_000) -> dict:
    """Everything above for one classifier on `extended_bank(k, n, snr, seed)`: `evaluate.evaluate`'s
    scores (accuracy, per_class, confusion, predicted, …) plus "bank", "by_slice", "by_scale",
    "by_angle" (DataFrames) and "random" (`random_control`, None when n_random is 0)."""
    bank = groundtruth_extended.extended_bank(k, n, snr=snr, seed=seed)
    scores = evaluate.evaluate(classifier, bank.kernels, bank.merged)
    predicted = scores["predicted"]
    return {**scores, "bank": bank, "by_slice": by_slice(bank, predicted), "by_scale": by_scale(bank, predicted),
            "by_angle": by_angle(bank, predicted),
            "random": random_control(classifier, k, n_random) if n_random else None}


def wide_tables(scores: dict) -> dict[str, pd.DataFrame]:
    """`score`'s tables laid out for reading: "by_slice" (one row per slice), "by_scale" (rendering ×
    scale band → accuracy and recall per class), "by_angle" (rendering → recall per derivative class
    and 15° band), rounded to 3 decimals."""
    angle = scores["by_angle"].assign(band=lambda t: t["class"] + " " + t["from_deg"].map("{:g}".format) + "–"
                                      + t["to_deg"].map("{:g}°".format))
    return {
        "by_slice": scores["by_slice"].set_index("slice").round(3),
        "by_scale": scores["by_scale"].set_index(["rendering", "scale_from", "scale_to"]).round(3),
        "by_angle": angle.pivot_table(index="rendering", columns="band", values="recall", sort=False).round(3),
    }
