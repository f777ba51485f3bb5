"""Score a model set's own autoencoders the way the notebooks do, to compare training settings.

    .venv/bin/python benchmarks/score_own_autoencoder.py --db data/kernels/offline \\
        old=build/own_old/5x5 new=build/own_new/5x5 --out benchmarks/results/autoencoder_defaults_offline.json

For each NAME=DIR (an autoencoder saved by `per_set.train_own`, i.e. notebook 05): its spectrum is
labelled automatically (notebook 06's `spectrum.label_spectrum`, 10,000 codes), it is scored on the
independent ground truth (`analysis.groundtruth.ground_truth_bank`, 20,000 kernels at SNR 3, seed
101, scored by `analysis.evaluate.evaluate`, as the reference autoencoders' selection does), on
i.i.d. random kernels (the control), and it classifies the database's kernels of its size
(`analysis.results.classify_kernels`, notebook 07) for the % clustered per model and weights
(`analysis.tables.clustered_fraction`, Table 3). Training settings and time come from the provenance.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from kernels_lib.analysis import evaluate, groundtruth, results, tables
from kernels_lib.fileio import write_json
from kernels_lib.method import dog_bank, spectrum
from kernels_lib.method.autoencoder import Autoencoder
from kernels_lib.method.classify import autoencoder_classifier
from kernels_lib.vocab import PAPER_THRESHOLDS

SETTINGS = ("lr", "batch_size", "stopping_rule", "window", "max_samples", "max_epochs", "patience", "min_delta",
            "lr_drops", "torch_threads")


def score(directory: Path, db: Path, seed: int = 101, n: int = 20_000) -> dict:
    ae = Autoencoder.load(directory, device="cpu")
    k = ae.kernel_shape[0]
    label_file = directory / spectrum.LABEL_FILE
    if not label_file.is_file():
        spectrum.label_spectrum(directory, n=spectrum.CLASSIFY_CODES, ae=ae)
    clf = autoencoder_classifier(directory)
    bank = groundtruth.ground_truth_bank(k, n, snr=groundtruth.MODERATE_SNR, seed=seed)
    ev = evaluate.evaluate(clf, bank.kernels, bank.merged, random_kernels=dog_bank.random_kernels(k, 20_000, seed=7))
    per = ev["per_class"].set_index("class")
    classified = results.classify_kernels(db, {k: directory}, {k: PAPER_THRESHOLDS[k]}, kmeans_clusters=None,
                                          progress=False)
    fraction = tables.clustered_fraction(classified[classified["kh"] == k], paper=None)
    prov = ae.provenance
    return {
        "directory": str(directory),
        "settings": {key: prov.get(key) for key in SETTINGS},
        "samples_seen": prov.get("samples_seen", prov.get("epochs_run", 0) * prov["n_used"]),
        "epochs_run": prov["epochs_run"], "best_loss": round(prov["best_loss"], 5),
        "train_seconds": prov["train_seconds"],
        "ground_truth": {"generator": "kernels_lib.analysis.groundtruth.ground_truth_bank", "k": k, "n": n,
                         "seed": seed, "snr": groundtruth.MODERATE_SNR, "threshold": clf.threshold,
                         "accuracy_merged": round(ev["accuracy"], 4),
                         "clustered_fraction": round(ev["clustered_fraction"], 4),
                         "recall": {c: round(float(r.recall), 4) for c, r in per.iterrows() if r.support > 0},
                         "random_iid_clustered": ev["random_clustered_fraction"]},
        "clustered_pct_per_model": {f"{r.model} [{r.weights_tag}]": None if np.isnan(r.clustered_pct)
                                    else round(float(r.clustered_pct), 2) for r in fraction.itertuples()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("autoencoders", nargs="+", metavar="NAME=DIR")
    ap.add_argument("--db", type=Path, required=True, help="the set's kernel database (data/kernels/<set>)")
    ap.add_argument("--committed", type=Path, metavar="JSON",
                    help="a notebook 07 results file (figures/results/07_classify.json) whose % clustered per model "
                         "of the own autoencoder's size to compare each autoencoder with")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    out = {"load_before": [round(v, 2) for v in os.getloadavg()], "database": str(args.db), "autoencoders": {}}
    for spec in args.autoencoders:
        name, directory = spec.split("=", 1)
        out["autoencoders"][name] = row = score(Path(directory), args.db)
        print(name, row["ground_truth"]["accuracy_merged"], row["clustered_pct_per_model"], flush=True)
    if args.committed:
        rows = json.loads(args.committed.read_text())["clustered"]
        for name, row in out["autoencoders"].items():
            k = row["ground_truth"]["k"]
            committed = {f"{r['model']} [{r['weights_tag']}]": None if r["clustered_pct"] is None
                         else round(r["clustered_pct"], 2) for r in rows if r["kh"] == k}
            row["committed_clustered_pct_per_model"] = {"file": str(args.committed), "values": committed}
            row["difference_from_committed_points"] = {
                m: None if committed.get(m) is None or v is None else round(v - committed[m], 2)
                for m, v in row["clustered_pct_per_model"].items()}
    names = list(out["autoencoders"])
    if len(names) == 2:
        a, b = (out["autoencoders"][n] for n in names)
        out["difference_points"] = {
            "ground_truth_accuracy": round(100 * (b["ground_truth"]["accuracy_merged"]
                                                  - a["ground_truth"]["accuracy_merged"]), 2),
            "clustered_pct_per_model": {m: None if a["clustered_pct_per_model"][m] is None
                                        else round(b["clustered_pct_per_model"][m] - a["clustered_pct_per_model"][m], 2)
                                        for m in a["clustered_pct_per_model"]}}
    out["load_after"] = [round(v, 2) for v in os.getloadavg()]
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
