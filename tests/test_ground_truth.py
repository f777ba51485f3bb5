"""The whole automatic method against ground truth: train → auto-label → classify.

A synthetic DoG-family bank (kernels_lib.dog) has known classes. The autoencoder is trained
on it, its spectrum labelled automatically from the templates, and a second, independent
bank classified at the paper's threshold (0.3 for 7×7, 0.2 for 5×5): most kernels must land in
their own merged class, and i.i.d. random kernels must hardly cluster at all.

Deliberately small (tens of thousands of kernels, ≤ 30 epochs, hidden widths 256-128-64-32)
so that it runs in the test suite; the reference autoencoders in data/autoencoders are bigger.
"""
from pathlib import Path

import numpy as np
import pytest

from kernels_lib import dog
from kernels_lib.autoencoder import Autoencoder, train
from kernels_lib.classify import label_kernels
from kernels_lib.vocab import PAPER_THRESHOLDS
from kernels_lib.preprocess import centre_normalise
from kernels_lib.spectrum import CLASSIFY_CODES, LABEL_FILE, code_labels, decode_spectrum, label_spectrum, read_labels

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "autoencoders"

#: kernel size → (SNR of the banks, training kernels, accuracy the method must reach)
CASES = {7: (2.0, 24_000, 0.93), 5: (4.0, 24_000, 0.90)}
TRAIN = dict(hidden=(256, 128, 64, 32), lr=1e-3, batch_size=256, max_epochs=30, patience=5, lr_drops=0,
             device="cpu", num_threads=1, progress=False)


def run_method(directory, k: int, snr: float, n_train: int, seed: int = 0, n_test: int = 20_000, **train_kwargs):
    """Train on one bank, label the spectrum, classify a fresh bank; return (ae, truth, Classification)."""
    bank = dog.synthetic_bank(k, n_train, snr=snr, seed=seed)
    ae = train(bank.kernels, seed=seed, corpus=f"dog.synthetic_bank({k}, {n_train}, snr={snr}, seed={seed})",
               **{**TRAIN, **train_kwargs})
    ae.save(directory)
    labels_path = label_spectrum(directory, ae=ae)
    test = dog.synthetic_bank(k, n_test, snr=snr, seed=seed + 1000)
    return ae, labels_path, classify_bank(directory, labels_path, test.kernels), test.merged


def classify_bank(directory, labels_path, kernels):
    """Classify kernels with a saved autoencoder and its label file, the paper's way."""
    ae = Autoencoder.load(directory, device="cpu")
    spectrum = decode_spectrum(ae, CLASSIFY_CODES)
    k = ae.kernel_shape[0]
    decoded = spectrum.kernels.reshape(CLASSIFY_CODES, -1)      # centred, unit length
    x = centre_normalise(kernels.reshape(len(kernels), -1))     # same space as decoded
    return label_kernels(x, decoded, code_labels(labels_path, spectrum.codes), PAPER_THRESHOLDS[k])


def per_class(truth, predicted) -> dict:
    """Precision and recall of every true merged class."""
    out = {}
    for c in sorted(set(truth)):
        hit = predicted == c
        out[c] = (float(np.mean(truth[hit] == c)) if hit.any() else 0.0, float(np.mean(predicted[truth == c] == c)))
    return out


@pytest.fixture(scope="module", params=sorted(CASES), ids=lambda k: f"{k}x{k}")
def method(request, tmp_path_factory):
    k = request.param
    snr, n_train, _ = CASES[k]
    directory = tmp_path_factory.mktemp(f"ae{k}") / "ae"
    ae, labels_path, result, truth = run_method(directory, k, snr, n_train)
    return k, ae, directory, labels_path, result, truth


@pytest.mark.slow
def test_synthetic_bank_lands_in_its_own_class(method):
    k, ae, _, labels_path, result, truth = method
    snr, _, needed = CASES[k]
    accuracy = float(np.mean(result.label == truth))
    stats = per_class(truth, result.label)
    print(f"\n{k}x{k} SNR {snr}: accuracy {accuracy:.4f}, clustered {result.clustered.mean():.4f}, "
          f"{len(read_labels(labels_path))} intervals, epochs {ae.provenance['epochs_run']}, "
          f"loss {ae.provenance['best_loss']:.4f}")
    for c, (precision, recall) in stats.items():
        print(f"  {c:15s} precision {precision:.3f} recall {recall:.3f}")
    assert accuracy >= needed
    # The frequent classes are found cleanly (second derivatives and squares are rarer and
    # partly absorbed by On/Off-centre; their numbers are printed above).
    for c in ("on", "off", "on-cross", "off-cross", "1st-derivative"):
        precision, recall = stats[c]
        assert precision >= 0.9 and recall >= 0.9, (c, precision, recall)


@pytest.mark.slow
def test_random_kernels_hardly_cluster(method):
    k, _, directory, labels_path, _, _ = method
    result = classify_bank(directory, labels_path, dog.random_kernels(k, 20_000, seed=7))
    assert result.clustered.mean() <= 0.01


def test_same_seed_same_labels_and_assignments(tmp_path):
    """Trained twice with one seed: byte-identical label file and identical assignments."""
    bank = dog.synthetic_bank(5, 3_000, snr=4.0, seed=3)
    test = dog.synthetic_bank(5, 2_000, snr=4.0, seed=4).kernels
    runs = []
    for name in ("a", "b"):
        ae = train(bank.kernels, seed=11, **{**TRAIN, "hidden": (64, 32, 16, 8), "max_epochs": 4})
        directory = ae.save(tmp_path / name)
        labels_path = label_spectrum(directory, n=2_000, ae=ae)
        runs.append((labels_path.read_bytes(), classify_bank(directory, labels_path, test)))
    (bytes_a, a), (bytes_b, b) = runs
    assert bytes_a == bytes_b
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.code_index, b.code_index)


@pytest.mark.parametrize("k", sorted(CASES))
def test_reference_autoencoders_pass_the_same_checks(k):
    """The committed autoencoders and label files (data/autoencoders) name every class and pass."""
    directory = REFERENCE / f"{k}x{k}"
    ae = Autoencoder.load(directory, device="cpu")
    assert ae.kernel_shape == (k, k) and ae.provenance["corpus"] and "n_degenerate_excluded" in ae.provenance
    classes = {"on", "off", "on-cross", "off-cross", "1st-derivative", "2nd-derivative"}
    if k == 5:
        classes |= {"on-square", "off-square"}
    assert classes <= {iv.label for iv in read_labels(directory / LABEL_FILE)}
    snr, _, needed = CASES[k]
    bank = dog.synthetic_bank(k, 5_000, snr=snr, seed=99)
    result = classify_bank(directory, directory / LABEL_FILE, bank.kernels)
    assert np.mean(result.label == bank.merged) >= needed
    assert classify_bank(directory, directory / LABEL_FILE, dog.random_kernels(k, 5_000, seed=98)).clustered.mean() <= 0.01
