"""The direct fit to the DoG family (`kernels_lib.analysis.fit`): the fast path on a large corpus, the plain
reference on a sample of it, in one run.

    .venv/bin/python benchmarks/bench_fit.py                    # 1,000,000 7×7 kernels; reference on 1,000
    .venv/bin/python benchmarks/bench_fit.py --n 100000 --k 5   # a quick run

Kernels: most drawn from the family (random kind, σ, θ, sub-pixel centre, sign, scale and offset)
with Gaussian noise at a signal-to-noise ratio log-uniform in [1, 16], the rest i.i.d. Gaussian.
`fast` fits all of them (float32 dictionary search, vectorised Levenberg–Marquardt);
`reference` (float64 brute-force search, scipy's least_squares kernel by kernel) fits the first
`--n-reference` of them, and its time is extrapolated to the whole corpus. Prints and writes
wall and CPU times, the speed-up, peak memory and how the two agree on the shared sample to
benchmarks/results/fit.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
from pathlib import Path

import numpy as np

from bench_classify import measure
from kernels_lib.analysis import fit
from kernels_lib.fileio import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "fit.json"
KINDS = ("dog", "d1", "ridge", "saddle", "cross")


def corpus(k: int, n: int, random_fraction: float, seed: int) -> np.ndarray:
    """n float32 kernels [n, k, k]: noisy family members a·f + b, and i.i.d. Gaussian ones, shuffled."""
    rng = np.random.default_rng(seed)
    n_random = int(round(n * random_fraction))
    m = n - n_random
    kinds = rng.choice(KINDS, m)
    out = np.empty((n, k, k), dtype=np.float32)
    for kind in KINDS:
        rows = np.flatnonzero(kinds == kind)
        sigma = rng.uniform(0.35, 0.2 * k, len(rows)) if kind == "cross" else \
            np.exp(rng.uniform(np.log(0.55), np.log(0.35 * k), len(rows)))
        clean = fit.render(kind, k, sigma, rng.uniform(0, 360, len(rows)), rng.uniform(-0.6, 0.6, len(rows)),
                           rng.uniform(-0.6, 0.6, len(rows)), rng.choice([-1.0, 1.0], len(rows)),
                           rng.choice([0.0, 1.0], len(rows)))
        flat = clean.reshape(len(rows), -1)
        flat = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)
        snr = np.exp(rng.uniform(0.0, np.log(16.0), len(rows)))[:, None]
        noisy = flat + rng.standard_normal(flat.shape) / snr
        out[rows] = (rng.uniform(0.01, 1.0, (len(rows), 1)) * noisy + rng.normal(0, 0.05, (len(rows), 1))).reshape(-1, k, k)
    out[m:] = rng.standard_normal((n_random, k, k))
    return out[rng.permutation(n)]


def agreement(fast, ref) -> dict:
    """How the fast fit of the shared sample compares with the reference's."""
    same = (fast["kind"].to_numpy() == ref["kind"].to_numpy())
    d_cos = fast["cosine"].to_numpy() - ref["cosine"].to_numpy()
    oriented = same & fast["kind"].isin(list(fit.THETA_PERIOD)).to_numpy()
    period = fast["kind"][oriented].map(fit.THETA_PERIOD).to_numpy()
    d_theta = np.mod(fast["theta"].to_numpy()[oriented] - ref["theta"].to_numpy()[oriented], period)
    d_theta = np.minimum(d_theta, period - d_theta)
    scaled = same & fast["sigma"].notna().to_numpy()
    sigma_ratio = fast["sigma"].to_numpy()[scaled] / ref["sigma"].to_numpy()[scaled]
    return {
        "kinds_equal": float(same.mean()),
        "merged_labels_equal": float(np.mean(fast["merged"].to_numpy() == ref["merged"].to_numpy())),
        "cosine_fast_minus_reference": {"mean": float(np.nanmean(d_cos)), "min": float(np.nanmin(d_cos)),
                                        "p01": float(np.nanpercentile(d_cos, 1)), "max": float(np.nanmax(d_cos))},
        "share_fast_within_0.001_of_reference_or_better": float(np.nanmean(d_cos >= -1e-3)),
        "theta_abs_diff_deg": {"median": float(np.median(d_theta)), "p95": float(np.percentile(d_theta, 95)),
                               "max": float(d_theta.max())} if len(d_theta) else None,
        "sigma_ratio": {"median": float(np.median(sigma_ratio)), "p05": float(np.percentile(sigma_ratio, 5)),
                        "p95": float(np.percentile(sigma_ratio, 95))} if len(sigma_ratio) else None,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="kernels fitted by the fast path")
    p.add_argument("--k", type=int, default=7, help="kernel size")
    p.add_argument("--n-reference", type=int, default=1000, help="kernels fitted by the reference too")
    p.add_argument("--random-fraction", type=float, default=0.1, help="share of i.i.d. Gaussian kernels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=20000)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    x = corpus(args.k, args.n, args.random_fraction, args.seed)
    print(f"{args.n:,} {args.k}×{args.k} kernels ({args.random_fraction:.0%} i.i.d. random); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    dictionary, t_dict, c_dict, _ = measure(lambda: fit.build_dictionary(args.k))
    print(f"dictionary: {len(dictionary):,} templates in {t_dict:.2f} s wall, {c_dict:.2f} s CPU")
    fit.fit_kernels(x[:2000], dictionary)                                   # warm-up: BLAS buffers, page faults
    fast, wall, cpu, peak = measure(lambda: fit.fit_kernels(x, dictionary, chunk=args.chunk, progress=True))
    print(f"fast       wall {wall:8.1f} s  cpu {cpu:8.1f} s  peak +{peak:5.0f} MiB  "
          f"({1e6 * cpu / args.n:.0f} µs CPU per kernel)")
    n_ref = min(args.n_reference, args.n)
    ref, r_wall, r_cpu, r_peak = measure(lambda: fit.fit_kernels(x[:n_ref], dictionary, method="reference"))
    per_kernel_wall, per_kernel_cpu = r_wall / n_ref, r_cpu / n_ref
    print(f"reference  wall {r_wall:8.1f} s  cpu {r_cpu:8.1f} s  on {n_ref:,} kernels "
          f"({1e3 * per_kernel_cpu:.1f} ms CPU per kernel; {per_kernel_cpu * args.n / 60:.0f} min CPU for all {args.n:,})")
    agree = agreement(fast.iloc[:n_ref].reset_index(drop=True), ref)
    report = {
        "n": args.n, "k": args.k, "n_reference": n_ref, "random_fraction": args.random_fraction, "seed": args.seed,
        "chunk": args.chunk, "dictionary_templates": len(dictionary), "dictionary_wall_s": t_dict,
        "cpus": os.cpu_count(), "load_average_end": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(), "numpy": np.__version__,
        "input_mib": x.nbytes / 2**20, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fast": {"wall_s": wall, "cpu_s": cpu, "peak_extra_rss_mib": peak, "cpu_us_per_kernel": 1e6 * cpu / args.n,
                 "clustered_fraction_paper_threshold": float(np.mean(
                     (1 - fast["cosine"]) < fit.paper_threshold(args.k))) if args.k in (5, 7) else None,
                 "kinds": fast["kind"].value_counts().to_dict()},
        "reference": {"wall_s": r_wall, "cpu_s": r_cpu, "peak_extra_rss_mib": r_peak,
                      "cpu_ms_per_kernel": 1e3 * per_kernel_cpu,
                      "extrapolated_cpu_s_for_n": per_kernel_cpu * args.n,
                      "extrapolated_wall_s_for_n": per_kernel_wall * args.n},
        "speedup_cpu_per_kernel": per_kernel_cpu / (cpu / args.n),
        "speedup_wall_per_kernel": per_kernel_wall / (wall / args.n),
        "agreement_on_reference_sample": agree,
    }
    print(f"speed-up per kernel: ×{report['speedup_cpu_per_kernel']:.0f} CPU, ×{report['speedup_wall_per_kernel']:.0f} wall; "
          f"on the shared {n_ref:,}: kinds equal {agree['kinds_equal']:.4f}, merged labels equal "
          f"{agree['merged_labels_equal']:.4f}, fast cosine within 0.001 of the reference or better "
          f"{agree['share_fast_within_0.001_of_reference_or_better']:.4f}")
    write_json(args.out, report)
    print(f"wrote {args.out} (max RSS {report['max_rss_mib']:.0f} MiB)")
    return report


if __name__ == "__main__":
    main()
