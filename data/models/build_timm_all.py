"""Regenerate data/models/timm-all.yaml: every pretrained timm tag whose architecture has a depthwise conv.

    .venv/bin/python data/models/build_timm_all.py            # all of timm.list_pretrained()
    .venv/bin/python data/models/build_timm_all.py --out my.yaml 'convnext*' 'mobilenetv4*'

Each tag's model is built on the meta device (shapes only, no weights, no internet) and its
depthwise kernels counted per size (kernels_lib.database.census); tags without any are left out. The
file records the timm version it came from: after upgrading timm, run this again and commit.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kernels_lib.database import census


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("patterns", nargs="*", help="only tags matching these timm.list_pretrained patterns")
    ap.add_argument("--out", type=Path, default=census.TIMM_ALL, help=f"default {census.TIMM_ALL}")
    args = ap.parse_args()
    names = None
    if args.patterns:
        import timm

        names = timm.list_pretrained(args.patterns)
    path = census.write_timm_all(args.out, names)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
