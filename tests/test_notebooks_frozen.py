"""Notebook 24 (frozen depthwise filters) under papermill: with the committed study it only reads, and what it
records is the committed runs' accuracy, condition by condition, with every seed."""
import json

import numpy as np
import pytest

from conftest import assert_png, run_notebook
from kernels_lib.training import frozen


@pytest.mark.slow
def test_24_shows_every_condition_of_the_committed_frozen_study_with_its_seeds_and_trains_nothing(tmp_path):
    before = frozen.RESULTS_FILE.read_bytes()
    recorded, out = run_notebook("24_", tmp_path, runs_dir=str(tmp_path / "runs"))
    assert frozen.RESULTS_FILE.read_bytes() == before and not (tmp_path / "runs").exists()    # read, not trained

    runs = json.loads(before)["runs"]
    rows = {(row["data"], row["condition"]): row for row in recorded["accuracy"]}
    wanted = {(target, condition) for target in frozen.TARGETS for condition in frozen.conditions(target)}
    assert wanted <= set(rows) and {"master-keys", "scale-space", "random", "from-kaiming-7x7"} <= {c for _, c in wanted}
    for (data, condition), row in rows.items():
        values = [r["val_accuracy"] for r in runs if (r["target"], r["condition"]) == (data, condition)]
        assert row["n_seeds"] == len(values) >= 2
        assert all(0 <= v <= 1 for v in values) and 0 <= row["val_accuracy_pct"] <= 100
        assert row["val_accuracy_pct"] == pytest.approx(100 * np.mean(values), abs=1e-6)
    recorded_runs = recorded["runs"]
    assert len(recorded_runs) == len(runs)
    assert all(r["frozen_max_change"] == 0.0 for r in recorded_runs if r["condition"] != frozen.LEARNED)
    assert recorded["master_key_gains"] == json.loads(before)["master_keys"]["gains"]
    assert "100 steps" in recorded["scale"] and "CPU" in recorded["scale"]
    for figure in recorded["figures"].values():
        assert_png(figure)
    table = (out / "tables" / "frozen_filters.md").read_text().strip().splitlines()
    assert len(table) == 2 + len(rows)
