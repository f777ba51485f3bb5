"""Fast exact nearest-code search vs the paper's brute force, on one corpus, in one run.

    .venv/bin/python benchmarks/bench_classify.py                      # 1,000,000 kernels, 10,000 codes
    .venv/bin/python benchmarks/bench_classify.py --n 100000 --codes 2000
    .venv/bin/python benchmarks/bench_classify.py --autoencoder data/autoencoders/7x7

The decoded curve is a smooth synthetic one (kernels_lib.classify.synthetic_curve) unless
--autoencoder names a trained autoencoder directory, whose decoder then gives the curve (and its
labels.yaml the labels). Kernels, in hyperplane coordinates (d = k² − 1): most near the curve
(noise drawn per kernel so dissimilarities spread around the threshold, as trained kernels
do), the rest i.i.d. Gaussian. Prints times (wall and CPU), ratios, agreement and peak memory,
and writes them to benchmarks/results/classify.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import threading
import time
from pathlib import Path

import numpy as np

from kernels_lib import classify as C
from kernels_lib import search as S, synthetic, vocab

RESULTS = Path(__file__).resolve().parent / "results" / "classify.json"
TIE = 1e-12
#: Synthetic label intervals: a repeated label, gaps ("other") between some.
INTERVALS = [(0.0, 0.12, "on"), (0.15, 0.3, "off"), (0.3, 0.45, "on-dx"), (0.5, 0.62, "on"),
             (0.62, 0.7, "off-dy"), (0.75, 0.9, "on-cross"), (0.9, 1.0, "off")]


def synthetic_labels(m: int) -> np.ndarray:
    z = np.linspace(0.0, 1.0, m)
    out = np.full(m, "other", dtype=object)
    for lo, hi, name in INTERVALS:
        out[(z >= lo) & ((z < hi) | (hi == 1.0))] = name
    return out.astype(str)


def decoder_curve(directory: Path, m: int):
    """Decoded kernels of m equally spaced codes (hyperplane coordinates) and their labels."""
    from kernels_lib import spectrum
    from kernels_lib.autoencoder import Autoencoder
    from kernels_lib.preprocess import to_hyperplane

    ae = Autoencoder.load(directory)
    codes = np.linspace(0.0, 1.0, m)
    decoded = to_hyperplane(ae.decode(codes).reshape(m, -1), ae.basis)
    label_file = directory / spectrum.LABEL_FILE
    labels = spectrum.code_labels(label_file, codes) if label_file.is_file() else synthetic_labels(m)
    return decoded, labels, f"autoencoder {directory}" + ("" if label_file.is_file() else " (synthetic labels)")


def _rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(fn):
    """(result, wall s, CPU s, peak extra resident MiB) of fn().

    Memory is sampled from /proc every 20 ms by a thread rather than traced with tracemalloc,
    which would slow the many small allocations of the fast search and distort its timing.
    """
    gc.collect()
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    done.set()
    thread.join()
    return out, wall, cpu, max(peak[0], _rss_mib()) - base


def agreement(x, unit_codes, got, ref) -> dict:
    """How a result (code_index, dissimilarity, label, clustered) compares with the reference."""
    sure = got.get("exact", np.ones(len(x), dtype=bool))  # codes are compared only where exact
    differ = np.flatnonzero((got["code_index"] != ref["code_index"]) & sure)
    xu = x[differ] / np.linalg.norm(x[differ], axis=1, keepdims=True)
    gap = np.einsum("ij,ij->i", xu, unit_codes[ref["code_index"][differ]]) - \
        np.einsum("ij,ij->i", xu, unit_codes[got["code_index"][differ]])
    return {
        "labels_equal": float(np.mean(got["label"] == ref["label"])),
        "clustered_equal": float(np.mean(got["clustered"] == ref["clustered"])),
        "codes_compared": int(sure.sum()),
        "codes_equal": float(np.mean(got["code_index"][sure] == ref["code_index"][sure])) if sure.any() else None,
        "codes_equal_or_tied": float(1 - np.sum(gap > TIE) / sure.sum()) if sure.any() else None,
        "n_codes_differ": int(len(differ)),
        "n_codes_worse_than_tie": int(np.sum(gap > TIE)),
        "max_similarity_gap": float(gap.max(initial=0.0)),
        "max_abs_dissimilarity_diff": float(np.abs(got["dissimilarity"] - ref["dissimilarity"])[sure].max(initial=0.0)),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="kernels")
    p.add_argument("--codes", type=int, default=10_000, help="decoded codes M")
    p.add_argument("--dim", type=int, default=48, help="coordinates per kernel (48 = 7×7)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-fraction", type=float, default=0.1, help="share of i.i.d. Gaussian kernels")
    p.add_argument("--noise", type=float, nargs=2, default=(0.2, 1.1), help="noise range of near-curve kernels")
    p.add_argument("--threshold", type=float, default=vocab.PAPER_THRESHOLDS[7])
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--workers", type=int, default=None, help="threads of the fast search (default: CPU count)")
    p.add_argument("--autoencoder", type=Path, default=None, help="trained autoencoder directory for the curve")
    p.add_argument("--warmup", type=int, default=20_000, help="kernels run through each method untimed first")
    p.add_argument("--skip-float32", action="store_true", help="do not time the float32 brute force")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    if args.autoencoder is not None:
        curve, labels, source = decoder_curve(args.autoencoder, args.codes)
    else:
        curve, labels, source = synthetic.synthetic_curve(args.codes, args.dim, seed=args.seed), synthetic_labels(args.codes), "synthetic curve"
    d = curve.shape[1]
    n_random = int(round(args.n * args.random_fraction))
    noise = rng.uniform(*args.noise, args.n - n_random)
    unit_curve = curve / np.linalg.norm(curve, axis=1, keepdims=True)
    x = np.vstack([synthetic.kernels_near_curve(unit_curve, args.n - n_random, noise, seed=args.seed + 1),
                   rng.standard_normal((n_random, d))])
    x = x[rng.permutation(len(x))]
    print(f"{args.n:,} kernels (d={d}, {n_random:,} random) against {args.codes:,} codes from the {source}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    def as_dict(r):
        return {"code_index": r.code_index, "dissimilarity": r.dissimilarity, "label": r.label,
                "clustered": r.clustered, "exact": r.exact}

    runs = {}
    index, t_build, c_build, _ = measure(lambda: S.CurveIndex.build(curve))
    print(f"index build: {t_build:.2f} s wall, {c_build:.2f} s CPU ({len(index.coarse)} coarse / {len(index.fine)} fine anchors)")

    def fast(xs, need_exact=True):
        return C.label_kernels(xs, index, labels, args.threshold, need_exact_code=need_exact, chunk=args.chunk, workers=args.workers)

    def brute32(xs):
        idx, dis = S.nearest_code_reference(xs, index.unit, dtype=np.float32)
        ok = dis < args.threshold
        return {"code_index": idx, "dissimilarity": dis, "label": np.where(ok, labels[idx], vocab.UNCLUSTERED), "clustered": ok}

    methods = [
        ("fast", lambda xs: as_dict(fast(xs))),
        ("fast_labels_only", lambda xs: as_dict(fast(xs, need_exact=False))),
        ("reference", lambda xs: as_dict(C.label_kernels(xs, index, labels, args.threshold, method="reference"))),
    ] + ([] if args.skip_float32 else [("reference_float32", brute32)])
    for name, fn in methods:
        fn(x[:args.warmup])  # first-touch page faults, thread start-up, BLAS buffers
        res, wall, cpu, peak = measure(lambda: fn(x))
        runs[name] = {"wall_s": wall, "cpu_s": cpu, "peak_extra_rss_mib": peak, "result": res,
                      "clustered_fraction": float(res["clustered"].mean())}
        if "exact" in res:
            runs[name]["exact_fraction"] = float(res["exact"].mean())
        print(f"{name:18s} wall {wall:8.2f} s  cpu {cpu:8.2f} s  peak +{peak:6.0f} MiB  clustered {res['clustered'].mean():.4f}")

    ref = runs["reference"]["result"]
    report = {
        "source": source, "n": args.n, "codes": args.codes, "dim": d, "random_fraction": args.random_fraction,
        "noise": list(args.noise), "threshold": args.threshold, "seed": args.seed, "chunk": args.chunk,
        "workers": args.workers or os.cpu_count(), "cpus": os.cpu_count(), "load_average_end": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(), "numpy": np.__version__,
        "index_build_wall_s": t_build, "index_build_cpu_s": c_build, "input_mib": x.nbytes / 2**20, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": {},
    }
    for name, r in runs.items():
        entry = {k: v for k, v in r.items() if k != "result"}
        if name != "reference":
            entry["speedup_wall_vs_reference"] = runs["reference"]["wall_s"] / r["wall_s"]
            entry["speedup_cpu_vs_reference"] = runs["reference"]["cpu_s"] / r["cpu_s"]
            if "reference_float32" in runs and name != "reference_float32":
                entry["speedup_wall_vs_float32_brute_force"] = runs["reference_float32"]["wall_s"] / r["wall_s"]
                entry["speedup_cpu_vs_float32_brute_force"] = runs["reference_float32"]["cpu_s"] / r["cpu_s"]
            if name.startswith("fast"):  # the index is built once per decoder; here is the ratio with it
                entry["speedup_wall_vs_reference_incl_index_build"] = runs["reference"]["wall_s"] / (r["wall_s"] + t_build)
            entry["agreement_with_reference"] = agreement(x, index.unit, r["result"], ref)
        report["runs"][name] = entry
    for name, e in report["runs"].items():
        if name == "reference":
            continue
        a = e["agreement_with_reference"]
        ratios = f"×{e['speedup_wall_vs_reference']:.1f} wall, ×{e['speedup_cpu_vs_reference']:.1f} CPU vs reference"
        if "speedup_wall_vs_float32_brute_force" in e:
            ratios += f"; ×{e['speedup_wall_vs_float32_brute_force']:.1f} wall, ×{e['speedup_cpu_vs_float32_brute_force']:.1f} CPU vs float32 brute force"
        print(f"{name}: {ratios}\n    labels equal {a['labels_equal']:.6f}, clustered equal {a['clustered_equal']:.6f}, "
              f"codes equal {a['codes_equal']:.6f} of {a['codes_compared']} exact ones "
              f"({a['n_codes_differ']} differ, {a['n_codes_worse_than_tie']} of them not tied in float64)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"max RSS {report['max_rss_mib']:.0f} MiB; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
