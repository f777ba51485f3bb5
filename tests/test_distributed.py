"""Training past one process: two CPU processes under torchrun (gloo) reach the weights of one process with
the same global batch, and the shares of each global batch partition it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kernels_lib import training
from kernels_lib.training import datasets, distributed, photos
from kernels_lib.training.distributed import Place

ROOT = Path(__file__).resolve().parents[1]
SMOKE_DATA = {"keys": photos.SKIMAGE_KEYS, "short_side": 96}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shares_partition_every_global_batch_and_differ_by_at_most_one(world):
    for n in (1, 7, 32, 33):
        if n < world:
            continue
        parts = [distributed.shard(n, Place(rank, world)) for rank in range(world)]
        assert [i for part in parts for i in range(n)[part]] == list(range(n))
        sizes = [part.stop - part.start for part in parts]
        assert max(sizes) - min(sizes) <= 1


def test_the_shares_of_photo_crops_are_the_global_batch_cut_in_order():
    data = datasets.photo_crops("photos", crop_size=16, crops_per_epoch=45, **SMOKE_DATA)
    whole = list(data.epoch_batches(3, 20, seed=1))
    shares = [list(data.epoch_batches(3, 20, seed=1, place=Place(rank, 3))) for rank in range(3)]
    assert [len(y) for _, y in whole] == [20, 20, 5]
    for index, (x, y) in enumerate(whole):
        assert [len(s[index][1]) for s in shares] == [len(range(len(y))[distributed.shard(len(y), Place(r, 3))])
                                                     for r in range(3)]
        assert torch.equal(torch.cat([s[index][0] for s in shares]), x)
        assert torch.equal(torch.cat([s[index][1] for s in shares]), y)


def test_the_shares_of_a_torch_data_set_are_the_global_batch_cut_in_order():
    images = torch.arange(50 * 3 * 4 * 4, dtype=torch.float32).reshape(50, 3, 4, 4)
    labels = torch.arange(50) % 5
    pairs = torch.utils.data.TensorDataset(images, labels)
    data = datasets.TorchImageData(pairs, pairs, [str(c) for c in range(5)], "tensors", {}, crops_per_epoch=50)
    whole = list(data.epoch_batches(2, 16, seed=0))
    shares = [list(data.epoch_batches(2, 16, seed=0, place=Place(rank, 2))) for rank in range(2)]
    assert [len(y) for _, y in whole] == [16, 16, 16, 2]
    for index, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([s[index][0] for s in shares]), x)
        assert torch.equal(torch.cat([s[index][1] for s in shares]), y)


def test_the_environment_gives_the_place_and_bad_values_say_to_use_torchrun():
    assert distributed.place_from_environment({}) == Place(0, 1, 0)
    assert distributed.place_from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Place(3, 4, 1)
    with pytest.raises(distributed.DistributedError, match="torchrun"):
        distributed.place_from_environment({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(distributed.DistributedError, match="not an integer"):
        distributed.place_from_environment({"WORLD_SIZE": "two"})


def test_more_processes_than_the_smallest_batch_is_an_error_before_any_process_group(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    config = training.TrainConfig(run="w", width=8, depth=2, crop_size=16, crops_per_epoch=36, batch_size=32,
                                  epochs=1, device="cpu", data_options=SMOKE_DATA)
    with pytest.raises(training.TrainingError, match="8 processes cannot share batches of 32"):
        training.train(config, run_dir=tmp_path, progress=False)
    assert not torch.distributed.is_initialized()


def test_two_gloo_processes_reach_the_weights_of_one_process_with_the_same_global_batch(tmp_path):
    """71 crops an epoch in batches of 32: the last batch (7) is shared 4 + 3, which the loss scaling makes
    exact; batch norm uses the global batch's statistics. Rank 0 alone writes the run folder."""
    config = training.TrainConfig(run="ddp", width=8, depth=2, crop_size=16, crops_per_epoch=71, batch_size=32,
                                  epochs=2, device="cpu", data_options=SMOKE_DATA)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "kernels_lib.training.launch", str(tmp_path / "config.json"),
               "--run-dir", str(tmp_path / "two"), "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    one = training.train(config, run_dir=tmp_path / "one", progress=False)
    two = training.load_run(tmp_path / "two")
    expected, got = one.model.state_dict(), two.model.state_dict()
    assert list(got) == list(expected)
    for name in expected:        # weights, biases and batch-norm running statistics alike
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(expected["3.inner.0.weight"], training.build_model(config, one.provenance["data"]["n_classes"])[3].inner[0].weight)

    record = json.loads((tmp_path / "two" / training.PROVENANCE).read_text())
    assert record["distributed"]["world_size"] == 2 and record["distributed"]["backend"] == "gloo"
    assert "distributed" not in json.loads((tmp_path / "one" / training.PROVENANCE).read_text())
    assert [h["val_accuracy"] for h in record["history"]] == [h["val_accuracy"] for h in one.history]
    np.testing.assert_allclose([h["train_loss"] for h in record["history"][1:]],
                               [h["train_loss"] for h in one.history[1:]], atol=2e-5)
    # only rank 0 wrote, and whole files only: the same names as one process, no temporary files left
    assert sorted(p.name for p in (tmp_path / "two").rglob("*")) == sorted(p.name for p in (tmp_path / "one").rglob("*"))
    first = sorted((tmp_path / "two" / "kernels").iterdir())[0]          # the seeded initialisation, byte for byte
    assert first.read_bytes() == (tmp_path / "one" / "kernels" / first.name).read_bytes()
