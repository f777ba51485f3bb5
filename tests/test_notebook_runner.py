"""The papermill runner: order, selection, failures that name the notebook, sources never touched."""
import json

import nbformat
import pytest

from conftest import write_notebook as _write
from kernels_lib import errors
from kernels_lib.publish import notebooks
from kernels_lib.errors import KernelsLibError


@pytest.fixture
def notebook_dir(tmp_path):
    """Three numbered notebooks; the second fails. Each records what it received in out/<name>.json."""
    src = tmp_path / "notebooks"
    src.mkdir()
    record = ("import json, pathlib\n"
              "pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
              "(pathlib.Path(output_dir) / '{name}.json').write_text(json.dumps("
              "{{'model_set': model_set, 'output_dir': output_dir}}))\n")
    _write(src / "10_last.ipynb", "model_set = 'x'\noutput_dir = 'out'", record.format(name="10_last"))
    _write(src / "01_first.ipynb", "model_set = 'x'\noutput_dir = 'out'", record.format(name="01_first"))
    _write(src / "02_fails.ipynb", "model_set = 'x'",
           "x = 1\nraise ValueError('the kernel database is empty')")
    (src / "notes.ipynb").write_bytes((src / "01_first.ipynb").read_bytes())  # not numbered: ignored
    return src


def test_notebooks_listed_in_numeric_order_and_selected(notebook_dir):
    names = [p.name for p in notebooks.list_notebooks(notebook_dir)]
    assert names == ["01_first.ipynb", "02_fails.ipynb", "10_last.ipynb"]
    assert [p.name for p in notebooks.list_notebooks(notebook_dir, only="last")] == ["10_last.ipynb"]
    assert [p.name for p in notebooks.list_notebooks(notebook_dir, only="0[12]_*")] == ["01_first.ipynb", "02_fails.ipynb"]
    with pytest.raises(errors.NotebookNotFoundError, match="pca"):
        notebooks.list_notebooks(notebook_dir, only="pca")


def test_failing_cell_stops_the_run_and_names_notebook_and_error(notebook_dir, tmp_path):
    before = {p.name: p.read_bytes() for p in notebook_dir.iterdir()}
    build, out = tmp_path / "build", tmp_path / "figs"
    logged = []
    with pytest.raises(errors.NotebookExecutionError) as info:
        notebooks.run_all(model_set="smoke", build_dir=build, notebook_dir=notebook_dir, output_dir=out,
                         progress=False, log=logged.append)
    err = info.value
    assert isinstance(err, KernelsLibError)
    assert err.notebook == "02_fails.ipynb"
    assert err.ename == "ValueError" and err.evalue == "the kernel database is empty"
    assert "02_fails.ipynb" in str(err) and "the kernel database is empty" in str(err)
    assert "failing line: raise ValueError('the kernel database is empty')" in str(err)
    assert err.exec_count == 3                     # parameters, injected parameters, then the failing cell
    # 01 ran with the model set's parameters, 10 never ran: nothing after a failure is attempted.
    first = json.loads((out / "01_first.json").read_text())
    assert first == {"model_set": "smoke", "output_dir": str(out.resolve())}
    assert not (out / "10_last.json").exists()
    assert sorted(p.name for p in build.glob("*.ipynb")) == ["01_first.ipynb", "02_fails.ipynb"]
    assert any("01_first.ipynb done" in line for line in logged)
    # Sources are untouched: no outputs written into them.
    assert {p.name: p.read_bytes() for p in notebook_dir.iterdir()} == before


def test_only_reruns_one_notebook_and_passes_only_declared_parameters(notebook_dir, tmp_path):
    build, out = tmp_path / "build", tmp_path / "figs"
    runs = notebooks.run_all(model_set="offline", only="10", build_dir=build, notebook_dir=notebook_dir,
                            output_dir=out, progress=False, log=None)
    assert [r.notebook for r in runs] == ["10_last.ipynb"]
    assert json.loads((out / "10_last.json").read_text())["model_set"] == "offline"
    executed = nbformat.read(build / "10_last.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "db_dir" not in injected[0].source and "results_dir" not in injected[0].source


def test_build_dir_may_not_be_the_sources(notebook_dir):
    with pytest.raises(ValueError, match="overwrite the sources"):
        notebooks.run_notebook(notebook_dir / "01_first.ipynb", {}, build_dir=notebook_dir)


def test_main_reports_failure_with_exit_status(notebook_dir, tmp_path, capsys):
    status = notebooks.main(["--models", "smoke", "--only", "02", "--notebook-dir", str(notebook_dir),
                            "--build-dir", str(tmp_path / "b"),
                            "--output-dir", str(tmp_path / "o"), "--no-progress"])
    assert status == 2                                          # the command line's error status
    err = capsys.readouterr().err
    assert "02_fails.ipynb" in err and "ValueError: the kernel database is empty" in err


def test_unreadable_parameters_line_is_refused(tmp_path):
    path = tmp_path / "05_bad.ipynb"
    _write(path, "kernel_size = 7  # k = 5 or 7\nseed = 0", "pass")
    with pytest.raises(errors.ParametersCellError, match="kernel_size = 7"):
        notebooks.declared_parameters(path)


def test_a_model_set_file_given_relative_to_here_is_found_by_the_notebooks(tmp_path, monkeypatch):
    """`figures --models my_set.yaml` from the repository: the notebooks run in their own folder, so the
    runner passes the file's absolute path."""
    src = tmp_path / "notebooks"
    src.mkdir()
    _write(src / "01_load.ipynb", "model_set = 'x'\noutput_dir = 'out'",
           "import pathlib\nfrom kernels_lib.database import zoo\n"
           "(pathlib.Path(output_dir) / 'name.txt').write_text(zoo.load_model_set(model_set).name)")
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "mine.yaml").write_text("models:\n  - {kind: timm, name: convnextv2_atto, seed: 0}\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    notebooks.run_all(model_set="sets/mine.yaml", notebook_dir=src, build_dir=tmp_path / "b", output_dir=out,
                      progress=False, log=None)
    assert (out / "name.txt").read_text() == "mine"
