"""Nearest-code search on the trained reference decoders: the exact fast search against the peers a user would pick.

    .venv/bin/python benchmarks/bench_classify.py                    # 7×7 and 5×5, 1,000,000 kernels, 10,000 codes, 3 repeats
    .venv/bin/python benchmarks/bench_classify.py --n 100000 --repeats 1 --sizes 5
    .venv/bin/python benchmarks/bench_classify.py --synthetic       # the smooth synthetic curve instead (flatters the pruning)

Needs the `[bench]` extra (faiss-cpu): pip install -e '.[bench]'.

Decoded codes: `classify.autoencoder_classifier` of data/autoencoders/{7x7,5x5} (10,000 codes,
its labels, the paper's threshold). Kernels, in hyperplane coordinates, four groups:
  real_trained   every trained kernel of that size in the offline kernel database (--db), if built;
  real_random    their random-init twins (the untrained control);
  near_curve     a decoded code plus isotropic Gaussian noise of norm drawn per kernel from
                 U(--noise), so dissimilarities spread around the threshold;
  iid            i.i.d. Gaussian vectors (--random-fraction of N), far from the curve.
near_curve fills N up; all are shuffled together. Each method runs --repeats times on all N
kernels (after a warm-up on --warmup kernels), in one process, on --workers threads:
  fast               the exact pruned search (kernels_lib.method.search), labels and codes
  fast_labels_only   the same with need_exact_code=False (labels and flags exact, codes only where needed)
  reference          the paper's brute force in float64 (BLAS)
  reference_float32  the same brute force in float32 (BLAS)
  faiss_flat         faiss IndexFlatIP, exact inner-product search in float32
  faiss_hnsw_efN     faiss IndexHNSWFlat (approximate), efSearch N
The float64 brute force runs --reference-repeats times (default once: it is the slowest, and its
answers are the ground truth, not the point). Reported per method: median (and every) wall and CPU time, the load average before and after
each repetition, ratios against the fast search and both brute forces, peak extra memory, and
how often its code is worse than the exact one (float64 similarity below the reference's by more
than 1e-12), its labels and flags differ. The fast search is also timed on each group alone
(groups smaller than --warmup are tiled up to it).
Writes benchmarks/results/classify_{k}x{k}.json (classify_synthetic_7x7.json with --synthetic).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_lib.method import classify as C
from kernels_lib import paths, vocab
from kernels_lib.method import search as S
from kernels_lib.database import store
from kernels_lib.analysis import synthetic
from kernels_lib.fileio import write_json
from kernels_lib.preprocess import prepare

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TIE = 1e-12
GROUPS = ("real_trained", "real_random", "near_curve", "iid")


def _rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(fn):
    """(result, wall s, CPU s, peak extra resident MiB, load averages before/after) of fn().

    Memory is sampled from /proc every 20 ms by a thread rather than traced with tracemalloc,
    which would slow the fast search's allocations and distort its timing.
    """
    gc.collect()
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mib())

    thread = threading.Thread(target=sample, daemon=True)
    load_before = os.getloadavg()[0]
    thread.start()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    done.set()
    thread.join()
    return out, wall, cpu, max(peak[0], _rss_mib()) - base, (load_before, os.getloadavg()[0])


# -- the kernels ---------------------------------------------------------------------------

def real_kernels(db: Path, k: int) -> dict:
    """Trained and random-init kernels of size k from an offline kernel database (hyperplane coordinates)."""
    if not Path(db).is_dir() or not store.kernel_files(db):
        return {}
    meta, arr = store.read_kernel_array(db, k, columns=["weights_tag"], include_degenerate=False)
    if len(arr) == 0:
        return {}
    random_init = vocab.random_init_mask(meta["weights_tag"])
    out = {}
    for name, mask in (("real_trained", ~random_init), ("real_random", random_init)):
        prep = prepare(arr[mask].astype(np.float64), (k, k))
        out[name] = prep.coords
    return out


def draw_kernels(decoded: np.ndarray, n: int, k: int, args) -> tuple[np.ndarray, np.ndarray, dict]:
    """N kernels [N, d] and the group of each; see the module docstring for the groups."""
    rng = np.random.default_rng(args.seed)
    d = decoded.shape[1]
    parts = real_kernels(args.db, k) if args.db is not None else {}
    parts = {name: a[rng.permutation(len(a))[: n // 4]] for name, a in parts.items()}  # real ones at most N/4 each
    parts["iid"] = rng.standard_normal((int(round(n * args.random_fraction)), d))
    n_near = n - sum(len(a) for a in parts.values())
    if n_near < 0:
        raise SystemExit(f"--n {n} is too small for {sum(len(a) for a in parts.values())} real and i.i.d. kernels")
    unit = decoded / np.linalg.norm(decoded, axis=1, keepdims=True)
    parts["near_curve"] = synthetic.kernels_near_curve(unit, n_near, rng.uniform(*args.noise, n_near), seed=args.seed + 1)
    names = [g for g in GROUPS if g in parts]
    x = np.vstack([parts[g] for g in names])
    group = np.repeat(np.arange(len(names)), [len(parts[g]) for g in names])
    order = rng.permutation(len(x))
    return x[order], np.asarray(names)[group[order]], {g: len(parts[g]) for g in names}


def decoded_codes(k: int, args):
    """(decoded codes [M, d], labels [M], threshold, description)."""
    if args.synthetic:
        d = k * k - 1
        curve = synthetic.synthetic_curve(args.codes, d, seed=args.seed)
        return curve, np.full(args.codes, "on"), vocab.paper_threshold(k), f"synthetic curve (d={d})"
    directory = paths.REFERENCE_AUTOENCODERS[k]
    clf = C.autoencoder_classifier(directory, n_codes=args.codes)
    return clf.prototypes, clf.labels, clf.threshold, f"trained decoder {directory.relative_to(paths.REPO_ROOT)}"


# -- the methods ---------------------------------------------------------------------------

def _unit32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32))


def methods(index, labels, threshold, args) -> dict:
    """name -> fn(x) returning {code_index, dissimilarity?, label, clustered, exact?}."""
    import faiss

    faiss.omp_set_num_threads(args.workers)
    codes32 = _unit32(index.unit)

    def labelled(idx, sim):
        dis = np.clip(1.0 - sim.astype(np.float64), 0.0, 2.0)
        ok = dis < threshold
        return {"code_index": idx, "dissimilarity": dis, "label": np.where(ok, labels[idx], vocab.UNCLUSTERED), "clustered": ok}

    def fast(x, need_exact=True):
        r = C.label_kernels(x, index, labels, threshold, need_exact_code=need_exact, workers=args.workers)
        return {"code_index": r.code_index, "dissimilarity": r.dissimilarity, "label": r.label,
                "clustered": r.clustered, "exact": r.exact}

    def brute(x, dtype):
        with threadpool_limits(args.workers, user_api="blas"):
            idx, dis = S.nearest_code_reference(x, index.unit, dtype=dtype)
        return labelled(idx, 1.0 - dis)

    flat = faiss.IndexFlatIP(codes32.shape[1])
    flat.add(codes32)

    def faiss_search(ix, x):
        sim, idx = ix.search(_unit32(x), 1)
        return labelled(idx[:, 0].astype(np.int64), sim[:, 0])

    out = {
        "fast": fast,
        "fast_labels_only": lambda x: fast(x, need_exact=False),
        "reference": lambda x: brute(x, np.float64),
        "reference_float32": lambda x: brute(x, np.float32),
        "faiss_flat": lambda x: faiss_search(flat, x),
    }
    for ef in args.hnsw_ef_search:
        hnsw = faiss.IndexHNSWFlat(codes32.shape[1], args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = args.hnsw_ef_construction
        hnsw.add(codes32)
        hnsw.hnsw.efSearch = ef
        out[f"faiss_hnsw_ef{ef}"] = lambda x, h=hnsw: faiss_search(h, x)
    return {name: fn for name, fn in out.items() if name in args.methods or (args.methods == ["all"])}


def quality(x, unit_codes, got, ref) -> dict:
    """How a method's answers compare with the float64 brute force."""
    sure = got.get("exact", np.ones(len(x), dtype=bool))  # codes are compared only where the method claims them
    xu = x / np.linalg.norm(x, axis=1, keepdims=True)
    differ = np.flatnonzero((got["code_index"] != ref["code_index"]) & sure)
    gap = np.einsum("ij,ij->i", xu[differ], unit_codes[ref["code_index"][differ]]) - \
        np.einsum("ij,ij->i", xu[differ], unit_codes[got["code_index"][differ]])
    worse = gap > TIE
    return {
        "codes_compared": int(sure.sum()),
        "codes_equal": float(np.mean(got["code_index"][sure] == ref["code_index"][sure])) if sure.any() else None,
        "n_worse_than_exact": int(worse.sum()),
        "worse_than_exact_fraction": float(worse.sum() / sure.sum()) if sure.any() else None,
        "max_similarity_loss": float(gap.max(initial=0.0)),
        "median_similarity_loss_where_worse": float(np.median(gap[worse])) if worse.any() else None,
        "labels_equal": float(np.mean(got["label"] == ref["label"])),
        "clustered_equal": float(np.mean(got["clustered"] == ref["clustered"])),
    }


def _median(values):
    return float(np.median(values))


def run_size(k: int, args) -> dict:
    decoded, labels, threshold, source = decoded_codes(k, args)
    x, group, group_sizes = draw_kernels(decoded, args.n, k, args)
    d = x.shape[1]
    print(f"\n{k}×{k}: {len(x):,} kernels (d={d}; {group_sizes}) against {len(decoded):,} codes of the {source}; "
          f"threshold {threshold}; {os.cpu_count()} CPUs, {args.workers} threads, load average {os.getloadavg()[0]:.1f}")
    index, t_build, c_build, _, _ = measure(lambda: S.CurveIndex.build(decoded))
    print(f"index build: {t_build:.2f} s wall, {c_build:.2f} s CPU ({len(index.coarse)} coarse / {len(index.fine)} fine anchors)")
    build_start = time.perf_counter()
    fns = methods(index, labels, threshold, args)
    peer_build_s = time.perf_counter() - build_start

    runs, results = {}, {}
    for name, fn in fns.items():
        fn(x[:args.warmup])  # compilation or cache load, first-touch page faults, thread start-up
        reps = []
        for _ in range(args.reference_repeats if name == "reference" else args.repeats):
            res, wall, cpu, peak, load = measure(lambda: fn(x))
            reps.append({"wall_s": wall, "cpu_s": cpu, "peak_extra_rss_mib": peak, "load_before": load[0], "load_after": load[1]})
            print(f"  {name:20s} wall {wall:8.2f} s  cpu {cpu:8.2f} s  peak +{peak:6.0f} MiB  load {load[0]:.1f}→{load[1]:.1f}", flush=True)
        results[name] = res
        runs[name] = {"wall_s": _median([r["wall_s"] for r in reps]), "cpu_s": _median([r["cpu_s"] for r in reps]),
                      "peak_extra_rss_mib": max(r["peak_extra_rss_mib"] for r in reps),
                      "clustered_fraction": float(res["clustered"].mean()), "repetitions": reps}
        if "exact" in res:
            runs[name]["exact_fraction"] = float(res["exact"].mean())

    ref = results["reference"]
    for name, r in runs.items():
        if name != "reference":
            r["quality_vs_reference"] = quality(x, index.unit, results[name], ref)
        r["ratios"] = {f"{other}_over_this_{t}": runs[other][f"{t}_s"] / r[f"{t}_s"]
                       for other in runs if other != name for t in ("wall", "cpu")}

    # the fast search on each group alone: are real kernels harder than the synthetic mix?
    by_group = {}
    for g in group_sizes:
        xs = x[group == g]
        if len(xs) < args.warmup:  # a few hundred real 7×7 kernels: tiled, so fixed costs do not dominate
            xs = np.resize(xs, (args.warmup, d))
        fns["fast"](xs[:args.warmup])
        times = [measure(lambda: fns["fast"](xs))[1:3] for _ in range(args.repeats)]
        dis = ref["dissimilarity"][group == g]
        by_group[g] = {
            "n": int(group_sizes[g]),
            "n_timed": int(len(xs)),
            "fast_wall_us_per_kernel": _median([w for w, _ in times]) / len(xs) * 1e6,
            "fast_cpu_us_per_kernel": _median([c for _, c in times]) / len(xs) * 1e6,
            "clustered_fraction": float(ref["clustered"][group == g].mean()),
            "dissimilarity_quantiles": {str(q): float(np.quantile(dis, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
        }
    report = {
        "kernel_size": k, "source": source, "n": len(x), "codes": len(decoded), "dim": d, "threshold": threshold,
        "groups": by_group, "noise": list(args.noise), "random_fraction": args.random_fraction, "seed": args.seed,
        "db": str(args.db) if args.db is not None else None, "repeats": args.repeats, "workers": args.workers,
        "hnsw": {"M": args.hnsw_m, "efConstruction": args.hnsw_ef_construction, "efSearch": args.hnsw_ef_search},
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(), "numpy": np.__version__,
        "index_build_wall_s": t_build, "index_build_cpu_s": c_build, "peer_index_build_wall_s": peer_build_s,
        "blocks": {"coarse_anchors": len(index.coarse), "fine_anchors": len(index.fine)},
        "input_mib": x.nbytes / 2**20, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
    }
    summarise(report)
    return report


def summarise(report: dict) -> None:
    runs = report["runs"]
    fast = runs["fast"]
    print(f"{report['kernel_size']}×{report['kernel_size']} (medians of {report['repeats']}):")
    for name, r in runs.items():
        q = r.get("quality_vs_reference", {})
        worse = q.get("worse_than_exact_fraction")
        line = (f"  {name:20s} {r['wall_s']:7.2f} s wall {r['cpu_s']:7.2f} s CPU   ×{r['wall_s'] / fast['wall_s']:5.1f} wall "
                f"×{r['cpu_s'] / fast['cpu_s']:5.1f} CPU of the fast search")
        if worse is not None:
            line += f"   worse code on {100 * worse:.2f} %, labels equal {100 * q['labels_equal']:.3f} %"
        print(line)
    for g, e in report["groups"].items():
        print(f"  fast search on {g:13s} ({e['n']:>7,}): {e['fast_cpu_us_per_kernel']:.2f} µs CPU per kernel, "
              f"{100 * e['clustered_fraction']:.1f} % clustered, median dissimilarity {e['dissimilarity_quantiles']['0.5']:.3f}")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[7, 5], choices=[5, 7])
    p.add_argument("--n", type=int, default=1_000_000, help="kernels per size")
    p.add_argument("--codes", type=int, default=10_000, help="decoded codes M")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each method (medians reported)")
    p.add_argument("--reference-repeats", type=int, default=1, help="timed runs of the float64 brute force (the slowest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", type=Path, default=paths.kernel_db_dir("offline"),
                   help="offline kernel database for the real kernels (python -m kernels_lib extract --models offline)")
    p.add_argument("--random-fraction", type=float, default=0.1, help="share of i.i.d. Gaussian kernels")
    p.add_argument("--noise", type=float, nargs=2, default=(0.2, 1.1), help="noise range of near-curve kernels")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="threads of every method")
    p.add_argument("--warmup", type=int, default=20_000, help="kernels run through each method untimed first")
    p.add_argument("--methods", nargs="+", default=["all"], help="subset of methods (reference is always run)")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--hnsw-ef-construction", type=int, default=40)
    p.add_argument("--hnsw-ef-search", type=int, nargs="+", default=[16, 64])
    p.add_argument("--synthetic", action="store_true", help="the synthetic curve instead of the trained decoders")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.methods != ["all"]:
        args.methods = sorted(set(args.methods) | {"reference", "fast"})
    reports = []
    for k in args.sizes:
        report = run_size(k, args)
        out = args.out_dir / (f"classify_synthetic_{k}x{k}.json" if args.synthetic else f"classify_{k}x{k}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, report)
        print(f"wrote {out}")
        reports.append(report)
    return reports


if __name__ == "__main__":
    main()
