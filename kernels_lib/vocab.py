"""The project's vocabulary: class names, how they merge, their display order and names, the
words for kernels without a class, the random-init twin tag and the paper's thresholds.

Every module that names a class, recognises an untrained twin or needs the paper's threshold
asks here, so a name means the same thing in the label files, the results table and the figures.

Classes (paper §4.2, §5, Appendices B and D): the difference of Gaussians DoG ("on") and −DoG
("off"), their first and second derivatives, the cross ("on-cross", "off-cross") and, in 5×5
kernels, the square ("on-square", "off-square"). Plots merge the derivatives into
"1st-derivative" and "2nd-derivative". A code interval that no DoG-family name fits is "other";
a kernel too far from every prototype is "unclustered"; a kernel with no direction (constant,
all zero, NaN/inf) is "degenerate".

Derivatives come at any orientation, and their fine names carry it in degrees:
"<polarity>-<kind>@<angle>", for example "on-d1@30" or "off-saddle@12.5".

* "d1": first derivative along the direction u = (cos θ, sin θ), cos θ·∂x + sin θ·∂y;
* "d2": second derivative along u (a ridge), cos²θ·∂xx + sin 2θ·∂xy + sin²θ·∂yy;
* "saddle": (∂uu − ∂vv)/2 with v ⊥ u, = cos 2θ·(∂xx − ∂yy)/2 + sin 2θ·∂xy.

θ is measured from the +x axis (right) towards +y (down: kernels are drawn as stored, so that
is clockwise on screen). Each name has one canonical angle: rotating d1 by 180° or a saddle by
90° negates it, so those angles are written with the other polarity; the angle of d1 and d2
lies in [0, 180), that of a saddle in [0, 90) (`oriented_class` writes any angle that way).
The paper's axis-aligned names stay valid: "on-dx" is "on-d1@0", "on-dy" "on-d1@90", "on-dxx"
"on-d2@0", "on-dyy" "on-d2@90", "on-dxy" "on-saddle@45" (likewise "off-…"). A name without an
angle ("on-d1", "off-saddle", …) stands for that kind at every orientation.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .errors import AnalysisError, UnknownClassError, did_you_mean  # noqa: F401  (UnknownClassError: raised here)

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
#: Partial derivative orders (∂x, ∂y) of each axis-aligned derivative suffix.
DERIVATIVES = {"dx": (1, 0), "dy": (0, 1), "dxx": (2, 0), "dyy": (0, 2), "dxy": (1, 1)}
#: Oriented derivative kinds: their order and the period (degrees) of a canonical angle.
ORIENTED_KINDS = {"d1": (1, 180), "d2": (2, 180), "saddle": (2, 90)}
#: Each axis-aligned suffix as (oriented kind, angle).
AXIS_DERIVATIVES = {"dx": ("d1", 0.0), "dy": ("d1", 90.0), "dxx": ("d2", 0.0), "dyy": ("d2", 90.0),
                    "dxy": ("saddle", 45.0)}
#: Oriented kinds without an angle ("on-d1", …): the kind at every orientation.
FAMILIES: tuple[str, ...] = tuple(f"{pol}-{kind}" for kind in ORIENTED_KINDS for pol in ("on", "off"))
_ORIENTED = re.compile(r"^(on|off)-(d1|d2|saddle)@(.*)$")
_ANGLE = re.compile(r"^-?\d+(\.\d+)?$")

#: Clustering methods, as the results table's `clustering` column names them.
AUTOENCODER = "autoencoder"
KMEANS = "kmeans"

#: Dissimilarity thresholds 1 − cos of the paper (§4.2), by kernel size.
PAPER_THRESHOLDS = {7: 0.3, 5: 0.2}

#: Weights tags of untrained random-init twins start with this (`kernels_lib.database.zoo`).
RANDOM_INIT_PREFIX = "random-init"


def _known() -> tuple[str, ...]:
    return CLASSES + FAMILIES + CLASS_ORDER


def _format_angle(degrees: float) -> str:
    return f"{degrees:g}"


def oriented_class(polarity: str, kind: str, degrees: float) -> str:
    """The canonical fine name of a derivative of kind "d1", "d2" or "saddle" along `degrees`.

    Any finite angle is accepted and written in its canonical range (with the polarity flipped
    where a rotation negates the pattern), rounded to 0.1°: oriented_class("on", "d1", 200)
    is "off-d1@20".
    """
    if polarity not in ("on", "off") or kind not in ORIENTED_KINDS:
        raise UnknownClassError(f"an oriented class needs polarity 'on' or 'off' and kind "
                                f"{', '.join(map(repr, ORIENTED_KINDS))}; got {polarity!r}, {kind!r}")
    if not math.isfinite(degrees):
        raise UnknownClassError(f"the angle of an oriented class must be finite, got {degrees!r}")
    period = ORIENTED_KINDS[kind][1]
    turns = math.floor(round(float(degrees), 1) / period)   # rounded first: 179.96 is 0 of the next turn
    angle = round(round(float(degrees), 1) - turns * period, 1) % period + 0.0
    negated = kind != "d2" and turns % 2 == 1                # d1 (180°) and saddle (90°) flip sign
    if negated:
        polarity = "off" if polarity == "on" else "on"
    return f"{polarity}-{kind}@{_format_angle(angle)}"


def orientation(name: str) -> tuple[str, str, float] | None:
    """(polarity, kind, degrees) of a derivative name, oriented or axis-aligned; None for other classes
    and for kinds without an angle ("on-d1"). Raises `UnknownClassError` for an invalid name."""
    merge_class(name)
    match = _ORIENTED.match(name)
    if match:
        return match.group(1), match.group(2), float(match.group(3))
    polarity, _, suffix = name.partition("-")
    if suffix in AXIS_DERIVATIVES:
        kind, degrees = AXIS_DERIVATIVES[suffix]
        return polarity, kind, degrees
    return None


def _oriented_error(name: str) -> str | None:
    """Why an "<polarity>-<kind>@<angle>" name is invalid (None if it is valid or not of that form)."""
    match = _ORIENTED.match(name)
    if not match:
        return None
    polarity, kind, text = match.groups()
    period = ORIENTED_KINDS[kind][1]
    if not _ANGLE.match(text):
        return f"the angle of {name!r} is not a number of degrees (write e.g. '{polarity}-{kind}@30')"
    degrees = float(text)
    if not 0 <= degrees < period:
        return (f"the angle of a '{kind}' class lies in [0, {period}) degrees, got {name!r}; "
                f"write {oriented_class(polarity, kind, degrees)!r}")
    return None


def merge_class(name: str) -> str:
    """Merged class of a fine class name (idempotent on merged names and the catch-alls)."""
    if name in CLASS_ORDER:
        return name
    if not isinstance(name, str):
        raise UnknownClassError(unknown_class_message(name))
    if name in CLASSES:
        orders = DERIVATIVES.get(name.split("-", 1)[1]) if "-" in name else None
        if orders is None:
            return name
        order = sum(orders)
    elif name in FAMILIES:
        order = ORIENTED_KINDS[name.split("-", 1)[1]][0]
    elif _ORIENTED.match(name) and _oriented_error(name) is None:
        order = ORIENTED_KINDS[_ORIENTED.match(name).group(2)][0]
    else:
        raise UnknownClassError(unknown_class_message(name))
    return "1st-derivative" if order == 1 else "2nd-derivative"


def merge_classes(names) -> np.ndarray:
    """`merge_class` of every name of an array (each distinct name looked up once)."""
    names = np.asarray(names, dtype=str)
    uniques, inverse = np.unique(names, return_inverse=True)
    return np.array([merge_class(u) for u in uniques], dtype=str)[inverse].reshape(names.shape) if len(names) else names


def unknown_class_message(name, where: str = "") -> str:
    """'unknown class …; did you mean …? known: …' for an error message (or why an oriented name's
    angle is wrong)."""
    prefix = f"{where}: " if where else ""
    angle = _oriented_error(name) if isinstance(name, str) else None
    if angle:
        return prefix + angle
    return (f"{prefix}unknown class {name!r}; {did_you_mean(name, _known(), cutoff=0.6)}known classes: {', '.join(dict.fromkeys(_known()))}, "
            "and derivatives at any angle such as 'on-d1@30', 'off-d2@105', 'on-saddle@20'")


def fine_members(name: str) -> list[str]:
    """What a name stands for when kernels of it are drawn: itself for a fine name (with or without
    an angle), the oriented kinds of both polarities for a derivative class ("1st-derivative" →
    "on-d1", "off-d1"), the class itself otherwise."""
    if name == OTHER:
        return [name]
    merged = merge_class(name)
    if name != merged:
        return [name]
    members = [f for f in FAMILIES if merge_class(f) == merged]
    return members or [name]


def display_name(name: str) -> str:
    """Readable name of a class; a fine derivative keeps its operator ("On-centre ∂xy")."""
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    merge_class(name)   # refuses unknown names
    polarity, _, kind = name.partition("-")
    if kind in DERIVATIVES:
        return f"{polarity.capitalize()}-centre ∂{kind[1:]}"
    kind, _, angle = kind.partition("@")
    if kind in ORIENTED_KINDS:
        what = {"d1": "∂", "d2": "∂²", "saddle": "saddle"}[kind]
        return f"{polarity.capitalize()}-centre {what} " + (f"at {angle}°" if angle else "(any angle)")
    return name


def order_classes(names) -> list[str]:
    """Classes in display order (`CLASS_ORDER`, fine classes beside their merged class, oriented
    ones by kind, polarity and angle); anything else (k-means cluster ids, say) after them in
    sorted order."""
    names = list(dict.fromkeys(names))
    rank = {c: i for i, c in enumerate(CLASS_ORDER)}
    fine_rank = {c: i for i, c in enumerate(CLASSES + FAMILIES)}

    def key(n):
        try:
            merged = merge_class(n)
        except UnknownClassError:
            merged = None
        if isinstance(n, str) and _ORIENTED.match(n) and merged is not None:
            polarity, kind, degrees = orientation(n)
            return (rank[merged], fine_rank[f"{polarity}-{kind}"], degrees, n)
        return (rank.get(merged, len(rank)), fine_rank.get(n, -1), 0.0, str(n))

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


def model_label(model: str, weights_tag: str) -> str:
    """How a model's weights are named to a reader: "arch.tag" for a timm tag, but a file's model alone
    ("mnv2", not "mnv2.mnv2.onnx"): its weights tag is the file's name, which repeats the stem."""
    return model if str(weights_tag).startswith(f"{model}.") else f"{model}.{weights_tag}"


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
