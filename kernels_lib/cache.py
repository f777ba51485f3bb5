"""One place for bulky downloaded files (wheels, extracted weights), so every source shares them.

The directory is `$KERNELS_LIB_CACHE` when set, else `<repo root>/data/cache` (git-ignored) for a
source checkout, else the user's cache folder (`$XDG_CACHE_HOME/kernels_lib`, default
`~/.cache/kernels_lib`) when the package is installed without its repository.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_VAR = "KERNELS_LIB_CACHE"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir(*parts: str) -> Path:
    """The cache directory (or a sub-folder of it), created if missing; read from the environment on every call."""
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
    elif (_REPO_ROOT / "pyproject.toml").is_file():
        root = _REPO_ROOT / "data" / "cache"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernels_lib"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
