"""Notebooks 18–22 (the training appendices) under papermill.

With `retrain = True` and a tiny profile each notebook really trains its runs (a few steps on the
scikit-image photographs) and the JSON it records is checked against what can be known fast: the
snapshots it shows, DoG-initialised kernels clustered at epoch 0 and Kaiming ones not, the paper's
numbers beside ours. With the defaults it reads the committed runs, and its numbers must be those
recorded when the runs were trained (data/training/summary.json, written by build_runs.py).
"""
import json

import pytest
import torch

from conftest import assert_png, run_notebook
from kernels_lib.training import photos
from kernels_lib import training

#: A few training steps: 8 channels, 2 blocks, 16×16 crops of the 12 scikit-image photographs, 2 epochs.
TINY = {"width": 8, "depth": 2, "crop_size": 16, "crops_per_epoch": 64, "batch_size": 32, "epochs": 2,
        "snapshot_epochs": [1], "data_options": {"keys": list(photos.SKIMAGE_KEYS), "short_side": 96}}
SUMMARY = json.loads((training.RUNS_DIR / "summary.json").read_text())


def _retrained(name, tmp_path, **parameters):
    return run_notebook(name, tmp_path, retrain=True, retrain_dir=str(tmp_path / "runs"), train_changes=TINY,
                        **parameters)


def _final_clustered_pct(summary):
    last = summary["snapshots"][str(summary["epochs_done"])]
    k = summary["network"]["kernel_size"]
    return 100 * last[f"{k}x{k}"]["clustered"]


@pytest.mark.slow
def test_18_trains_both_initialisations_and_puts_table_2_beside_the_paper(tmp_path):
    recorded, out = _retrained("18_", tmp_path)
    rows = {row["initialisation"]: row for row in recorded["table_2"]}
    assert set(rows) == {"kaiming", "dog"} and recorded["source"].startswith("new run")
    assert (rows["kaiming"]["paper_val_accuracy_pct"], rows["kaiming"]["paper_clustered_pct"]) == (66.35, 56.65)
    assert (rows["dog"]["paper_val_accuracy_pct"], rows["dog"]["paper_clustered_pct"]) == (69.01, 96.03)
    for init, run in (("kaiming", "kaiming-7x7"), ("dog", "dog-7x7")):
        summary = recorded["runs"][run]
        assert rows[init]["epochs"] == "2/2" and sorted(summary["snapshots"], key=int) == ["0", "1", "2"]
        assert summary["network"] == {"kernel_size": 7, "width": 8, "depth": 2, "patch_size": 2}
        assert rows[init]["clustered_pct"] == pytest.approx(_final_clustered_pct(summary), abs=0.0051)
        assert 0 <= rows[init]["val_accuracy_pct"] <= 100
    start = {run: recorded["runs"][run]["snapshots"]["0"]["7x7"]["clustered"] for run in ("kaiming-7x7", "dog-7x7")}
    assert start["dog-7x7"] >= 0.9 and start["kaiming-7x7"] <= 0.1
    assert (tmp_path / "runs" / "dog-7x7" / training.CHECKPOINT).is_file()
    for figure in recorded["figures"].values():
        assert_png(figure)
    assert (out / "tables" / "table2_kaiming_vs_dog_init.md").read_text().count("\n") == 4


@pytest.mark.slow
def test_19_records_class_shares_at_every_snapshot_and_the_noise_controls(tmp_path):
    recorded, _ = _retrained("19_", tmp_path)
    assert recorded["epochs"] == [0, 1, 2]
    for epoch, shares in recorded["proportions"].items():
        assert sum(shares.values()) == pytest.approx(1.0)
    assert all(v == 0 for c, v in recorded["proportions"]["0"].items() if c not in ("unclustered", "degenerate"))
    assert set(recorded["clustered_over_epochs"]) == {"kaiming-7x7 (photos)", "phase-7x7 (photos-phase)",
                                                      "iid-7x7 (photos-iid)"}
    assert [r["epoch"] for r in recorded["clustered_over_epochs"]["iid-7x7 (photos-iid)"]] == [0, 1, 2]
    assert recorded["runs"]["iid-7x7"]["data"] == "photos-iid"
    for figure in recorded["figures"].values():
        assert_png(figure)


@pytest.mark.slow
def test_20_overfits_on_few_photographs_without_weight_decay_and_trains_on_noise(tmp_path):
    recorded, _ = _retrained("20_", tmp_path)
    rows = {row["run"]: row for row in recorded["comparison"]}
    assert list(rows) == ["kaiming-7x7", "overfit-7x7", "overfit-wd-7x7", "phase-7x7", "iid-7x7"]
    assert rows["overfit-7x7"]["photographs"] == 10 and rows["overfit-7x7"]["weight_decay"] == 0.0
    assert rows["overfit-wd-7x7"]["weight_decay"] == training.DEFAULT_RUNS["kaiming-7x7"].weight_decay > 0
    assert rows["kaiming-7x7"]["photographs"] == 12
    assert recorded["runs"]["overfit-7x7"]["augment"] is False and recorded["runs"]["overfit-7x7"]["fixed_crops"] == 32
    assert all(row["clustered_pct_epoch0"] <= 10 for row in rows.values())
    for run, row in rows.items():
        assert row["clustered_pct"] == pytest.approx(_final_clustered_pct(recorded["runs"][run]), abs=0.0051)
    for figure in recorded["figures"].values():
        assert_png(figure)


@pytest.mark.slow
def test_20_on_the_committed_runs_gives_the_numbers_recorded_when_they_were_trained(tmp_path):
    recorded, _ = run_notebook("20_", tmp_path)
    assert recorded["source"] == "committed runs"
    for row in recorded["comparison"]:
        summary = SUMMARY[row["run"]]
        assert row["clustered_pct"] == pytest.approx(_final_clustered_pct(summary), abs=0.0051)   # recorded as a fraction to 4 places
        assert row["val_accuracy_pct"] == pytest.approx(100 * summary["val_accuracy"])


@pytest.mark.slow
def test_21_trains_two_seeds_and_compares_their_layers(tmp_path):
    recorded, _ = _retrained("21_", tmp_path)
    summaries = recorded["runs"]
    assert [summaries[r]["seed"] for r in ("kaiming-5x5-seed0", "kaiming-5x5-seed1")] == [0, 1]
    assert all(s["network"]["kernel_size"] == 5 and s["epochs_done"] == 2 for s in summaries.values())
    assert [row["layer"] for row in recorded["per_layer"]] == [0, 1]          # depth 2 in the tiny profile
    control = next(v for name, v in recorded["layer_proportions"].items() if name.startswith("control"))
    assert all(share == 0 for layer in control.values() for share in layer.values())
    assert set(recorded["most_clustered_layer"]) == {"seed 0", "seed 1"}
    assert_png(recorded["figures"]["layer_proportions"])


@pytest.mark.slow
def test_22_shows_chosen_layers_of_a_weights_file_and_trains_large_kernels(tmp_path, smoke_db):
    weights = tmp_path / "tiny_net.pth"
    net = training.build_model(training.TrainConfig(run="t", width=6, depth=3), n_classes=4)
    torch.save(net.state_dict(), weights)
    recorded, _ = _retrained("22_", tmp_path, db_dir=str(smoke_db), checkpoint=str(weights), model="tiny_net",
                             layers=[0, 2])
    chosen = recorded["chosen_layers"]
    assert chosen["shown_model"] == "tiny_net" and chosen["layers"] == [0, 2]
    assert [label.split(" (")[0] for label in chosen["rows"]] == ["layer 0", "layer 2"]
    assert all("6 kernels" in label and "clustered:" in label for label in chosen["rows"])
    large = recorded["large_kernels"]
    assert large["kernel_size"] == 31 and large["summary"]["epochs_done"] == 2
    initial = [row for row in large["table"] if row["kernels"] == "initialisation" and row["layer"] == "all"][0]
    assert initial["central_energy_median"] < 0.15            # Kaiming noise: about (7/31)² of the energy
    for figure in large["figures"].values():
        assert_png(figure)


@pytest.mark.slow
def test_22_without_the_model_says_so_and_shows_a_model_of_the_set(tmp_path, smoke_db):
    recorded, _ = run_notebook("22_", tmp_path, db_dir=str(smoke_db), fallback_model="mobilenetv2_100",
                               fallback_layers=[0, 1], large_run="no-such-run")
    chosen = recorded["chosen_layers"]
    assert chosen["requested_model"] == "hornet_tiny_7x7" and chosen["shown_model"] == "mobilenetv2_100"
    assert len(chosen["rows"]) == 2                      # two layers (the smoke set keeps no twin of it)
    assert recorded["large_kernels"] is None


@pytest.mark.slow
def test_22_falls_back_to_the_largest_trained_model_of_the_set(tmp_path, smoke_db):
    recorded, _ = run_notebook("22_", tmp_path, db_dir=str(smoke_db), fallback_model="not_in_the_set",
                               large_run="no-such-run")
    chosen = recorded["chosen_layers"]
    assert chosen["shown_model"] not in ("hornet_tiny_7x7", "not_in_the_set") and len(chosen["layers"]) == 3


@pytest.mark.slow
def test_23_shows_every_cell_of_the_committed_factorial_study_as_recorded(tmp_path):
    from kernels_lib.training import study

    recorded, _ = run_notebook("23_", tmp_path)
    runs = [run for path in sorted(study.STUDY_DIR.glob("*.json")) for run in json.loads(path.read_text())["runs"]]
    cells = {}
    for run in runs:
        cells.setdefault((run["data"], run["weight_decay"]), []).append(run)
    assert len({d for d, _ in cells}) >= 4 and len({wd for _, wd in cells}) >= 4
    assert all(len(seeds) >= 2 for seeds in cells.values())               # every cell has two seeds or more
    for (data, wd), seeds in cells.items():
        for name, field in (("clustered_pct", "clustered"), ("first_derivative_pct", "first_derivative_share")):
            expected = 100 * sum(run[field] for run in seeds) / len(seeds)
            assert recorded[name][str(float(wd))][data] == pytest.approx(expected, abs=0.006)
    assert all(value == 0.0 for value in (row["random init"] for row in recorded["clustered_pct"].values()))
    assert recorded["reference"]["n_kernels"] == 384
    steps = {run["steps"] for run in runs}                                  # the titles state the runs' scale
    assert recorded["scale"].endswith(f"{'/'.join(f'{n:,}' for n in sorted(steps))} steps on CPU")
    full = [run for path in sorted((training.RUNS_DIR / "recipe_check").glob("*.json"))
            for run in json.loads(path.read_text())["runs"]]                # the default runs' length, seed 1
    assert {run["steps"] for run in full} == {2500} and {run["seed"] for run in full} == {1}
    for run in full:
        cell = recorded["full_length"]["clustered_pct"][str(float(run["weight_decay"]))][run["data"]]
        assert cell == pytest.approx(100 * run["clustered"], abs=0.006)
    assert recorded["full_length"]["clustered_pct"]["0.05"]["random init"] == 0.0
    for figure in recorded["figures"].values():
        assert_png(figure)
