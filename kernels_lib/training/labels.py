"""% clustered and class shares of a network's kernels by the paper's reference autoencoders, and the
threshold-free median cosine to the nearest DoG-family template: what every training snapshot records."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..method import dog
from ..paths import REFERENCE_AUTOENCODERS


@lru_cache(maxsize=None)
def reference_classifier(k: int):
    """The paper's classifier for k×k kernels (reference autoencoder, its labels, the paper's threshold);
    None for a size without a reference autoencoder. Cached: decoding the codes takes a few seconds."""
    from ..method.classify import autoencoder_classifier

    if k not in REFERENCE_AUTOENCODERS:
        return None
    return autoencoder_classifier(REFERENCE_AUTOENCODERS[k])


def _shares(rows) -> dict:
    usable = rows[~rows["degenerate"]]
    if len(usable) == 0:
        return {"n": int(len(rows)), "clustered": None, "shares": {}}
    labels = usable["merged"].where(usable["clustered"], "unclustered")
    return {"n": int(len(rows)), "clustered": round(float(usable["clustered"].mean()), 4),
            "shares": {k: round(float(v), 4) for k, v in labels.value_counts(normalize=True).sort_index().items()}}


def clustering_summary(table) -> dict:
    """Per kernel size of a kernel table: the fraction clustered (of non-degenerate kernels) and each merged
    class's share, overall and per depthwise layer, by the reference classifier; undefined (None) for sizes
    without one. Also the median cosine to the nearest analytic DoG-family template (`dog.nearest_template`),
    a threshold-free view that works at any size."""
    out = {}
    for (kh, kw), rows in table.groupby(["kh", "kw"]):
        kernels = np.stack(rows["kernel"].to_numpy()).reshape(len(rows), kh, kw)
        entry = {"threshold": None, "clustered": None, "shares": {}, "per_layer": {}}
        classifier = reference_classifier(int(kh)) if kh == kw else None
        if classifier is not None:
            result = classifier.predict(kernels)
            result["layer"] = rows["layer"].to_numpy()
            entry.update(threshold=classifier.threshold, **_shares(result))
            entry["per_layer"] = {int(layer): _shares(part) for layer, part in result.groupby("layer")}
        if kh == kw:
            match = dog.nearest_template(kernels, _template_bank(int(kh)))
            cosine = match.cosine[~match.degenerate]
            entry["template_cosine_median"] = round(float(np.median(cosine)), 4) if len(cosine) else None
        out[f"{kh}x{kw}"] = entry
    return out


@lru_cache(maxsize=None)
def _template_bank(k: int):
    return dog.template_bank(k)
