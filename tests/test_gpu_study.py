"""benchmarks/gpu_training_study.py on its tiny CPU settings: every cell of the factorial trains and is
written with its measures beside its random-init twin; data that cannot load is left out with the reason."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from kernels_lib import paths, training
from kernels_lib.training.loop import _schedule, integrated_weight_decay

SCRIPT = paths.REPO_ROOT / "benchmarks" / "gpu_training_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("gpu_training_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tiny_study_writes_every_cell_with_its_measures(study, tmp_path):
    out = tmp_path / "study.json"
    report = study.main(["--tiny", "--data", "photos", "photos-iid", "no-such-data", "--weight-decays", "0", "1",
                         "--seeds", "0", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["complete"] and written["runs"] == json.loads(json.dumps(report["runs"]))
    assert [(r["data"], r["weight_decay"]) for r in written["runs"]] == [
        ("photos", 0.0), ("photos", 1.0), ("photos-iid", 0.0), ("photos-iid", 1.0)]
    assert "no-such-data" in written["skipped_data"] and "no data" in written["skipped_data"]["no-such-data"]
    for row in written["runs"]:
        for when in ("trained", "random_init"):
            m = row[when]
            assert 0.0 <= m["clustered"] <= 1.0 and sum(m["shares"].values()) == pytest.approx(1.0, abs=1e-3)
            assert m["first_derivative_share"] == m["shares"].get("1st-derivative", 0.0)
            assert -1.0 <= m["template_cosine_median"] <= 1.0
        assert 0.0 <= row["val_accuracy"] <= 1.0 and row["depthwise_ablation"]["accuracy"]["trained"] == row["val_accuracy"]
        assert set(row["depthwise_ablation"]["accuracy_recalibrated"]) == {"trained", "identity", "initialisation"}
        assert (row["integrated_weight_decay"] == 0.0) == (row["weight_decay"] == 0.0)
    # the two data sets start from the same seeded network: their random-init twins are the same kernels
    assert written["runs"][0]["random_init"] == written["runs"][2]["random_init"]
    assert written["runs"][0]["trained"] != written["runs"][0]["random_init"]


def test_integrated_weight_decay_is_the_sum_of_what_the_scheduler_applies():
    config = training.TrainConfig(run="s", epochs=3, weight_decay=0.5, lr=0.02, warmup_epochs=0.5)
    steps_per_epoch = 7
    optimiser = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(config, steps_per_epoch))
    applied = 0.0
    for _ in range(config.epochs * steps_per_epoch):
        applied += optimiser.param_groups[0]["lr"] * optimiser.param_groups[0]["weight_decay"]
        optimiser.step()
        scheduler.step()
    assert integrated_weight_decay(config, steps_per_epoch) == pytest.approx(applied, rel=1e-12)
