"""Peak memory of loading a pretrained timm model and extracting its conv layers: timm's own loader (random init,
then the checkpoint copied in: the weights twice) against `timm_source.load_cached_once` (built on the meta
device, the file's tensors assigned: once), each in a fresh process, from the same local hub cache.

    .venv/bin/python benchmarks/bench_load_memory.py                       # convnextv2_base, 88.7 M parameters
    .venv/bin/python benchmarks/bench_load_memory.py --model convnextv2_huge.fcmae_ft_in1k --hub build/hub

The hub cache holds timm-initialised weights written by `hub_cache.write_timm_init` (no download here): the
bytes and the loading path are those of a real checkpoint. Writes benchmarks/results/load_memory.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kernels_lib.fileio import write_json
from kernels_lib.paths import BUILD_DIR

RESULTS = Path(__file__).resolve().parent / "results" / "load_memory.json"

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import timm, torch
    torch.set_num_threads(1)
    from kernels_lib.sources.hub_cache import cached_timm_weights
    from kernels_lib.sources.module import conv_layers
    from kernels_lib.sources.timm_source import _hub_offline, load_cached_once
    name, hub, how = sys.argv[1:4]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if how == "timm":
        with _hub_offline():
            model = timm.create_model(name, pretrained=True, cache_dir=hub).eval()
    else:
        model = load_cached_once(name, cached_timm_weights(hub, name))
        assert model is not None, "the cached file does not match the architecture one to one"
    layers = conv_layers(model)
    n_kernels = sum(layer.weight.size // (layer.kernel_size[0] * layer.kernel_size[1]) for layer in layers)
    touched = sum(float(abs(layer.weight).sum()) for layer in layers)   # read every conv weight, as extraction does
    print(json.dumps({"how": how, "seconds": round(time.perf_counter() - start, 2),
                      "rss_before_mib": round(before), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "parameters": sum(p.numel() for p in model.parameters()), "conv_kernels": n_kernels, "conv_abs_sum": round(touched, 3)}))
""")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="convnextv2_base.fcmae_ft_in1k")
    parser.add_argument("--hub", type=Path, default=BUILD_DIR / "bench-hub", help="local hub cache (filled if empty)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from kernels_lib.sources.hub_cache import write_timm_init

    write_timm_init(args.hub, args.model)
    env = {**os.environ, "HF_HUB_CACHE": str(args.hub), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    runs = []
    for how in ("timm", "once"):
        out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(args.hub), how], env=env,
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(runs[-1])
    timm_run, once = runs
    assert timm_run["conv_abs_sum"] == once["conv_abs_sum"], "the two paths read different weights"
    weights_mib = timm_run["parameters"] * 4 / 2**20
    report = {"model": args.model, "weights_mib_fp32": round(weights_mib), "runs": runs,
              "added_peak_mib": {r["how"]: r["peak_rss_mib"] - r["rss_before_mib"] for r in runs},
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    report["peak_ratio_timm_over_once"] = round(report["added_peak_mib"]["timm"] / max(report["added_peak_mib"]["once"], 1), 2)
    print(f"{args.model}: {weights_mib:.0f} MiB of fp32 weights; peak RSS added by loading + conv layers: "
          f"timm {report['added_peak_mib']['timm']} MiB, once {report['added_peak_mib']['once']} MiB")
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
