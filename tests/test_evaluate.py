"""The k-means baseline and the evaluation shared with the autoencoder path."""
import numpy as np
import pytest

from kernels_lib.method import dog_bank, kmeans
from kernels_lib.analysis import evaluate
from kernels_lib import vocab
from kernels_lib.method.classify import PrototypeClassifier
from kernels_lib.errors import AnalysisError
from kernels_lib.preprocess import from_hyperplane, prepare


@pytest.fixture(scope="module")
def bank5():
    return (dog_bank.synthetic_bank(5, 3000, snr=4.0, seed=0), dog_bank.synthetic_bank(5, 1500, snr=4.0, seed=1),
            dog_bank.random_kernels(5, 1500, seed=2))


def test_evaluate_arithmetic_on_a_hand_made_case():
    """Two prototypes "on"/"off"; kernels placed at known angles: counts done by hand."""
    e = np.eye(24)
    clf = PrototypeClassifier("toy", (5, 5), e[:2], np.array(["on", "off"]), threshold=0.2)
    def kernel(v):
        return from_hyperplane(v[None])[0].reshape(5, 5)
    close_on, close_off = kernel(e[0] + 0.1 * e[5]), kernel(e[1] + 0.1 * e[6])
    far = kernel(e[0] + 2.0 * e[7])                  # nearest "on" but 1 − cos ≈ 0.55: unclustered
    kernels = np.stack([close_on, close_on, close_off, close_on, far])
    truth = ["on", "on", "off", "off", "on-dx"]      # the 4th is a wrong "on", the 5th a missed derivative
    ev = evaluate.evaluate(clf, kernels, truth)
    assert ev["accuracy"] == pytest.approx(3 / 5)
    assert ev["accuracy_clustered"] == pytest.approx(3 / 4)
    assert ev["clustered_fraction"] == pytest.approx(4 / 5)
    assert ev["chance"] == pytest.approx(2 / 5) and ev["unclustered"] == 1
    per = ev["per_class"].set_index("class")
    assert per.loc["on", ["support", "predicted"]].tolist() == [2, 3]
    assert per.loc["on", "precision"] == pytest.approx(2 / 3) and per.loc["on", "recall"] == 1.0
    assert per.loc["off", "precision"] == 1.0 and per.loc["off", "recall"] == pytest.approx(1 / 2)
    # a true class never predicted: recall 0, precision undefined (NaN, never 0), predicted 0 says why
    d1 = per.loc["1st-derivative"]
    assert d1[["support", "predicted", "recall"]].tolist() == [1, 0, 0.0] and np.isnan(d1["precision"])
    assert per["precision"].isna().tolist() == (per["predicted"] == 0).tolist()
    # the confusion matrix: rows the true classes, columns what they became ("unclustered" included)
    conf = ev["confusion"]
    assert list(conf.index) == ["on", "off", "1st-derivative"]
    assert list(conf.columns) == ["on", "off", "1st-derivative", "unclustered"]
    assert conf.loc["on"].tolist() == [2, 0, 0, 0] and conf.loc["off"].tolist() == [1, 1, 0, 0]
    assert conf.loc["1st-derivative"].tolist() == [0, 0, 0, 1]
    assert int(np.trace(conf.to_numpy()[:, :3])) == 3 and conf.to_numpy().sum() == 5
    with pytest.raises(AnalysisError, match="true classes"):
        evaluate.evaluate(clf, kernels, truth[:3])


def test_kmeans_baseline_finds_the_classes_and_ignores_noise(bank5):
    train, test, rnd = bank5
    clf = kmeans.kmeans_baseline(train.kernels, 16, seed=0)
    assert clf.method == "kmeans-16" and clf.prototypes.shape == (16, 24) and clf.threshold == 0.2
    np.testing.assert_allclose(np.linalg.norm(clf.prototypes, axis=1), 1.0)
    assert set(clf.labels) <= set(vocab.MERGED_CLASSES)
    assert clf.info["cluster_sizes"].sum() == len(train.kernels)
    ev = evaluate.evaluate(clf, test.kernels, test.classes, rnd)
    assert ev["accuracy"] > ev["chance"] + 0.2
    assert ev["random_clustered_fraction"] < 0.05         # i.i.d. noise must not look like a pattern
    per = ev["per_class"]
    scores = per[["precision", "recall"]].stack().dropna()     # NaN only where undefined (never predicted)
    assert scores.between(0, 1).all() and per["precision"].isna().tolist() == (per["predicted"] == 0).tolist()
    on = per.set_index("class").loc["on"]
    assert on.precision > 0.8 and on.recall > 0.8
    # same seed, same centroids; coordinates in, same answer as kernels in
    again = kmeans.kmeans_baseline(prepare(train.kernels).coords, 16, seed=0, kernel_shape=(5, 5))
    np.testing.assert_allclose(again.prototypes, clf.prototypes)
    assert again.labels.tolist() == clf.labels.tolist()


def test_kmeans_baseline_refuses_bad_input(bank5):
    train, _, _ = bank5
    with pytest.raises(AnalysisError, match="at least 64"):
        kmeans.kmeans_baseline(train.kernels[:10], 64)
    with pytest.raises(AnalysisError, match="kernel_shape"):
        kmeans.kmeans_baseline(np.zeros((10, 24)), 4)
    with pytest.raises(AnalysisError, match="unit rows"):
        kmeans.kmeans_baseline(np.ones((10, 24)), 4, kernel_shape=(5, 5))
    with pytest.raises(AnalysisError, match="no threshold for 3×3"):
        kmeans.kmeans_baseline(dog_bank.random_kernels(3, 50), 4)


def test_compare_scores_both_paths_with_one_function():
    train = dog_bank.synthetic_bank(7, 500, snr=2.0, seed=0)
    test = dog_bank.synthetic_bank(7, 300, snr=2.0, seed=1)
    summary, per_class, classifiers = evaluate.compare(
        train.kernels, test.kernels, test.classes, dog_bank.random_kernels(7, 300, seed=2), n_clusters=(10,), seed=0,
        autoencoder_kwargs=dict(hidden=(32, 16), max_epochs=3, lr=3e-3, batch_size=64, num_threads=1), n_codes=2000)
    assert summary["method"].tolist() == ["autoencoder", "kmeans-10"]
    assert summary["n_prototypes"].tolist() == [2000, 10]
    for col in ("accuracy", "clustered_fraction", "random_clustered_fraction"):
        assert summary[col].between(0, 1).all()
    # accuracy among clustered kernels is undefined (NaN) exactly when nothing was clustered
    assert summary["accuracy_clustered"].isna().tolist() == (summary["clustered_fraction"] == 0).tolist()
    assert summary["accuracy_clustered"].dropna().between(0, 1).all()
    assert set(per_class["method"]) == {"autoencoder", "kmeans-10"}
    ae = classifiers["autoencoder"]
    assert ae.codes is not None and len(ae.info["intervals"]) >= 1 and ae.threshold == 0.3
