"""Results are portable: the same notebook run in two checkouts at different places writes the same bytes,
and no path of the machine that ran it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernels_lib.fileio import jsonable
from kernels_lib.paths import REPO_ROOT, portable

NOTEBOOK = "02_dog_family"


def _checkout(where: Path) -> Path:
    """A minimal checkout at `where`: the package, the notebook and the repository markers."""
    where.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "kernels_lib", where / "kernels_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (where / "notebooks").mkdir()
    shutil.copy(REPO_ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", where / "notebooks")
    shutil.copy(REPO_ROOT / "pyproject.toml", where)
    shutil.copytree(REPO_ROOT / "data" / "models", where / "data" / "models")
    return where


def _start(checkout: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "kernels_lib", "figures", "--only", NOTEBOOK, "--no-site",
                             "--models", "smoke"], cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _results(checkout: Path, run: subprocess.Popen) -> bytes:
    output, _ = run.communicate(timeout=900)
    assert run.returncode == 0, output[-3000:]
    return (checkout / "figures" / "smoke" / "results" / f"{NOTEBOOK}.json").read_bytes()


@pytest.mark.slow
def test_a_notebook_run_in_two_checkouts_writes_the_same_json(tmp_path):
    first = _checkout(tmp_path / "one")
    second = _checkout(tmp_path / "elsewhere" / "deeper" / "two")
    runs = [_start(first), _start(second)]          # side by side: one thread each
    a, b = _results(first, runs[0]), _results(second, runs[1])
    assert a == b
    text = a.decode()
    assert str(tmp_path) not in text and str(REPO_ROOT) not in text
    figures = json.loads(text)["figures"]
    assert all(p.startswith("figures/smoke/") for p in figures.values()), figures
    assert all((first / p).is_file() for p in figures.values())


def test_portable_writes_repository_paths_relative_and_leaves_others():
    inside = REPO_ROOT / "figures" / "x.png"
    assert portable(inside) == "figures/x.png"
    assert portable(str(inside)) == "figures/x.png"
    assert portable(REPO_ROOT) == "."
    outside = Path("/nonexistent-place/x.png")
    assert portable(outside) == str(outside) and portable(str(outside)) == str(outside)
    assert portable("not a path") == "not a path" and portable("relative/x.png") == "relative/x.png"
    assert portable(3) == 3


def test_jsonable_refuses_to_fake_an_undefined_number():
    import numpy as np

    assert jsonable({"a": np.float32(0.5), "p": REPO_ROOT / "data", "n": None}) == {"a": 0.5, "p": "data", "n": None}
    with pytest.raises(ValueError, match="None for an undefined"):
        jsonable({"x": float("nan")})


def test_jsonable_drops_float_noise_but_keeps_what_a_reader_uses():
    noisy = 0.1 + 0.2                       # 0.30000000000000004: the summation-order noise of a median
    assert jsonable(noisy) == jsonable(0.3) == 0.3
    assert jsonable(123456.789012345) == 123456.789012
    assert jsonable(1e-20) == 1e-20 and jsonable(2) == 2 and isinstance(jsonable(2), int)
