"""The project's vocabulary: class names, how they merge, their display order and names, the
words for kernels without a class, the random-init twin tag and the paper's thresholds.

Every module that names a class, recognises an untrained twin or needs the paper's threshold
asks here, so a name means the same thing in the label files, the results table and the figures.

Classes (paper §4.2, §5, Appendices B and D): the difference of Gaussians DoG ("on") and −DoG
("off"), their first derivatives ∂x, ∂y and second derivatives ∂xx, ∂yy, ∂xy ("on-dx", …,
"off-dxy"), the cross ("on-cross", "off-cross") and, in 5×5 kernels, the square ("on-square",
"off-square"). Plots merge the derivatives into "1st-derivative" and "2nd-derivative". A code
interval that no DoG-family name fits is "other"; a kernel too far from every prototype is
"unclustered"; a kernel with no direction (constant, all zero, NaN/inf) is "degenerate".
"""
from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from .errors import AnalysisError, UnknownClassError  # noqa: F401  (UnknownClassError: raised here)

#: Fine class names, in display order. "on-dx" is ∂x(DoG), "off-dx" is ∂x(−DoG), and so on.
CLASSES: tuple[str, ...] = (
    "on", "off",
    "on-cross", "off-cross",
    "on-dx", "off-dx", "on-dy", "off-dy",
    "on-dxx", "off-dxx", "on-dyy", "off-dyy", "on-dxy", "off-dxy",
    "on-square", "off-square",
)
#: A code interval or centroid that no DoG-family class fits.
OTHER = "other"
#: A kernel whose best dissimilarity is not below the threshold.
UNCLUSTERED = "unclustered"
#: A kernel with no direction (all zero, constant after centring, NaN/inf): flagged, never classified.
DEGENERATE = "degenerate"
#: Merged class names (the paper's plots merge the derivative sub-types), in display order.
MERGED_CLASSES: tuple[str, ...] = (
    "on", "off", "on-cross", "off-cross", "1st-derivative", "2nd-derivative",
    "on-square", "off-square", OTHER,
)
#: Every merged class and the two catch-alls, in the order tables and figures list them.
CLASS_ORDER: tuple[str, ...] = MERGED_CLASSES + (UNCLUSTERED, DEGENERATE)
#: Readable names of the merged classes and catch-alls.
DISPLAY_NAMES = {
    "on": "On-centre DoG",
    "off": "Off-centre DoG",
    "on-cross": "On-centre cross",
    "off-cross": "Off-centre cross",
    "1st-derivative": "1st derivative",
    "2nd-derivative": "2nd derivative",
    "on-square": "On-square",
    "off-square": "Off-square",
    OTHER: "Other",
    UNCLUSTERED: "Unclustered",
    DEGENERATE: "Degenerate (constant)",
}
#: Partial derivative orders (∂x, ∂y) of each derivative suffix.
DERIVATIVES = {"dx": (1, 0), "dy": (0, 1), "dxx": (2, 0), "dyy": (0, 2), "dxy": (1, 1)}

#: Clustering methods, as the results table's `clustering` column names them.
AUTOENCODER = "autoencoder"
KMEANS = "kmeans"

#: Dissimilarity thresholds 1 − cos of the paper (§4.2), by kernel size.
PAPER_THRESHOLDS = {7: 0.3, 5: 0.2}

#: Weights tags of untrained random-init twins start with this (`kernels_lib.zoo`).
RANDOM_INIT_PREFIX = "random-init"


def _known() -> tuple[str, ...]:
    return CLASSES + CLASS_ORDER


def merge_class(name: str) -> str:
    """Merged class of a fine class name (idempotent on merged names and the catch-alls)."""
    if name in CLASS_ORDER:
        return name
    if name not in CLASSES:
        raise UnknownClassError(unknown_class_message(name))
    orders = DERIVATIVES.get(name.split("-", 1)[1]) if "-" in name else None
    if orders is not None:
        return "1st-derivative" if sum(orders) == 1 else "2nd-derivative"
    return name


def merge_classes(names) -> np.ndarray:
    """`merge_class` of every name of an array (each distinct name looked up once)."""
    names = np.asarray(names, dtype=str)
    uniques, inverse = np.unique(names, return_inverse=True)
    return np.array([merge_class(u) for u in uniques], dtype=str)[inverse].reshape(names.shape) if len(names) else names


def unknown_class_message(name, where: str = "") -> str:
    """'unknown class …; did you mean …? known: …' for an error message."""
    close = difflib.get_close_matches(str(name), list(dict.fromkeys(_known())), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}unknown class {name!r}; {hint}known classes: {', '.join(dict.fromkeys(_known()))}"


def fine_members(name: str) -> list[str]:
    """Fine classes that a (fine or merged) name stands for."""
    if name in CLASSES or name == OTHER:
        return [name]
    members = [c for c in CLASSES if merge_class(c) == name]
    if not members:
        raise UnknownClassError(unknown_class_message(name))
    return members


def display_name(name: str) -> str:
    """Readable name of a class; a fine derivative keeps its operator ("On-centre ∂xy")."""
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    merge_class(name)   # refuses unknown names
    polarity, _, kind = name.partition("-")
    if kind in DERIVATIVES:
        return f"{polarity.capitalize()}-centre ∂{kind[1:]}"
    return name


def order_classes(names) -> list[str]:
    """Classes in display order (`CLASS_ORDER`, fine classes beside their merged class); anything else
    (k-means cluster ids, say) after them in sorted order."""
    names = list(dict.fromkeys(names))
    rank = {c: i for i, c in enumerate(CLASS_ORDER)}
    fine_rank = {c: i for i, c in enumerate(CLASSES)}

    def key(n):
        merged = merge_class(n) if n in rank or n in fine_rank else None
        return (rank.get(merged, len(rank)), fine_rank.get(n, -1), str(n))

    return sorted(names, key=key)


def paper_threshold(kernel_size: int) -> float:
    """The paper's threshold of 1 − cos for k×k kernels (0.2 for 5×5, 0.3 for 7×7)."""
    if int(kernel_size) not in PAPER_THRESHOLDS:
        raise AnalysisError(f"the paper gives no threshold for {kernel_size}×{kernel_size} kernels "
                              f"(only {', '.join(f'{k}×{k}' for k in PAPER_THRESHOLDS)}); pass threshold=")
    return PAPER_THRESHOLDS[int(kernel_size)]


def twin_tag(seed: int) -> str:
    """The weights tag of a seeded random-init twin."""
    return f"{RANDOM_INIT_PREFIX}-seed{seed}"


def is_random_init(weights_tag) -> bool:
    """Whether a weights tag is a random-init twin's (the untrained control)."""
    return str(weights_tag).startswith(RANDOM_INIT_PREFIX)


def random_init_mask(weights_tags) -> np.ndarray:
    """`is_random_init` of a whole column at once."""
    return pd.Series(weights_tags, dtype=object).astype(str).str.startswith(RANDOM_INIT_PREFIX).to_numpy()


def name_list(names, limit: int = 4) -> str:
    """"a, b and c" or "a, b, c, d and 5 more": model lists in titles stay one line long."""
    names = [str(n) for n in names]
    if not names:
        return "no model"
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
