"""Autoencoder training that survives a kill: a checkpoint after every window, a resume that ends in the
very bytes of an uninterrupted run, and checkpoints of another training or damaged ones never used."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kernels_lib.method import per_set
from kernels_lib.method.ae_loop import BatchStream
from kernels_lib.method.autoencoder import WEIGHTS_FILE, train

from conftest import stopped_training

ROOT = Path(__file__).resolve().parents[1]
#: Provenance fields that are wall times: the only ones a resumed run may change.
WALL_TIME = ("train_seconds", "samples_per_second", "created")
#: Windows of 2 batches; min_delta 10 is never met, so the rate drops after window 1 + patience and
#: 1 + 2·patience and training stops at 1 + 3·patience (the plateau, two drops and the stop all resume).
SHORT = dict(hidden=(16, 8), lr=3e-3, batch_size=32, window=64, max_samples=64 * 1000, patience=3,
             min_delta=10.0, lr_drops=2, lr_drop_factor=0.3, device="cpu", num_threads=1, progress=False)
LONG = {**SHORT, "patience": 30}          # 91 windows: time for a kill to land mid-run


def _kernels(n=300, seed=0):
    """Random 5×5 kernels: 300 rows, so passes of 9.4 batches end inside a batch."""
    return np.random.default_rng(seed).normal(size=(n, 5, 5))


def _same(a, b, tmp_path):
    """a and b saved: the same weights file bytes, loss history and provenance except its wall times."""
    wa, wb = a.save(tmp_path / "a", overwrite=True), b.save(tmp_path / "b", overwrite=True)
    assert (wa / WEIGHTS_FILE).read_bytes() == (wb / WEIGHTS_FILE).read_bytes()
    for (name, x), y in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(x, y), name
    assert a.provenance["loss_history"] == b.provenance["loss_history"]
    strip = lambda p: {k: v for k, v in p.items() if k not in WALL_TIME}   # noqa: E731
    assert strip(a.provenance) == strip(b.provenance)


def _interrupted(monkeypatch, kernels, path, after):
    """Train with a checkpoint and stop it (as Ctrl-C would) once `after` windows are saved."""
    with stopped_training(monkeypatch, after):
        train(kernels, checkpoint=path, **SHORT)
    assert path.is_file()
    return path


def test_batch_stream_continues_from_its_state():
    data = torch.arange(10).reshape(10, 1)
    a = BatchStream(data, 4, torch.Generator().manual_seed(0))
    [next(a) for _ in range(3)]                                   # 12 rows: inside the second pass
    b = BatchStream(data, 4, torch.Generator().manual_seed(5))
    b.load_state(a.state())
    assert all(torch.equal(next(a), next(b)) for _ in range(6))   # across two more pass boundaries
    with pytest.raises(ValueError, match="cannot continue"):
        BatchStream(data[:7], 4, torch.Generator()).load_state(a.state())


@pytest.mark.parametrize("stops", [[1], [5, 8], [10]])
def test_resumed_training_equals_the_uninterrupted_run(monkeypatch, tmp_path, capsys, stops):
    """Stopped after the first window; after the first rate drop, then again after the second (a resumed run
    stopped); after the last window (the plateau rule had stopped it): the run resumed from where it was
    last stopped ends in the same bytes, and the checkpoint is gone."""
    kernels = _kernels()
    whole = train(kernels, **SHORT)
    assert whole.provenance["windows_run"] == 10 and whole.provenance["lr_dropped_after_windows"] == [4, 7]
    path = tmp_path / "ckpt"
    for after in stops:
        _interrupted(monkeypatch, kernels, path, after)
    capsys.readouterr()
    resumed = train(kernels, checkpoint=path, **SHORT)
    assert f"resuming from {path}: {stops[-1]} windows done" in capsys.readouterr().out
    _same(whole, resumed, tmp_path)
    assert not path.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("change", [{"seed": 1}, {"data": 1}, {"lr": 1e-3}])
def test_a_checkpoint_of_another_training_is_not_used_and_the_run_says_why(monkeypatch, tmp_path, capsys, change):
    kernels = _kernels()
    path = _interrupted(monkeypatch, kernels, tmp_path / "ckpt", 5)
    capsys.readouterr()
    other = _kernels(seed=change["data"]) if "data" in change else kernels
    kw = {**SHORT, **{k: v for k, v in change.items() if k != "data"}}
    got = train(other, checkpoint=path, **kw)
    out = capsys.readouterr().out
    assert f"{path} was written for another training" in out and "training starts afresh" in out
    assert {"seed": "seed 0 -> 1", "data": "corpus_sha256", "lr": "lr 0.003 -> 0.001"}[next(iter(change))] in out
    assert "resuming" not in out
    _same(train(other, **kw), got, tmp_path)                     # a fresh run, bytes and all
    assert not path.exists()


def test_a_truncated_checkpoint_is_ignored_with_its_name_and_the_error(monkeypatch, tmp_path, capsys):
    """Documented choice (ae_checkpoint): an unreadable checkpoint is scratch state, not input; the run says
    which file and why, and starts afresh."""
    kernels = _kernels()
    path = _interrupted(monkeypatch, kernels, tmp_path / "ckpt", 5)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    got = train(kernels, checkpoint=path, **SHORT)
    out = capsys.readouterr().out
    assert f"{path}: cannot read the training checkpoint" in out and "training starts afresh" in out
    _same(train(kernels, **SHORT), got, tmp_path)
    assert not path.exists()


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _windows(path: Path) -> int:
    """Windows a checkpoint records (0 while there is none); it is replaced whole, so it is never read half-written."""
    try:
        return len(torch.load(path, weights_only=True)["loop"]["history"])
    except FileNotFoundError:
        return 0


def _start_and_kill(corpus: Path, path: Path, log: Path, windows: int) -> int:
    """Start training in a subprocess, SIGKILL it once its checkpoint records `windows` windows; returns the
    windows the checkpoint holds after the kill."""
    child = (f"import sys, numpy as np\nfrom kernels_lib.method.autoencoder import train\n"
             f"train(np.load(sys.argv[1]), checkpoint=sys.argv[2], **{LONG!r})\n")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", child, str(corpus), str(path)], env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        while proc.poll() is None and _windows(path) < windows:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the training ended before its kill:\n{log.read_text()}"
    return _windows(path)


def test_training_killed_with_sigkill_resumes_to_the_uninterrupted_bytes(tmp_path, capsys):
    """SIGKILL a training subprocess after a few windows, then resume here: the weights, loss history and
    provenance equal an uninterrupted run's."""
    kernels = _kernels()
    np.save(tmp_path / "corpus.npy", kernels)
    path = per_set.checkpoint_file(tmp_path, 5)                   # where notebook 05 keeps it: hidden
    landed = _start_and_kill(tmp_path / "corpus.npy", path, tmp_path / "run.log", windows=3)
    assert 3 <= landed < 91                                       # after some windows, before the end
    capsys.readouterr()
    resumed = train(kernels, checkpoint=path, **LONG)
    assert f"resuming from {path}: {landed} windows done" in capsys.readouterr().out
    whole = train(kernels, **LONG)
    assert whole.provenance["windows_run"] == 91
    _same(whole, resumed, tmp_path)
    assert not path.exists() and not list(tmp_path.glob(".*"))   # no checkpoint, no temporary left
