"""The paper's autoencoder: architecture, loss, training, determinism, save/load."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from kernels_lib.method.autoencoder import (
    BASIS_FILE, CONFIG_FILE, PROVENANCE_FILE, WEIGHTS_FILE, Autoencoder, KernelAutoencoder, cosine_loss, train,
)
from kernels_lib.method.ae_loop import BatchStream, Plateau, default_threads
from kernels_lib.method.corpus import train_from_db
from kernels_lib.errors import CorruptFileError
from kernels_lib.preprocess import prepare

SMALL = (64, 32, 16, 8)


def _three_patterns(n_per_class=300, k=5, noise=0.3, seed=0):
    """Blob, inverted blob and a horizontal ramp, with Gaussian noise: three well separated shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:k, :k] - (k - 1) / 2
    blob = np.exp(-(x**2 + y**2) / 2.0)
    templates = np.stack([blob, -blob, x / np.abs(x).max()])
    templates = templates - templates.mean(axis=(1, 2), keepdims=True)
    templates /= np.linalg.norm(templates.reshape(3, -1), axis=1)[:, None, None]
    labels = np.repeat(np.arange(3), n_per_class)
    kernels = templates[labels] + noise / k * rng.normal(size=(len(labels), k, k))
    return kernels, labels, templates


@pytest.fixture(scope="module")
def trained():
    kernels, labels, templates = _three_patterns()
    ae = train(kernels, hidden=SMALL, lr=3e-3, batch_size=32, max_epochs=40, patience=4,
               seed=3, device="cpu", num_threads=1, progress=False, corpus="three synthetic patterns")
    return ae, kernels, labels, templates


def test_architecture_matches_the_paper():
    """Four hidden layers with LeakyReLU, 1-D sigmoid code, mirrored decoder ending in tanh."""
    m = KernelAutoencoder(48, (512, 256, 128, 64))
    enc = [type(l) for l in m.encoder]
    dec = [type(l) for l in m.decoder]
    assert enc == [nn.Linear, nn.LeakyReLU] * 4 + [nn.Linear, nn.Sigmoid]
    assert dec == [nn.Linear, nn.LeakyReLU] * 4 + [nn.Linear, nn.Tanh]
    enc_shapes = [tuple(l.weight.shape) for l in m.encoder if isinstance(l, nn.Linear)]
    dec_shapes = [tuple(l.weight.shape) for l in m.decoder if isinstance(l, nn.Linear)]
    assert enc_shapes == [(512, 48), (256, 512), (128, 256), (64, 128), (1, 64)]
    assert dec_shapes == [(64, 1), (128, 64), (256, 128), (512, 256), (48, 512)]
    z = m.encode(torch.randn(10, 48))
    assert z.shape == (10,) and bool(((z >= 0) & (z <= 1)).all())
    out = m.decode(torch.linspace(0, 1, 7))
    assert out.shape == (7, 48) and bool((out.abs() <= 1).all())


def test_loss_is_the_centred_cosine_in_kernel_space():
    """Cosine in hyperplane coordinates equals the mean-centred cosine of the raw kernels."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 7, 7)) + 3.0   # offsets must not matter
    b = rng.normal(size=(50, 7, 7)) - 1.0
    ca = a.reshape(50, -1) - a.reshape(50, -1).mean(1, keepdims=True)
    cb = b.reshape(50, -1) - b.reshape(50, -1).mean(1, keepdims=True)
    expected = 1 - np.mean(np.sum(ca * cb, 1) / np.linalg.norm(ca, axis=1) / np.linalg.norm(cb, axis=1))
    got = cosine_loss(torch.as_tensor(prepare(a).coords), 2.5 * torch.as_tensor(prepare(b).coords))
    assert float(got) == pytest.approx(expected, abs=1e-12)
    assert float(cosine_loss(torch.as_tensor(prepare(a).coords), torch.as_tensor(prepare(-a).coords))) == pytest.approx(2.0)


def test_training_separates_patterns_and_decodes_them(trained):
    """Each pattern owns its own code range, and decoding there gives the pattern back."""
    ae, kernels, labels, templates = trained
    codes = ae.encode(kernels)
    ranges = sorted((codes[labels == c].min(), codes[labels == c].max(), c) for c in range(3))
    for (lo1, hi1, _), (lo2, hi2, _) in zip(ranges, ranges[1:]):
        assert hi1 < lo2, f"code ranges overlap: {ranges}"
    for c in range(3):
        decoded = ae.decode([np.median(codes[labels == c])])[0]
        assert float(np.sum(decoded * templates[c])) > 0.95
    assert ae.provenance["best_loss"] < 0.1
    assert ae.provenance["best_loss"] == min(ae.provenance["loss_history"])


def test_decode_gives_centred_unit_kernels(trained):
    ae = trained[0]
    out = ae.decode(np.linspace(0, 1, 11))
    assert out.shape == (11, 5, 5)
    flat = out.reshape(11, -1)
    np.testing.assert_allclose(flat.sum(1), 0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-9)
    with pytest.raises(ValueError, match="finite"):
        ae.decode([0.5, np.nan])


def test_same_seed_same_weights_other_seed_differs():
    kernels, _, _ = _three_patterns(n_per_class=50)
    kw = dict(hidden=SMALL, lr=1e-3, batch_size=32, max_epochs=3, device="cpu", num_threads=1, progress=False)
    a, b, c = train(kernels, seed=5, **kw), train(kernels, seed=5, **kw), train(kernels, seed=6, **kw)
    for (name, wa), wb, wc in zip(a.module.state_dict().items(), b.module.state_dict().values(),
                                  c.module.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert not all(torch.equal(x, y) for x, y in zip(a.module.state_dict().values(), c.module.state_dict().values()))
    assert a.provenance["loss_history"] == b.provenance["loss_history"]


def test_training_can_continue_from_an_autoencoder(trained):
    """init= starts from its weights: the first epoch's loss is already near the trained one's best
    (a fresh network's first epoch is far above it), and the provenance says so; other widths are refused."""
    ae, kernels, _, _ = trained
    kw = dict(hidden=SMALL, lr=1e-4, batch_size=32, max_epochs=1, device="cpu", num_threads=1, progress=False)
    fresh, warm = train(kernels, seed=3, **kw), train(kernels, seed=3, init=ae, **kw)
    assert warm.provenance["loss_history"][0] < 1.5 * ae.provenance["best_loss"] < fresh.provenance["loss_history"][0]
    assert warm.provenance["init"]["best_loss"] == ae.provenance["best_loss"] and fresh.provenance["init"] is None
    with pytest.raises(ValueError, match="hidden widths"):
        train(kernels, **{**kw, "hidden": (8, 4)}, init=ae)


def test_degenerate_kernels_are_excluded_and_counted():
    kernels, _, _ = _three_patterns(n_per_class=40)
    bad = np.stack([np.zeros((5, 5)), np.full((5, 5), 2.0), np.full((5, 5), np.nan)])
    ae = train(np.concatenate([kernels, bad]), hidden=SMALL, max_epochs=2, device="cpu", num_threads=1, progress=False)
    p = ae.provenance
    assert (p["n_kernels"], p["n_used"], p["n_degenerate_excluded"]) == (123, 120, 3)
    assert np.isfinite(p["loss_history"]).all()
    with pytest.raises(ValueError, match="3 of 4 kernels are degenerate"):
        ae.encode(np.concatenate([kernels[:1], bad]))
    with pytest.raises(ValueError, match=r"\[N, 5, 5\]"):
        ae.encode(np.zeros((2, 7, 7)))


def test_epoch_rule_stops_training_and_keeps_the_best_epoch():
    """The reference autoencoders' rule (max_epochs given): a window is one pass over the corpus."""
    kernels, _, _ = _three_patterns(n_per_class=40)
    threads = torch.get_num_threads()
    ae = train(kernels, hidden=SMALL, max_epochs=50, patience=2, min_delta=10.0, lr_drops=0, device="cpu", num_threads=1,
               progress=False)
    # Epoch 1 improves on "nothing yet"; no later epoch can improve by 10: stop after 1 + patience.
    # The weights kept are those of the lowest loss, improvement by min_delta or not.
    p = ae.provenance
    assert p["stopping_rule"] == "epochs" and p["windows_run"] == 3 and p["epochs_run"] == 3.0
    assert p["best_window"] == int(np.argmin(p["loss_history"])) + 1 and p["best_loss"] == min(p["loss_history"])
    assert ae.provenance["torch_threads"] == 1 and torch.get_num_threads() == threads   # restored
    # One learning-rate drop first: it buys another `patience` epochs.
    ae = train(kernels, hidden=SMALL, max_epochs=50, patience=2, min_delta=10.0, lr_drops=1, device="cpu",
               num_threads=1, progress=False)
    assert ae.provenance["windows_run"] == 5 and ae.provenance["lr_dropped_after_windows"] == [3]


def test_plateau_rule_on_a_made_up_loss_curve():
    """Progress resets the wait; `patience` windows without it drop the rate, then stop; the best
    loss is tracked even when it improves by less than min_delta."""
    rule = Plateau(patience=2, min_delta=0.1, lr_drops=1)
    losses = [1.0, 0.8, 0.75, 0.72, 0.5, 0.45, 0.46]
    verdicts = [rule.update(i + 1, v) for i, v in enumerate(losses)]
    # 0.75 and 0.72 do not beat 0.8 by 0.1: the one drop after window 4. 0.5 is progress; 0.45 (best,
    # but by less than 0.1) and 0.46 are the second plateau: stop at window 7.
    assert verdicts == ["go", "go", "go", "drop", "go", "go", "stop"]
    assert rule.drops == [4] and (rule.best, rule.best_window) == (0.45, 6)


def test_sample_rule_stops_on_a_plateau_and_not_before():
    """Windows are counted in samples, whatever the corpus size: with a plateau no window can
    leave (min_delta 10) training stops after 1 + patience (+ patience per drop) windows of
    `window` samples; where every window counts as progress (min_delta −1) it runs to max_samples."""
    kernels, _, _ = _three_patterns(n_per_class=40)              # 120 kernels, windows of 4 passes
    kw = dict(hidden=SMALL, lr=1e-3, batch_size=32, window=480, device="cpu", num_threads=1, progress=False)
    flat = train(kernels, patience=2, min_delta=10.0, lr_drops=1, max_samples=100_000, **kw).provenance
    assert flat["stopping_rule"] == "samples" and flat["window_samples"] == 480
    assert flat["windows_run"] == 5 and flat["lr_dropped_after_windows"] == [3]
    assert flat["samples_seen"] == 5 * 480 and flat["epochs_run"] == 20.0
    falling = train(kernels, patience=2, min_delta=-1.0, lr_drops=0, max_samples=10 * 480, **kw).provenance
    assert falling["windows_run"] == 10 and falling["samples_seen"] == 4800
    assert falling["best_loss"] == min(falling["loss_history"]) < falling["loss_history"][0]


def test_batches_cover_the_corpus_once_per_pass():
    """Batches of a fixed size, passes joined end to end: every kernel once per pass, none dropped."""
    data = torch.arange(10).reshape(10, 1)
    stream = BatchStream(data, 4, torch.Generator().manual_seed(0))
    seen = torch.cat([next(stream) for _ in range(5)]).reshape(-1)      # 20 rows = two passes
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert seen[:10].tolist() != seen[10:].tolist()                      # reshuffled between passes


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_data_and_threads_same_weights(threads):
    """Determinism holds on more than one thread too (the default is every core)."""
    kernels, _, _ = _three_patterns(n_per_class=100)
    kw = dict(hidden=(128, 64, 32, 16), lr=3e-3, batch_size=256, window=1024, max_samples=8192, device="cpu",
              num_threads=threads, progress=False)
    a, b = train(kernels, seed=2, **kw), train(kernels, seed=2, **kw)
    assert a.provenance["torch_threads"] == threads
    for (name, wa), wb in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert a.provenance["loss_history"] == b.provenance["loss_history"]


def test_default_threads_are_every_core():
    kernels, _, _ = _three_patterns(n_per_class=5)
    ae = train(kernels, hidden=SMALL, window=64, max_samples=64, device="cpu", progress=False)
    assert ae.provenance["torch_threads"] == default_threads() >= 1


def test_bad_training_arguments_are_refused():
    kernels, _, _ = _three_patterns(n_per_class=5)
    with pytest.raises(ValueError, match="at least 2 non-degenerate"):
        train(np.zeros((10, 5, 5)), progress=False)
    with pytest.raises(ValueError, match="positive"):
        train(kernels, lr=0, progress=False)


def test_save_load_round_trip(trained, tmp_path):
    ae = trained[0]
    target = ae.save(tmp_path / "ae5")
    assert sorted(p.name for p in target.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE, BASIS_FILE, PROVENANCE_FILE])
    assert [p.name for p in tmp_path.iterdir()] == ["ae5"]           # no temporary left behind
    back = Autoencoder.load(target, device="cpu")
    codes = np.linspace(0, 1, 25)
    np.testing.assert_array_equal(back.decode(codes), ae.decode(codes))
    np.testing.assert_array_equal(back.encode(trained[1][:20]), ae.encode(trained[1][:20]))
    prov = json.loads((target / PROVENANCE_FILE).read_text())
    for key in ("corpus", "n_kernels", "n_degenerate_excluded", "seed", "epochs_run", "best_loss", "torch_version"):
        assert key in prov
    assert prov["corpus"] == "three synthetic patterns" and back.provenance == prov
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ae.save(target)
    (target / "labels.yaml").write_text("intervals: []\n")
    ae.save(target, overwrite=True)
    assert not (target / "labels.yaml").exists()                      # labels of the old spectrum go
    assert [p.name for p in tmp_path.iterdir()] == ["ae5"]


def test_load_names_the_bad_file(trained, tmp_path):
    target = trained[0].save(tmp_path / "ae")
    (target / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CorruptFileError, match=WEIGHTS_FILE):
        Autoencoder.load(target)
    (target / CONFIG_FILE).unlink()
    with pytest.raises(CorruptFileError, match=f"{CONFIG_FILE} is missing"):
        Autoencoder.load(target)
    with pytest.raises(FileNotFoundError, match="train one"):
        Autoencoder.load(tmp_path / "nothing")


def test_train_from_db_uses_trained_kernels_and_records_the_corpus(tmp_path):
    """Random-init twins stay out, synthetic kernels come in, and the provenance says so."""
    from kernels_lib.method import dog_bank
    from kernels_lib.database import store
    from kernels_lib.records import ConvLayer, kernel_table

    def layer(weights):
        return ConvLayer("blocks.0.conv_dw", weights[:, None].astype(np.float32), in_channels=len(weights), groups=len(weights))

    trained = dog_bank.synthetic_bank(5, 96, snr=4.0, seed=1).kernels
    trained[0] = 0.0                                             # one pruned kernel
    store.write_kernels(kernel_table([layer(trained)], "net", "v1", "module"), tmp_path / "db" / "net.parquet")
    twin = dog_bank.random_kernels(5, 64, seed=2)
    store.write_kernels(kernel_table([layer(twin)], "net", "random-init-seed0", "module"), tmp_path / "db" / "twin.parquet")
    seven = dog_bank.random_kernels(7, 8, seed=3)
    store.write_kernels(kernel_table([layer(seven)], "other", "v1", "module"), tmp_path / "db" / "seven.parquet")

    ae = train_from_db(5, tmp_path / "db", tmp_path / "ae", synthetic={"n": 50, "snr": 4.0, "seed": 0},
                       note="test corpus", hidden=SMALL, max_epochs=1, device="cpu", num_threads=1, progress=False)
    p = Autoencoder.load(tmp_path / "ae").provenance
    assert (p["n_kernels"], p["n_degenerate_excluded"], p["n_used"]) == (146, 1, 145)
    corpus = p["corpus"]
    assert corpus["models"] == {"net [v1]": 96} and corpus["random_init_twins_left_out"] == 64
    assert corpus["synthetic"]["n_kernels"] == 50 and corpus["synthetic"]["snr"] == 4.0
    assert corpus["note"] == "test corpus" and ae.kernel_shape == (5, 5)
    with pytest.raises(ValueError, match="no trained 3×3 kernels"):
        train_from_db(3, tmp_path / "db", progress=False)
    with pytest.raises(ValueError, match="give a kernel database"):
        train_from_db(5)


def test_saved_directory_follows_the_umask(trained, tmp_path):
    import os
    import stat

    target = trained[0].save(tmp_path / "ae")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask
    assert {stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()} == {0o666 & ~mask}


@pytest.mark.parametrize("preset", [None, "ACTIVE"])
def test_openmp_waits_passively_unless_told_otherwise(preset):
    """Importing kernels_lib (before torch) makes OpenMP threads wait passively; spinning ones starve each
    other on a loaded machine. A policy the user set is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run([sys.executable, "-c", "import kernels_lib, os; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == (preset or "PASSIVE")
