"""Helpers shared by the tests: the smoke database, a papermill run of a notebook, PNG checks, a
local Hugging Face hub cache in the layout timm reads, the smoke set's classification and site,
`kernels-lib inspect`'s report of a Keras file, and autoencoder training stopped after a given window."""
import contextlib
import json
from types import SimpleNamespace

import pytest

from kernels_lib.database import extract, zoo
from kernels_lib.publish import notebooks
from kernels_lib import paths
from kernels_lib.analysis import results
from kernels_lib.method import ae_checkpoint
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


@pytest.fixture(scope="session")
def reference_classification(smoke_db, tmp_path_factory):
    """Notebook 07's classification of the smoke set with the reference autoencoders (5×5, 7×7)
    and k-means (3×3): (classification_dir, table); the file is classification_dir/smoke/classification.parquet."""
    root = tmp_path_factory.mktemp("classified")
    table = results.classify_kernels(smoke_db / "smoke", progress=False)
    results.write_results(table, paths.results_path("smoke", root))
    return root, table


#: The site's test run: notebook 04 (plotly 3-D scatter, equations) and 14 (widgets, plotly bars).
SITE_NOTEBOOKS = "[01]4_*"
#: 04: PCA of the smoke set's 800 trained 5×5 kernels; 14: PP-OCR's layer 9, its unclustered kernels.
SITE_PARAMETERS = {"kernel_size": 5, "n_clusters": 4, "model": "ch_ppocr_mobile_v2.0_cls_mobile", "layer": 9,
                   "kernel_class": "unclustered", "per_page": 12}


@pytest.fixture(scope="session")
def smoke_site(smoke_db, reference_classification, tmp_path_factory):
    """Notebooks 04 and 14 run on the smoke set by the figures runner, which then writes the site:
    namespace with build (executed notebooks), site, figures and results folders."""
    root = tmp_path_factory.mktemp("site_run")
    notebooks.run_all("smoke", only=SITE_NOTEBOOKS, build_dir=root / "build" / "notebooks",
                      output_dir=root / "figures", db_dir=smoke_db, progress=False, log=None,
                      parameters={**SITE_PARAMETERS, "classification_dir": str(reference_classification[0])})
    return SimpleNamespace(build=root / "build" / "notebooks", site=root / "build" / "site",
                           figures=root / "figures", results=root / "figures" / "results")


@pytest.fixture(scope="session")
def keras_inspection(tmp_path_factory):
    """`kernels-lib inspect` on a Keras .h5 MobileNetV2 (tests/keras_layouts.py, seed 7): namespace with the
    layers written, the exit status, what it printed and the output folder (mobilenet_v2.html / .parquet)."""
    import contextlib
    import io

    from keras_layouts import mobilenetv2_layers, write_legacy_h5

    from kernels_lib import cli

    root = tmp_path_factory.mktemp("inspect_keras")
    layers = mobilenetv2_layers(seed=7)
    write_legacy_h5(root / "mobilenet_v2.h5", layers)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["inspect", str(root / "mobilenet_v2.h5"), "--out", str(root / "out"), "--no-progress"])
    return SimpleNamespace(layers=layers, status=status, stdout=printed.getvalue(), out=root / "out")


def run_notebook(name, tmp_path, db_dir=None, **parameters):
    """Run notebook `name` (part of its file name) under papermill on the smoke set with `parameters`;
    return (the JSON it recorded, its output folder)."""
    out = tmp_path / "figures"
    params = {**notebooks.default_parameters("smoke", out, db_dir or tmp_path / "db", tmp_path / "classification"),
              **parameters}
    [path] = notebooks.list_notebooks(only=name)
    notebooks.run_notebook(path, params, tmp_path / "build", progress=False)
    return json.loads((out / "results" / f"{path.stem}.json").read_text()), out


def write_notebook(path, params_src, body_src):
    """A two-cell notebook: a cell tagged `parameters` holding `params_src`, then `body_src`."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell(params_src)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body_src)]
    nbformat.write(nb, path)


class TrainingStopped(Exception):
    """Raised by `stopped_training` where a user would press Ctrl-C."""


@contextlib.contextmanager
def stopped_training(monkeypatch, windows: int):
    """Autoencoder training in the block stops (`TrainingStopped`) right after its checkpoint of window
    `windows` is written, as an interruption would leave it; the block must end that way."""
    real = ae_checkpoint.save

    def save(path, fp, module, opt, state, *rest):
        real(path, fp, module, opt, state, *rest)
        if len(state.history) == windows:
            raise TrainingStopped

    with monkeypatch.context() as patch:
        patch.setattr(ae_checkpoint, "save", save)
        with pytest.raises(TrainingStopped):
            yield
