"""The code spectrum (§4.2): decode equally spaced codes, name intervals of the code axis.

An autoencoder's 1-D code runs from 0 to 1. Decoding equally spaced codes shows which kernel
shape lives where (500 codes for the strip figure, 10,000 for classification). Intervals of
the code axis get class names in a *label file* beside the autoencoder:

    kernel_shape: [7, 7]
    intervals:
      - {start: 0.0, end: 0.1234, label: on}
      - {start: 0.1234, end: 0.2, label: 1st-derivative, note: "free text"}
      ...

Intervals are half-open [start, end) (the one ending at 1 includes 1), sorted and
non-overlapping inside [0, 1]. Labels are class names of `kernels_lib.vocab` (fine or merged);
an unknown name — a typo in a hand edit — is an error naming the file and line, never a new
class. A gap between intervals is unlabelled: codes there are
"other", exactly as if an interval said `label: other`. One class may own several separate
intervals (the spectrum's order is arbitrary and a class often comes back).

`propose_labels` names intervals automatically by matching every decoded kernel to the DoG
family templates (`kernels_lib.method.dog`). `label_spectrum` writes the proposal as `labels.yaml`
only when no label file exists yet; otherwise it writes `labels.proposed.yaml` beside it, so a
human's edits always win.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .autoencoder import Autoencoder
from ..errors import CorruptFileError, KernelsLibError
from ..fileio import atomic_write_text
from ..vocab import OTHER, merge_class, unknown_class_message

#: Codes decoded for the spectrum strip (Figures 3, 31, 32) and for classification (§4.2).
STRIP_CODES = 500
CLASSIFY_CODES = 10_000
LABEL_FILE = "labels.yaml"
PROPOSAL_FILE = "labels.proposed.yaml"
_INTERVAL_KEYS = {"start", "end", "label", "note"}


class _LabelLoader(yaml.SafeLoader):
    """YAML 1.1 reads `on`/`off`/`yes`/`no` as booleans; here `label: on` must stay the class "on"."""


_LabelLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def code_grid(n: int) -> np.ndarray:
    """`n` equally spaced codes from 0 to 1 inclusive."""
    if n < 2:
        raise ValueError(f"need at least 2 codes to span [0, 1], got {n}")
    return np.linspace(0.0, 1.0, int(n))


@dataclass(frozen=True)
class Spectrum:
    """Codes [N] and their decoded kernels [N, kh, kw] (centred, unit length)."""

    codes: np.ndarray
    kernels: np.ndarray


def decode_spectrum(ae: Autoencoder, n: int = STRIP_CODES) -> Spectrum:
    """Decode `n` equally spaced codes in [0, 1]."""
    codes = code_grid(n)
    return Spectrum(codes, ae.decode(codes))


@dataclass(frozen=True)
class Interval:
    """Codes in [start, end) carry `label` (the interval ending at 1 includes 1)."""

    start: float
    end: float
    label: str
    note: str | None = None


def validate_intervals(intervals, source: str = "label list", lines=None) -> list[Interval]:
    """Check intervals are well formed, inside [0, 1], sorted, non-overlapping and name known classes.

    `source` names the file in the error, `lines` (one per interval) the line each starts on;
    the error also quotes the offending interval.
    """
    out: list[Interval] = []
    for i, item in enumerate(intervals):
        line = f":{lines[i]}" if lines is not None else ""
        where = f"{source}{line}: interval #{i + 1} {item!r}"
        if isinstance(item, Interval):
            item = {k: v for k, v in vars(item).items() if v is not None}
        if not isinstance(item, dict):
            raise CorruptFileError(f"{where} is not a mapping like {{start: 0.1, end: 0.2, label: on}}")
        unknown = set(item) - _INTERVAL_KEYS
        missing = {"start", "end", "label"} - set(item)
        if unknown or missing:
            raise CorruptFileError(
                f"{where}: " + "; ".join(
                    ([f"unknown key(s) {sorted(unknown)}"] if unknown else [])
                    + ([f"missing key(s) {sorted(missing)}"] if missing else [])
                ) + f" (allowed: {sorted(_INTERVAL_KEYS)})"
            )
        try:
            start, end = float(item["start"]), float(item["end"])
        except (TypeError, ValueError):
            raise CorruptFileError(f"{where}: start and end must be numbers") from None
        label = item["label"]
        if not isinstance(label, str) or not label.strip():
            raise CorruptFileError(f"{where}: label must be a non-empty string")
        try:
            merge_class(label.strip())
        except KernelsLibError:
            raise CorruptFileError(unknown_class_message(label.strip(), f"{source}{line}")) from None
        if not (0.0 <= start < end <= 1.0):
            raise CorruptFileError(f"{where}: need 0 ≤ start < end ≤ 1")
        if out and start < out[-1].end:
            prev = out[-1]
            raise CorruptFileError(
                f"{where} starts before the previous interval [{prev.start}, {prev.end}) {prev.label!r} ends: "
                "intervals must be sorted by start and must not overlap"
            )
        note = item.get("note")
        out.append(Interval(start, end, label.strip(), None if note is None else str(note)))
    return out


def read_labels(path) -> list[Interval]:
    """Read and validate a label file (a mapping with `intervals:`, or a bare list of intervals)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=_LabelLoader)
        doc = yaml.load(text, Loader=_LabelLoader)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no label file at {path}; write one by hand or run kernels_lib.method.spectrum.label_spectrum()"
        ) from None
    except yaml.YAMLError as exc:
        raise CorruptFileError(f"{path}: not valid YAML ({exc})") from exc
    items = doc.get("intervals") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise CorruptFileError(f"{path}: expected a list of intervals (or a mapping with an `intervals:` list)")
    node = root
    if isinstance(root, yaml.MappingNode):
        node = next(v for k, v in root.value if k.value == "intervals")
    lines = [item.start_mark.line + 1 for item in node.value]
    return validate_intervals(items, str(path), lines)


def code_labels(labels, codes) -> np.ndarray:
    """Label of every code (an array of str); codes in no interval are "other".

    `labels` is a label file path or a list of intervals.
    """
    intervals = read_labels(labels) if isinstance(labels, (str, os.PathLike)) else validate_intervals(labels)
    z = np.asarray(codes, dtype=np.float64).reshape(-1)
    if not (np.isfinite(z).all() and (z >= 0).all() and (z <= 1).all()):
        raise ValueError("codes must be finite numbers in [0, 1]")
    out = np.full(len(z), OTHER, dtype=object)
    for iv in intervals:
        inside = (z >= iv.start) & ((z < iv.end) | ((iv.end == 1.0) & (z == 1.0)))
        out[inside] = iv.label
    return out.astype(str)


def interval_table(intervals) -> pd.DataFrame:
    """Intervals as a table: where they lie, how wide, what they say."""
    return pd.DataFrame([{"start": iv.start, "end": iv.end, "width": iv.end - iv.start, "label": iv.label,
                          "note": iv.note or ""} for iv in intervals],
                        columns=["start", "end", "width", "label", "note"])


def write_labels(path, intervals, header: dict | None = None, overwrite: bool = False) -> Path:
    """Write a validated label file atomically; refuses to replace an existing one unless asked.

    Labels such as 'on' are written quoted, so that any YAML reader gets strings back.
    """
    path = Path(path)
    intervals = validate_intervals(intervals, str(path))
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (maybe edited by hand); pass overwrite=True to replace it")
    lines = ["# Code intervals of the autoencoder beside this file: [start, end), gaps are 'other'.",
             "# Edit freely; kernels_lib.method.spectrum.read_labels validates the file."]
    if header:
        lines.append(yaml.safe_dump(header, sort_keys=False, default_flow_style=None, allow_unicode=True,
                                    width=10**6).rstrip())
    lines.append("intervals:")
    for iv in intervals:
        fields = {"start": iv.start, "end": iv.end, "label": iv.label}
        if iv.note is not None:
            fields["note"] = iv.note
        lines.append("  - " + yaml.safe_dump(fields, sort_keys=False, default_flow_style=True, allow_unicode=True,
                                             width=10**6).strip())
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def propose_labels(spectrum: Spectrum, min_similarity: float = 0.8, bank=None) -> list[Interval]:
    """Name code intervals by the nearest DoG-family template of each decoded kernel.

    Every decoded kernel takes the merged class of its nearest template (mean-centred cosine; by
    default `scale_space.labelling_bank`, the continuous family plus the discrete one on odd grids),
    or "other" when that cosine is below `min_similarity`; runs of equal labels become one
    interval whose boundaries lie halfway between neighbouring codes. Each interval's note
    says which fine templates matched and how well, for the human who reviews the file.
    """
    from . import dog, scale_space  # the template family lives there; imported late to keep this module light

    if not 0.0 <= min_similarity <= 1.0:
        raise ValueError(f"min_similarity is a cosine in [0, 1], got {min_similarity}")
    codes = np.asarray(spectrum.codes, dtype=np.float64)
    if len(codes) < 2 or np.any(np.diff(codes) <= 0) or codes[0] != 0.0 or codes[-1] != 1.0:
        raise ValueError("propose_labels needs a spectrum decoded on increasing codes from 0 to 1 (decode_spectrum)")
    if bank is None:
        k = spectrum.kernels.shape[1]
        bank = scale_space.labelling_bank(k) if k % 2 else dog.template_bank(k)
    match = dog.nearest_template(spectrum.kernels, bank, min_cosine=min_similarity)
    labels = match.merged
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(codes)]])
    decimals = max(6, int(np.ceil(np.log10(len(codes)))) + 2)   # readable, yet never merges two edges
    edges = np.concatenate([[0.0], np.round((codes[change - 1] + codes[change]) / 2, decimals), [1.0]])
    names = np.asarray(list(bank.classes) + ["degenerate"])      # index −1: a decoded kernel with no direction
    out = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        fine, counts = np.unique(names[match.index[a:b]], return_counts=True)
        top = ", ".join(f"{f} ×{c}" for c, f in sorted(zip(counts, fine), reverse=True)[:3])
        cos = match.cosine[a:b]
        note = f"{b - a} codes; nearest templates {top}; cosine {cos.min():.2f}–{cos.max():.2f}"
        out.append(Interval(float(edges[i]), float(edges[i + 1]), str(labels[a]), note))
    return out


def label_spectrum(
    directory,
    n: int = CLASSIFY_CODES,
    min_similarity: float = 0.8,
    overwrite: bool = False,
    ae: Autoencoder | None = None,
) -> Path:
    """Propose labels for the autoencoder saved in `directory` and write them beside it.

    Writes `labels.yaml` when there is none (or `overwrite=True`); otherwise the existing
    file, possibly edited by hand, stays and the proposal goes to `labels.proposed.yaml`.
    Returns the path written.
    """
    directory = Path(directory)
    ae = ae if ae is not None else Autoencoder.load(directory)
    intervals = propose_labels(decode_spectrum(ae, n), min_similarity)
    header = {
        "kernel_shape": list(ae.kernel_shape),
        "generated_by": "kernels_lib.method.spectrum.propose_labels (nearest kernels_lib.method.dog template, merged classes)",
        "n_codes": int(n),
        "min_similarity": float(min_similarity),
    }
    target = directory / LABEL_FILE
    if target.exists() and not overwrite:
        target = directory / PROPOSAL_FILE
    return write_labels(target, intervals, header, overwrite=True)
