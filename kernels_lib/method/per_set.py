"""The paper's method on a model set: which autoencoder classifies each kernel size, and why.

The paper trains one autoencoder per kernel size on the very kernels it then analyses (over a
million each, §4.1) and labels that autoencoder's spectrum. This module applies the same rule
to any model set: a kernel size with at least `MIN_TRAINED_KERNELS` trained (non-degenerate,
non-twin) kernels in the set's database gets its own autoencoder, trained on those kernels
(notebook 05) and labelled automatically (notebook 06); a size with fewer falls back to the
reference autoencoder shipped in data/autoencoders. `choose` says which one classifies each size
(notebook 07) and `describe` puts it into words for every figure and table.

Why 20,000: below that, a 1-D code is fitted to a few hundred kernels of one or two networks
(the offline set has 384 trained 7×7 kernels, all from one text detector), and its spectrum
shows those networks' quirks rather than the family of patterns the paper asks about; the
offline set's 59,408 trained 5×5 kernels clear it, its 7×7 kernels do not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import corpus, spectrum
from ..database import store
from .autoencoder import PROVENANCE_FILE
from ..paths import CLASSIFICATION_DIR, REFERENCE_AUTOENCODERS
from ..vocab import random_init_mask

#: A kernel size gets its own autoencoder when the set holds at least this many trained kernels of it.
MIN_TRAINED_KERNELS = 20_000
OWN = "own"
REFERENCE = "reference"


def autoencoders_dir(model_set: str, classification_dir: Path | str = CLASSIFICATION_DIR) -> Path:
    """<classification_dir>/<model set>/autoencoders: where a set's own autoencoders live (generated)."""
    return Path(classification_dir) / model_set / "autoencoders"


def trained_counts(db, kernel_sizes) -> dict[int, int]:
    """Trained (not random-init twin), non-degenerate k×k kernels per size in a kernel database."""
    meta = store.read_kernels(db, kernel_sizes=list(kernel_sizes), columns=["weights_tag", "kh", "kw", "degenerate"])
    usable = meta[~random_init_mask(meta["weights_tag"]) & ~meta["degenerate"] & (meta["kh"] == meta["kw"])]
    counts = usable["kh"].value_counts()
    return {int(k): int(counts.get(k, 0)) for k in kernel_sizes}


def plan(db, kernel_sizes=(5, 7), min_trained: int = MIN_TRAINED_KERNELS) -> pd.DataFrame:
    """Per kernel size: how many trained kernels the set has, and whether it gets its own autoencoder."""
    counts = trained_counts(db, kernel_sizes)
    return pd.DataFrame([{"kernel_size": k, "trained_kernels": n,
                          "autoencoder": OWN if n >= min_trained else REFERENCE} for k, n in counts.items()])


def checkpoint_file(out_dir, kernel_size: int) -> Path:
    """`out_dir`/.<k>x<k>.checkpoint: the training checkpoint of the set's own k×k autoencoder, beside the
    folder it is saved to. There because notebook 05 knows that folder (and not the runner's build folder),
    so a rerun with the same parameters finds it whoever runs it; hidden, so that the `figures` run
    manifest never counts it as an output; outside the autoencoder's folder, which is replaced whole."""
    return Path(out_dir) / f".{kernel_size}x{kernel_size}.checkpoint"


def train_own(db, kernel_size: int, out_dir, max_kernels: int | None = None, seed: int = 0, **settings):
    """Train the set's own k×k autoencoder on its trained kernels (twins left out) and save it in
    `out_dir`/<k>x<k>, replacing an older one (whose label files go with it). `max_kernels`: a seeded
    random subset for very large sets (the paper used all). Other keywords go to `autoencoder.train`,
    e.g. `checkpoint=checkpoint_file(out_dir, k)` so that a killed run continues from its last window.
    Returns the `autoencoder.Autoencoder`."""
    target = Path(out_dir) / f"{kernel_size}x{kernel_size}"
    return corpus.train_from_db(kernel_size, db, target, overwrite=True, max_kernels=max_kernels, seed=seed,
                                note="the model set's own trained kernels (the paper's method)", **settings)


@dataclass(frozen=True)
class Choice:
    """The autoencoder that classifies one kernel size of a set, and what it learnt from."""

    kernel_size: int
    directory: Path
    kind: str            # "own" or "reference"
    corpus: dict         # the training corpus recorded in its provenance

    @property
    def what(self) -> str:
        """"the set's own autoencoder, trained on its 59,408 trained kernels" (for titles)."""
        return describe(self).split(": ", 1)[1]

    @property
    def description(self) -> str:
        """"5×5: " followed by `what`."""
        return describe(self)

    def record(self) -> dict:
        """The choice as plain data (for results files and notebooks' JSON)."""
        return {"kernel_size": self.kernel_size, "directory": str(self.directory), "kind": self.kind,
                "corpus": self.corpus, "description": self.description}


def _corpus(directory: Path) -> dict:
    try:
        return json.loads((directory / PROVENANCE_FILE).read_text()).get("corpus") or {}
    except (OSError, ValueError):
        return {}


def choose(own_dir, kernel_sizes=(5, 7), reference=REFERENCE_AUTOENCODERS) -> dict[int, Choice]:
    """For each size: the set's own autoencoder when `own_dir`/<k>x<k> holds one (notebook 05 trained
    it), else the reference autoencoder of that size (always the reference when `own_dir` is None)."""
    out = {}
    for k in kernel_sizes:
        own = Path(own_dir) / f"{k}x{k}" if own_dir is not None else None
        if own is not None and (own / PROVENANCE_FILE).is_file():
            out[k] = Choice(k, own, OWN, _corpus(own))
        elif k in reference:
            out[k] = Choice(k, Path(reference[k]), REFERENCE, _corpus(Path(reference[k])))
    return out


def label_own(choices: dict[int, Choice], n_codes: int = spectrum.CLASSIFY_CODES) -> dict[int, Path]:
    """Label the spectrum of every own autoencoder that has no label file yet (automatic proposal;
    a label file already there, maybe edited by hand, is kept). Returns {size: label file}."""
    out = {}
    for k, choice in choices.items():
        label_file = choice.directory / spectrum.LABEL_FILE
        if choice.kind == OWN and not label_file.is_file():
            spectrum.label_spectrum(choice.directory, n=n_codes)
        out[k] = label_file
    return out


def describe(choice: Choice) -> str:
    """"5×5: the set's own autoencoder, trained on its 59,408 trained kernels" and the like."""
    k, c = choice.kernel_size, choice.corpus
    real = c.get("real_kernels")
    synthetic = corpus.synthetic_kernels(c)
    parts = ([f"{real:,} trained kernels"] if real else []) + ([f"{synthetic:,} synthetic DoG-family kernels"]
                                                              if synthetic else [])
    learnt = " and ".join(parts) or "an unrecorded corpus"
    if choice.kind == OWN:
        return f"{k}×{k}: the set's own autoencoder, trained on its {learnt}"
    return f"{k}×{k}: the reference autoencoder, trained on {learnt}"


def classified_by(provenance: dict, kernel_size: int) -> str:
    """The words for a figure title: which autoencoder classified k×k kernels, from a results file's
    provenance (`results.read_provenance`); k-means for 3×3."""
    entry = (provenance.get("autoencoders") or {}).get(str(int(kernel_size)))
    if entry is None:
        return "k-means (Appendix N)" if int(kernel_size) == 3 else "classifier not recorded"
    return entry["description"].split(": ", 1)[-1]
