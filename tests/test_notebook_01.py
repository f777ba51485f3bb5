"""Notebook 01 run headlessly with papermill on the smoke set: its recorded counts are the database's."""
import json
from pathlib import Path

from kernels_lib.database import store, zoo
from kernels_lib.publish.notebooks import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_extract_kernels.ipynb"


def test_notebook_runs_on_smoke_set(tmp_path):
    params = {"model_set": "smoke", "kernel_sizes": [3, 5, 7], "db_dir": str(tmp_path / "kernels"),
              "results_dir": str(tmp_path / "results")}
    run = run_notebook(NOTEBOOK, params, tmp_path / "build", cwd=NOTEBOOK.parent, kernel_name="python3")
    assert run.executed.is_file()
    result = json.loads((tmp_path / "results" / "01_extract_kernels.json").read_text())
    db = tmp_path / "kernels" / "smoke"
    table = store.read_kernels(db, columns=["model", "weights_tag", "kh", "kw"])
    assert result["model_set"] == "smoke" and result["failed"] == []
    assert result["total"] == len(table) == 9156 + 800 + 1840
    assert result["by_size"] == {f"{k}x{k}": int((table.kh == k).sum()) for k in (3, 5, 7)}
    ids = table.model + "." + table.weights_tag
    assert result["by_model"] == {e.id: {f"{k}x{k}": int(((ids == e.id) & (table.kh == k)).sum())
                                         for k in (3, 5, 7) if ((ids == e.id) & (table.kh == k)).any()}
                                  for e in zoo.load_model_set("smoke").entries}
