"""Autoencoder training speed: the project's `train` against a plain torch loop, in the same run.

    .venv/bin/python benchmarks/bench_autoencoder.py                      # quick: < 3 min on 2 quiet cores
    .venv/bin/python benchmarks/bench_autoencoder.py --samples 1048576 --repeats 3 --threads 1 2

For each configuration (batch size × threads; by default the package's defaults and the old
ones: batches of 256 on one thread) it trains the same architecture (512-256-128-64 unless
--hidden) with the same loss on the same random kernels, twice per repeat, alternating:

* plain: the 20-line loop anyone would write (a permutation per pass, `data[perm[i:i+b]]`, Adam);
* project: `kernels_lib.method.autoencoder.train` with `--samples` kernels seen and a plateau that
  cannot stop it early (its own timer, `train_seconds`: the loop without the final encoding).

It reports kernels per second of each (median over repeats), the ratio plain/project samples per
second (≥ 1/1.3 is the target: the project no slower than 1.3× the plain loop), and the achieved
GFLOP/s, counting 6 × (weights in the linear layers) FLOPs per kernel for forward and backward,
against a float32 torch.mm peak measured here on the same threads. The machine is shared: the
load average before and after is recorded; compare only ratios taken in the same run.
Writes benchmarks/results/autoencoder.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import kernels_lib  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

from kernels_lib.fileio import write_json
from kernels_lib.method import dog_bank
from kernels_lib.method.autoencoder import TRAINING_DEFAULTS, KernelAutoencoder, cosine_loss, train
from kernels_lib.preprocess import prepare

RESULTS = Path(__file__).resolve().parent / "results" / "autoencoder.json"


def plain_loop(coords: torch.Tensor, hidden, batch: int, lr: float, samples: int, seed: int = 0,
               gather_per_pass: bool = False, deterministic: bool = False) -> float:
    """Seconds the plain loop takes for `samples` kernels seen. Ablations: `gather_per_pass` shuffles
    the corpus once per pass and slices it (the project's way) instead of indexing every batch;
    `deterministic` turns on torch.use_deterministic_algorithms (the project trains so)."""
    torch.manual_seed(seed)
    model = KernelAutoencoder(coords.shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n, seen = len(coords), 0
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    start = time.perf_counter()
    while seen < samples:
        perm = torch.randperm(n)
        data = coords[perm] if gather_per_pass else coords
        for i in range(0, n, batch):
            x = data[i:i + batch] if gather_per_pass else coords[perm[i:i + batch]]
            loss = cosine_loss(x, model(x))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(x)
            if seen >= samples:
                break
    seconds = time.perf_counter() - start
    torch.use_deterministic_algorithms(before)
    return seconds


def project_loop(prep, hidden, batch: int, lr: float, samples: int, threads: int) -> tuple[float, int]:
    """Seconds of the project's training loop and the kernels it saw (whole batches of a window)."""
    ae = train(prep, hidden=hidden, lr=lr, batch_size=batch, window=samples, max_samples=samples, patience=10,
               num_threads=threads, device="cpu", progress=False)
    return ae.provenance["train_seconds"], ae.provenance["samples_seen"]


def matmul_gflops(threads: int, size: int = 2048, seconds: float = 2.0) -> float:
    """Float32 torch.mm throughput on `threads` threads: the peak to compare with."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel-size", type=int, default=7)
    ap.add_argument("--n", type=int, default=100_000, help="random kernels in the corpus (default 100,000)")
    ap.add_argument("--samples", type=int, default=262_144, help="kernels seen per measurement (default 262,144)")
    ap.add_argument("--repeats", type=int, default=2, help="measurements of each loop per configuration")
    ap.add_argument("--hidden", type=int, nargs="+", default=[512, 256, 128, 64])
    ap.add_argument("--configs", nargs="+", default=None, metavar="BATCH:LR:THREADS",
                    help="configurations (default: the package's defaults on every core, and 256:0.001:1, "
                         "the old defaults)")
    ap.add_argument("--ablation", action="store_true",
                    help="also time the plain loop's variants (gather per pass, deterministic) at the last config")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from kernels_lib.method.ae_loop import default_threads

    cores = default_threads()
    configs = args.configs or [f"{TRAINING_DEFAULTS['batch_size']}:{TRAINING_DEFAULTS['lr']}:{cores}", "256:0.001:1"]
    load_before = os.getloadavg()
    prep = prepare(dog_bank.random_kernels(args.kernel_size, args.n, seed=0))
    coords = torch.as_tensor(prep.coords, dtype=torch.float32)
    hidden = tuple(args.hidden)
    linear_weights = sum(m.weight.numel() for m in KernelAutoencoder(coords.shape[1], hidden).modules()
                         if isinstance(m, torch.nn.Linear))
    flops_per_sample = 6 * linear_weights
    rows = []
    for spec in configs:
        batch, lr, threads = spec.split(":")
        batch, lr, threads = int(batch), float(lr), int(threads)
        peak = matmul_gflops(threads)
        plain_rate, project_rate = [], []
        for _ in range(args.repeats):
            torch.set_num_threads(threads)
            plain_rate.append(args.samples / plain_loop(coords, hidden, batch, lr, args.samples))
            seconds, seen = project_loop(prep, hidden, batch, lr, args.samples, threads)
            project_rate.append(seen / seconds)
        plain, project = statistics.median(plain_rate), statistics.median(project_rate)
        row = {"batch_size": batch, "lr": lr, "threads": threads,
               "plain_samples_per_s": round(plain, 1), "project_samples_per_s": round(project, 1),
               "project_time_over_plain": round(plain / project, 3),
               "plain_all": [round(r, 1) for r in plain_rate], "project_all": [round(r, 1) for r in project_rate],
               "project_gflops": round(project * flops_per_sample / 1e9, 2),
               "plain_gflops": round(plain * flops_per_sample / 1e9, 2),
               "matmul_peak_gflops": round(peak, 2),
               "project_share_of_peak": round(project * flops_per_sample / 1e9 / peak, 3),
               "load_after": [round(v, 2) for v in os.getloadavg()]}
        rows.append(row)
        print(f"batch {batch:5d} lr {lr:g} threads {threads}: plain {plain:9.0f}/s  project {project:9.0f}/s  "
              f"project time / plain {row['project_time_over_plain']:.2f}  {row['project_gflops']:.1f} GFLOP/s of "
              f"{peak:.1f} mm peak  (load {row['load_after'][0]:.1f})", flush=True)
    ablation = None
    if args.ablation:
        batch, lr, threads = rows[-1]["batch_size"], rows[-1]["lr"], rows[-1]["threads"]
        torch.set_num_threads(threads)
        variants = {"plain: index every batch": {}, "plain: one gather per pass": {"gather_per_pass": True},
                    "plain: deterministic algorithms": {"deterministic": True}}
        ablation = {"batch_size": batch, "threads": threads, "samples_per_s": {}}
        for name, kw in variants.items():
            rate = statistics.median(args.samples / plain_loop(coords, hidden, batch, lr, args.samples, **kw)
                                     for _ in range(args.repeats))
            ablation["samples_per_s"][name] = round(rate, 1)
            print(f"ablation, batch {batch}, {threads} threads, {name}: {rate:.0f}/s", flush=True)
        ablation["load_after"] = [round(v, 2) for v in os.getloadavg()]
    base = next((r for r in rows if (r["batch_size"], r["threads"]) == (256, 1)), None)
    result = {
        "what": "kernels seen per second in autoencoder training: kernels_lib train vs a plain torch loop, same run",
        "kernel_size": args.kernel_size, "hidden": list(hidden), "corpus": f"dog_bank.random_kernels({args.kernel_size}, "
        f"{args.n}, seed=0)", "samples_per_measurement": args.samples, "repeats": args.repeats,
        "flops_per_sample": flops_per_sample, "flops_counted_as": "6 x weights of the linear layers (forward + backward)",
        "target": "project_time_over_plain <= 1.3",
        "cores": cores, "cpu_count": os.cpu_count(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "machine": platform.platform(),
        "torch_version": torch.__version__, "load_before": [round(v, 2) for v in load_before],
        "speedup_of_each_config_over_old_defaults": {f"{r['batch_size']}:{r['lr']}:{r['threads']}": round(
            r["project_samples_per_s"] / base["project_samples_per_s"], 2) for r in rows} if base else None,
        "results": rows,
        "ablation": ablation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
