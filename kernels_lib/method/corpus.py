"""Training corpora of the autoencoders: the trained kernels of one size from a kernel database
(random-init twins left out: they are the untrained control) and/or a synthetic DoG-family
bank, with a description of what went in for the autoencoder's provenance.
"""
from __future__ import annotations

import numpy as np

from . import autoencoder, dog_bank
from ..database import store
from ..vocab import random_init_mask


def corpus_kernels(kernel_size: int, db=None, models=None, synthetic: dict | list[dict] | None = None,
                   include_random_init: bool = False, max_kernels: int | None = None,
                   seed: int = 0) -> tuple[np.ndarray, dict]:
    """The training corpus of one kernel size, and its description for the provenance.

    db: a kernel database (file or directory, `kernels_lib.database.store`); its random-init twins are
    left out unless `include_random_init` (they are the untrained control, not trained kernels).
    max_kernels: keep a random subset (seeded) of at most this many database kernels, for sets too
    large to train on whole on a CPU. synthetic: keyword arguments of `kernels_lib.dog_bank.synthetic_bank`
    (n, snr, seed, …) to add a labelled synthetic DoG-family bank, or a list of them to add several
    (in that order; e.g. a main bank and a smaller one of the shapes it has too few of). At least one
    of db and synthetic is needed.
    """
    if db is None and not synthetic:
        raise ValueError("give a kernel database (db=...) and/or a synthetic bank (synthetic={'n': ..., 'snr': ...})")
    parts, corpus = [], {"kernel_size": [kernel_size, kernel_size]}
    if db is not None:
        meta, arr = store.read_kernel_array(db, kernel_size, models=models, columns=["model", "weights_tag"])
        twin = random_init_mask(meta["weights_tag"])
        if not include_random_init:
            meta, arr = meta[~twin], arr[~twin]
        if len(arr) == 0:
            raise ValueError(f"{db} holds no {'' if include_random_init else 'trained '}{kernel_size}×{kernel_size} kernels"
                             + (f" of models {models}" if models else ""))
        corpus["database"] = str(db)
        if max_kernels is not None and len(arr) > max_kernels:
            keep = np.sort(np.random.default_rng(seed).choice(len(arr), int(max_kernels), replace=False))
            corpus["real_kernels_available"], corpus["subset_seed"] = int(len(arr)), int(seed)
            meta, arr = meta.iloc[keep], arr[keep]
        counts = meta.groupby(["model", "weights_tag"], sort=True).size()
        corpus["real_kernels"] = int(len(arr))
        corpus["random_init_twins_left_out"] = 0 if include_random_init else int(twin.sum())
        corpus["models"] = {f"{m} [{t}]": int(c) for (m, t), c in counts.items()}
        parts.append(arr.astype(np.float32))
    if synthetic:
        described = []
        for spec in ([synthetic] if isinstance(synthetic, dict) else list(synthetic)):
            bank = dog_bank.synthetic_bank(kernel_size, **spec)
            described.append({"generator": "kernels_lib.dog_bank.synthetic_bank", "k": kernel_size, **spec,
                              "n_kernels": int(len(bank.kernels))})
            parts.append(bank.kernels.astype(np.float32))
        corpus["synthetic"] = described[0] if isinstance(synthetic, dict) else described
    return np.concatenate(parts), corpus


def train_from_db(kernel_size: int, db=None, out_dir=None, *, models=None, synthetic: dict | list[dict] | None = None,
                  include_random_init: bool = False, max_kernels: int | None = None, overwrite: bool = False,
                  note: str | None = None, seed: int = 0, **train_kwargs) -> autoencoder.Autoencoder:
    """Train the autoencoder of one kernel size on a kernel database and/or a synthetic bank.

    The corpus (models and counts, twins left out, subset, synthetic bank parameters, `note`) goes
    into the provenance; with `out_dir` the result is saved there. `seed` seeds the subset and the
    training; other keywords go to `autoencoder.train`.
    """
    kernels, corpus = corpus_kernels(kernel_size, db, models, synthetic, include_random_init, max_kernels, seed)
    if note:
        corpus["note"] = note
    ae = autoencoder.train(kernels, corpus=corpus, seed=seed, **train_kwargs)
    if out_dir is not None:
        ae.save(out_dir, overwrite=overwrite)
    return ae


def synthetic_kernels(corpus: dict) -> int | None:
    """How many synthetic kernels a corpus description of `corpus_kernels` records, over its one bank or
    several; None when it has none."""
    banks = corpus.get("synthetic") or []
    return sum(bank.get("n_kernels", 0) for bank in ([banks] if isinstance(banks, dict) else banks)) or None
