"""Train one run from a config file, in one process or under torchrun (see `distributed`):

    python -m kernels_lib.training.launch config.json --run-dir data/training/my-run
    torchrun --nproc_per_node 4 -m kernels_lib.training.launch config.json --run-dir data/training/my-run

config.json holds a `TrainConfig` as a JSON object (`TrainConfig.to_dict`); rank 0 writes the run folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .distributed import place_from_environment
from .loop import TrainConfig, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels_lib.training.launch", description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="a TrainConfig as a JSON object")
    parser.add_argument("--run-dir", type=Path, help="the run folder (default data/training/<run>)")
    parser.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    parser.add_argument("--until-epoch", type=int, help="stop after this epoch (resume later)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_dict(json.loads(args.config.read_text()))
    except (OSError, ValueError, TypeError) as err:
        parser.error(f"{args.config} is not a readable TrainConfig JSON object: {err}")
    result = train(config, run_dir=args.run_dir, resume=args.resume, progress=not args.quiet,
                   until_epoch=args.until_epoch)
    last = result.history[-1]
    if place_from_environment().main:
        print(f"{config.run}: epoch {last['epoch']}, validation accuracy {last.get('val_accuracy')}, in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
