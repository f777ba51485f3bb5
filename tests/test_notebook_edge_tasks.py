"""Notebook 25 (a task where edges carry the label) under papermill: on the committed triage JSONs it records
every task × data × seed with the numbers the JSONs hold, the identity ablation beside each accuracy, and the
figures; with `rerun_setting` it trains a setting again beside its runs and the two agree."""
import json

import pytest

from conftest import assert_png, run_notebook
from kernels_lib.training import edge_tasks as et, photos

TINY = {"crops_per_epoch": 64, "batch_size": 32,
        "data_options": {"keys": list(photos.SKIMAGE_KEYS), "short_side": 96}}


def _committed_runs():
    return [run for path in sorted(et.EDGE_DIR.glob("*.json")) for run in json.loads(path.read_text())["runs"]]


@pytest.mark.slow
def test_25_records_every_committed_run_with_its_ablation_and_figures(tmp_path):
    recorded, _ = run_notebook("25_", tmp_path)
    committed = {(r["setting"], r["data"], r["seed"]): r for r in _committed_runs()}
    runs = {(r["setting"], r["data"], r["seed"]): r for r in recorded["runs"]}
    assert set(runs) == set(committed)
    for setting, data in et.TASKS.items():                       # every task on its images and both controls, 2 seeds
        assert all((setting, d, seed) in runs for d in data for seed in (0, 1)), setting
    for key, run in runs.items():
        ablation = committed[key]["ablation"]["accuracy_recalibrated"]
        assert run["accuracy_identity"] == ablation["identity"] and run["accuracy_initial_kernels"] == ablation["initialisation"]
        for field in ("val_accuracy", "accuracy_identity", "accuracy_initial_kernels", "chance", "clustered"):
            assert 0.0 <= run[field] <= 1.0, (key, field)
    rows = {(r["setting"], r["data"]): r for r in recorded["table"]}
    for (setting, data), row in rows.items():
        if data == "random init":
            assert row["clustered_pct"] == 0.0 and row["identity_accuracy_pct"] is None
            continue
        seeds = [r for k, r in committed.items() if k[:2] == (setting, data)]
        assert row["val_accuracy_pct"] == pytest.approx(100 * sum(r["val_accuracy"] for r in seeds) / len(seeds))
        assert row["first_derivatives_fit"] == pytest.approx(sum(r["n_first_derivatives_fit"] for r in seeds) / len(seeds))
    assert {s for s, d in rows if d == "random init"} == set(et.TASKS)
    assert recorded["gallery"]["n_kernels"] == sum(min(r["n_first_derivatives"], et.GALLERY) for r in committed.values())
    for measure in ("first_derivative_share", "n_first_derivatives_fit"):
        assert [v["setting"] for v in recorded["verdicts"][measure]] == list(et.TASKS)
    assert "300 steps" in recorded["scale"] and "48×4" in recorded["scale"] and recorded["rerun"] is None
    for figure in recorded["figures"].values():
        assert_png(figure)


@pytest.mark.slow
def test_25_trains_a_setting_again_and_gets_the_same_numbers(tmp_path):
    setting = et.Setting("tiny-halves", "halves", steps=200, crop_size=16, width=8, depth=2)
    et.run_plan(tmp_path / "edge" / "tiny.json", [setting], seeds=(0,), runs_dir=tmp_path / "runs", changes=TINY,
                progress=False)
    recorded, _ = run_notebook("25_", tmp_path, edge_dir=str(tmp_path / "edge"), rerun_setting="tiny-halves",
                               rerun_seed=0, rerun_dir=str(tmp_path / "again"), rerun_changes=TINY)
    assert {row["data"] for row in recorded["rerun"]} == set(et.PHOTO_DATA)
    for row in recorded["rerun"]:
        assert row["rerun"] == row["committed"], row
