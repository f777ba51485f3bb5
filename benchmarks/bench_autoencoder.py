"""Training cost of the kernel autoencoder: seconds per epoch per 1M kernels, and peak memory.

    .venv/bin/python benchmarks/bench_autoencoder.py                  # 5×5 and 7×7, two widths
    .venv/bin/python benchmarks/bench_autoencoder.py --n 20000 --epochs 1 --sizes 7

Each configuration (kernel size × hidden widths) trains on `--n` synthetic DoG-family kernels
for `--epochs` epochs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its
own. An epoch costs the same for every kernel, so seconds per epoch per 1M kernels is the
measured time per epoch scaled linearly from `--n` to 1,000,000: an extrapolation, marked as
such in the output. Also timed: decoding the 10,000 classification codes and encoding
100,000 kernels. Writes benchmarks/results/autoencoder.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "autoencoder.json"
HIDDEN = {"256-128-64-32": (256, 128, 64, 32), "512-256-128-64": (512, 256, 128, 64)}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def _measure(k: int, hidden: str, n: int, epochs: int, batch: int, threads: int, device: str, queue) -> None:
    """One configuration, in its own process."""
    import numpy as np
    import torch

    from kernels_lib.method import dog_bank
    from kernels_lib.method.autoencoder import train
    from kernels_lib.preprocess import prepare
    from kernels_lib.method.spectrum import CLASSIFY_CODES, code_grid

    torch.set_num_threads(threads)
    bank = dog_bank.synthetic_bank(k, n, snr=(1.0, 16.0), seed=0)
    prep = prepare(bank.kernels)
    rss_before = _rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    # patience > epochs: every epoch runs, none stops early.
    ae = train(prep, hidden=HIDDEN[hidden], lr=1e-3, batch_size=batch, max_epochs=epochs, patience=epochs + 1,
               seed=0, device=device, progress=False)
    seconds = time.perf_counter() - start
    t0 = time.perf_counter()
    ae.decode(code_grid(CLASSIFY_CODES))
    decode_s = time.perf_counter() - t0
    x = np.resize(prep.coords, (100_000, prep.coords.shape[1]))
    t0 = time.perf_counter()
    ae.encode_coords(x)
    encode_s = time.perf_counter() - t0
    queue.put({
        "kernel_size": k,
        "hidden": hidden,
        "parameters": int(sum(p.numel() for p in ae.module.parameters())),
        "n_kernels_measured": n,
        "epochs_measured": epochs,
        "batch_size": batch,
        "seconds_total": round(seconds, 3),
        "seconds_per_epoch_measured": round(seconds / epochs, 3),
        "seconds_per_epoch_per_1M_kernels_extrapolated": round(seconds / epochs * 1e6 / n, 1),
        "best_loss": round(ae.provenance["best_loss"], 4),
        "peak_rss_mib": round(_rss_mib(), 1),
        "rss_before_training_mib": round(rss_before, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
        "decode_10000_codes_s": round(decode_s, 4),
        "encode_100000_kernels_s": round(encode_s, 4),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="kernels trained on per configuration")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 7])
    ap.add_argument("--hidden", nargs="+", default=list(HIDDEN), choices=list(HIDDEN))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ctx = mp.get_context("spawn")
    rows = []
    for k in args.sizes:
        for hidden in args.hidden:
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(k, hidden, args.n, args.epochs, args.batch, args.threads,
                                                      device, queue))
            proc.start()
            row = queue.get()
            proc.join()
            rows.append(row)
            print(f"{k}x{k} {hidden:15s} {row['parameters']:7d} params: {row['seconds_per_epoch_measured']:7.2f} s/epoch "
                  f"on {args.n} kernels -> {row['seconds_per_epoch_per_1M_kernels_extrapolated']:8.1f} s/epoch per 1M "
                  f"(extrapolated); peak RSS {row['peak_rss_mib']:.0f} MiB; decode 10k codes "
                  f"{row['decode_10000_codes_s']:.3f} s; encode 100k {row['encode_100000_kernels_s']:.3f} s", flush=True)
    result = {
        "what": "kernel autoencoder training cost; per-1M figures are linear extrapolations from the measured run",
        "device": device,
        "torch_threads": args.threads,
        "cpu_count": mp.cpu_count(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "torch_version": torch.__version__,
        "note": "measured on a shared machine: other processes may have competed for the CPU",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
