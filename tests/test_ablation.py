"""training.ablation: the identity and initial depthwise kernels are what they claim, the trained network is
left alone, and the trained accuracy is the one the training loop recorded."""
from __future__ import annotations

import json

import pytest
import torch

from kernels_lib import training
from kernels_lib.training import ablation, nets, photos

SMOKE_DATA = {"keys": photos.SKIMAGE_KEYS, "short_side": 96}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = training.TrainConfig(run="ablate", width=8, depth=2, crop_size=16, crops_per_epoch=96, batch_size=32,
                                  epochs=2, device="cpu", data_options=SMOKE_DATA)
    return training.train(config, run_dir=tmp_path_factory.mktemp("ablate"), progress=False)


@pytest.mark.parametrize("size", [6, 20])          # the matrix path and F.conv2d
def test_identity_kernels_pass_the_input_through_plus_the_bias(run, size):
    model = ablation.with_depthwise_kernels(run.model, "identity")
    x = torch.randn(2, 8, size, size)
    for _, conv in nets.depthwise_convs(model):
        torch.testing.assert_close(conv(x), x + conv.bias.view(1, -1, 1, 1))


def test_initial_kernels_are_the_runs_start_and_nothing_else_changes(run):
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    initial = training.build_model(run.config, run.provenance["data"]["n_classes"])
    model = ablation.with_depthwise_kernels(run.model, "initialisation", initial)
    depthwise = {f"{name}.weight" for name, _ in nets.depthwise_convs(model)}
    start = initial.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, start[key] if key in depthwise else before[key], rtol=0, atol=0)
    assert not any(torch.equal(before[key], start[key]) for key in depthwise)
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())   # the run's model untouched
    with pytest.raises(training.TrainingError, match="variant"):
        ablation.with_depthwise_kernels(run.model, "zeros")


def test_recalibrated_statistics_are_the_average_over_the_batches():
    norm = torch.nn.BatchNorm2d(3)
    batches = [(torch.randn(4, 3, 5, 5) * (i + 1) + i, None) for i in range(3)]
    assert ablation.recalibrate_batch_norm(norm, batches, "cpu") == 3
    means = torch.stack([x.mean((0, 2, 3)) for x, _ in batches]).mean(0)
    variances = torch.stack([x.var((0, 2, 3), unbiased=True) for x, _ in batches]).mean(0)
    torch.testing.assert_close(norm.running_mean, means)
    torch.testing.assert_close(norm.running_var, variances)
    assert norm.momentum == 0.1 and not norm.training


def test_the_ablation_reports_each_variant_and_the_trained_accuracy_the_loop_recorded(run):
    record = ablation.depthwise_ablation(run, recalibration_batches=2)
    assert record["accuracy"]["trained"] == run.history[-1]["val_accuracy"]
    assert record["n_validation"] == sum(1 for _, y in training.datasets.training_data(
        "photos", crop_size=16, **SMOKE_DATA).validation_batches(1))
    assert 1 / record["n_classes"] <= record["majority_share"] < 1
    for key in ("accuracy", "accuracy_recalibrated"):
        assert set(record[key]) == set(ablation.VARIANTS) and all(0 <= v <= 1 for v in record[key].values())
    again = ablation.depthwise_ablation(run.run_dir, recalibration_batches=0)
    assert again["accuracy"] == record["accuracy"] and set(again["accuracy_recalibrated"].values()) == {None}


def test_the_command_prints_one_json_line_per_run(run, capsys):
    assert ablation.main([str(run.run_dir), "--recalibration-batches", "0"]) == 0
    line, = capsys.readouterr().out.splitlines()
    assert json.loads(line) == ablation.depthwise_ablation(run.run_dir, recalibration_batches=0)
