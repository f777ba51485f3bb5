"""Training speed of the default runs (kernels_lib.training.DEFAULT_RUNS): images per second, seconds per
epoch, and the time a run took to reach a given % clustered.

    .venv/bin/python benchmarks/bench_training.py                      # every default run, CPU
    .venv/bin/python benchmarks/bench_training.py --runs kaiming-7x7 --steps 50
    .venv/bin/python benchmarks/bench_training.py --device cuda        # where a GPU is present

Throughput is measured fresh: for each run's config, `--warmup` training steps, then `--steps`
timed steps (forward, backward, optimiser) on the run's own data and batch size, and one pass
over its validation set. Seconds per epoch = steps per epoch × the timed seconds per step (data
sampling included). The time to reach a % clustered is read from the committed runs
(data/training/<run>/provenance.json): the training time, on the machine that trained them, up
to the first snapshot at or above each target — None where no snapshot reached it (snapshots
are taken at chosen epochs only, so this is an upper bound at snapshot resolution).
Writes benchmarks/results/training.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"
TARGETS = (0.1, 0.2, 0.3, 0.5, 0.8)


def _throughput(name: str, config, steps: int, warmup: int, device: str) -> dict:
    import torch

    from kernels_lib import training
    from kernels_lib.training.datasets import training_data

    torch.set_num_threads(config.num_threads or torch.get_num_threads())
    data = training_data(config.data, **config.data_arguments())
    dev = torch.device(device)
    memory_format = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
    model = training.build_model(config, data.n_classes).to(dev, memory_format=memory_format)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches = data.epoch_batches(1, config.batch_size, config.seed)

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = data.epoch_batches(2, config.batch_size, config.seed)
            x, y = next(batches)
        training.training_step(model, optimiser, x.to(dev, memory_format=memory_format), y.to(dev))
        return len(y)

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start, images = time.perf_counter(), time.process_time(), 0
    for _ in range(steps):
        images += step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    t0 = time.perf_counter()
    training.evaluate(model, data, dev, memory_format=memory_format)
    validation = time.perf_counter() - t0
    steps_per_epoch = math.ceil(data.crops_per_epoch / config.batch_size)
    return {"run": name, "device": device, "threads": torch.get_num_threads(), "batch_size": config.batch_size,
            "timed_steps": steps, "images_per_second": round(images / seconds, 1),
            "cpu_seconds_per_step": round(cpu / steps, 4), "seconds_per_step": round(seconds / steps, 4),
            "steps_per_epoch": steps_per_epoch, "seconds_per_epoch": round(steps_per_epoch * seconds / steps, 2),
            "validation_seconds": round(validation, 2), "n_validation": data.n_validation,
            "epochs": config.epochs,
            "estimated_run_seconds": round(config.epochs * (steps_per_epoch * seconds / steps + validation), 1)}


def _time_to_clustered(run_dir: Path) -> dict | None:
    path = run_dir / "provenance.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    out = {}
    for entry in record["history"]:
        for size, summary in (entry.get("clustering") or {}).items():
            clustered = summary.get("clustered")
            if clustered is None:
                continue
            reached = out.setdefault(size, {f"{t:.0%}": None for t in TARGETS})
            for target in TARGETS:
                if clustered >= target and reached[f"{target:.0%}"] is None:
                    reached[f"{target:.0%}"] = {"epoch": entry["epoch"], "train_seconds": entry.get("elapsed_s", 0.0)}
    return {"recorded_on": record.get("machine"), "wall_seconds": record.get("elapsed_s"), "by_size": out}


def main(argv=None) -> dict:
    from kernels_lib import training
    from kernels_lib.fileio import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", default=sorted(training.DEFAULT_RUNS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = []
    for name in args.runs:
        config = training.DEFAULT_RUNS[name]
        row = _throughput(name, config, args.steps, args.warmup, args.device)
        row["time_to_clustered"] = _time_to_clustered(training.RUNS_DIR / name)
        results.append(row)
        print(f"{name:24s} {row['images_per_second']:8.1f} img/s  {row['seconds_per_epoch']:7.1f} s/epoch  "
              f"~{row['estimated_run_seconds'] / 60:5.1f} min/run", flush=True)
    report = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "load_average": os.getloadavg()}, "device": args.device, "results": results}
    write_json(args.out, report, indent=1)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
