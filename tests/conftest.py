"""Helpers shared by the tests: the smoke database, a papermill run of a notebook, PNG checks, and a
local Hugging Face hub cache in the layout timm reads."""
import json

import pytest

from kernels_lib import extract, notebooks, zoo
# the local Hugging Face hub cache the timm tests read (also used by benchmarks/rehearse_paper.py)
from kernels_lib.sources.hub_cache import save_timm_to_hub, write_hub_cache  # noqa: F401

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    """The file exists and is a PNG (a figure was written, whole)."""
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC, path


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory):
    """The smoke set's kernel database as notebook 01 writes it (db_dir/smoke/*.parquet), built once."""
    db_dir = tmp_path_factory.mktemp("db")
    report = extract.extract(zoo.load_model_set("smoke"), db_dir / "smoke", kernel_sizes=[3, 5, 7], progress=False)
    assert not report.failed, report.failed
    return db_dir


def run_notebook(name, tmp_path, db_dir=None, **parameters):
    """Run notebook `name` (part of its file name) under papermill on the smoke set with `parameters`;
    return (the JSON it recorded, its output folder)."""
    out = tmp_path / "figures"
    params = {**notebooks.default_parameters("smoke", out, db_dir or tmp_path / "db", tmp_path / "classification"),
              **parameters}
    [path] = notebooks.list_notebooks(only=name)
    notebooks.run_notebook(path, params, tmp_path / "build", progress=False)
    return json.loads((out / "results" / f"{path.stem}.json").read_text()), out
