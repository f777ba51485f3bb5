"""Where things live: the repository's folders, the cache, default database and results paths.

Every other module asks here instead of computing the repository root itself. Data that ships
with the repository (model sets, reference autoencoders) lives under `DATA_DIR`; what the
pipeline generates (kernel databases, classifications, the download cache) too, git-ignored.

The cache is `$KERNELS_LIB_CACHE` when set, else `<repo>/data/cache` in a source checkout,
else the user's cache folder (`$XDG_CACHE_HOME/kernels_lib`, default `~/.cache/kernels_lib`)
when the package is installed without its repository.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
#: Model-set YAML files (`kernels_lib.database.zoo`).
MODELS_DIR = DATA_DIR / "models"
#: Kernel databases, one folder per model set (`kernels_lib.database.extract`, `kernels_lib.database.store`).
KERNELS_DIR = DATA_DIR / "kernels"
#: Per-kernel classifications, one folder per model set (`kernels_lib.analysis.results`).
CLASSIFICATION_DIR = DATA_DIR / "results"
RESULTS_FILE = "classification.parquet"
#: Reference autoencoders shipped with the repository, one folder per kernel size.
AUTOENCODERS_DIR = DATA_DIR / "autoencoders"
REFERENCE_AUTOENCODERS = {k: AUTOENCODERS_DIR / f"{k}x{k}" for k in (5, 7)}
#: Committed training runs (`kernels_lib.training`), one folder per run.
TRAINING_DIR = DATA_DIR / "training"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
FIGURES_DIR = REPO_ROOT / "figures"
BUILD_DIR = REPO_ROOT / "build"
CACHE_ENV_VAR = "KERNELS_LIB_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache directory (or a sub-folder of it), created if missing; read from the environment on every call."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        root = Path(env).expanduser()
    elif (REPO_ROOT / "pyproject.toml").is_file():
        root = DATA_DIR / "cache"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernels_lib"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def kernel_db_dir(model_set: str) -> Path:
    """data/kernels/<model set>: the default kernel database of a set (git-ignored)."""
    return KERNELS_DIR / model_set


def results_path(model_set: str, classification_dir: Path | str = CLASSIFICATION_DIR) -> Path:
    """<classification_dir>/<model set>/classification.parquet: where a set's classification goes."""
    return Path(classification_dir) / model_set / RESULTS_FILE


#: The model set whose figures are the committed gallery in figures/; every other set's go to figures/<set>/.
GALLERY_SET = "offline"


def figures_dir(model_set: str) -> Path:
    """figures/ for the gallery set, figures/<set>/ for any other (a .yaml path counts by its stem), so
    a run on another set never overwrites the committed gallery."""
    name = Path(str(model_set)).stem if str(model_set).endswith((".yaml", ".yml")) else str(model_set)
    return FIGURES_DIR if name == GALLERY_SET else FIGURES_DIR / file_stem(name)


def portable(value):
    """`value` as a results file, provenance or the site records it: a path inside the repository (a `Path` or
    an absolute path string) becomes relative to the repository root, in POSIX form, so that the same run in
    another checkout writes the same bytes and a reader sees no other machine's folders; anything else is
    returned unchanged."""
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        path = Path(value)
        if path.is_absolute():
            try:
                return path.resolve().relative_to(REPO_ROOT).as_posix() or "."
            except ValueError:
                return str(value)
        return path.as_posix()
    return value


def file_stem(name: str) -> str:
    """A file name from a model name or label: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    return re.sub(r"[^\w.-]+", "_", str(name)).strip("_") or "figure"
