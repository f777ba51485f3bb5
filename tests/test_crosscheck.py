"""Agreement between labellings (`kernels_lib.analysis.crosscheck`): Cohen's κ against a textbook example and
scikit-learn's implementation, agreement matrices, and the σ/θ statistics beside their control."""
import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from kernels_lib.analysis import crosscheck
from kernels_lib import vocab
from kernels_lib.errors import AnalysisError


def test_kappa_of_a_textbook_table():
    """Two raters, 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o = 0.7, p_e = 0.5, κ = 0.4."""
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert crosscheck.cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_agrees_with_scikit_learn_on_random_labels():
    rng = np.random.default_rng(0)
    names = np.array(["on", "off", "1st-derivative", "unclustered", "other"])
    for n, p in itertools.product((10, 300), (0.0, 0.5, 0.9)):
        a = rng.choice(names, n)
        b = np.where(rng.random(n) < p, a, rng.choice(names[:3], n))
        assert crosscheck.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_is_one_for_identical_labels_and_undefined_when_chance_is_certain():
    assert crosscheck.cohen_kappa(["on", "off", "on"], ["on", "off", "on"]) == pytest.approx(1.0)
    assert np.isnan(crosscheck.cohen_kappa(["on"] * 5, ["on"] * 5))       # p_e = 1: undefined, not 1 or 0
    assert np.isnan(crosscheck.cohen_kappa([], []))
    with pytest.raises(AnalysisError, match="equal length"):
        crosscheck.cohen_kappa(["on"], ["on", "off"])


def test_agreement_matrix_counts_pairs_in_display_order():
    m = crosscheck.agreement_matrix(["unclustered", "on", "on", "off"], ["on", "on", "unclustered", "off"], "ae", "fit")
    assert list(m.index) == ["on", "off", "unclustered"] and list(m.columns) == ["on", "off", "unclustered"]
    assert m.loc["on", "on"] == 1 and m.loc["on", "unclustered"] == 1 and m.loc["unclustered", "on"] == 1
    assert m.to_numpy().sum() == 4 and m.index.name == "ae" and m.columns.name == "fit"


def test_summary_splits_the_clustered_decision_from_the_class():
    labels = pd.DataFrame({
        "kernel_size": 5, "group": "trained", "degenerate": [False] * 6 + [True],
        "autoencoder": ["on", "on", "off", "unclustered", "unclustered", "1st-derivative", "degenerate"],
        "fit": ["on", "on", "off", "unclustered", "on", "2nd-derivative", "degenerate"],
        "kmeans": ["on", "off", "off", "unclustered", "unclustered", "1st-derivative", "degenerate"],
    })
    summary = crosscheck.agreement_summary(labels).set_index("pair")
    row = summary.loc["autoencoder vs fit"]
    assert row["n"] == 6 and row["agreement"] == pytest.approx(4 / 6)      # the degenerate kernel is left out
    assert row["n_both_clustered"] == 4
    assert row["kappa_class_both_clustered"] == pytest.approx(cohen_kappa_score(["on", "on", "off", "1st-derivative"],
                                                                                ["on", "on", "off", "2nd-derivative"]))
    flags = [True, True, True, False, False, True]
    assert row["kappa_clustered"] == pytest.approx(cohen_kappa_score(flags, [True, True, True, False, True, True]))
    assert row["clustered_autoencoder"] == pytest.approx(4 / 6) and row["clustered_fit"] == pytest.approx(5 / 6)


def test_axis_preference_against_uniform_orientations():
    rng = np.random.default_rng(1)
    uniform = crosscheck.axis_preference(rng.uniform(0, 360, 4000))
    assert uniform["share_near_axis"] == pytest.approx(0.25, abs=0.03) and uniform["p_value"] > 0.001
    on_axes = crosscheck.axis_preference(rng.choice([0.0, 90.0, 180.0, 270.0], 400) + rng.normal(0, 3, 400))
    assert on_axes["share_near_axis"] > 0.95 and on_axes["p_value"] < 1e-50
    empty = crosscheck.axis_preference([np.nan])
    assert empty["n"] == 0 and np.isnan(empty["share_near_axis"]) and np.isnan(empty["p_value"])


def test_scale_depth_is_spearman_and_undefined_without_variation():
    depth = np.linspace(0, 1, 50)
    assert crosscheck.scale_depth(np.exp(depth), depth)["rho"] == pytest.approx(1.0)
    assert np.isnan(crosscheck.scale_depth(np.ones(50), depth)["rho"])
    assert np.isnan(crosscheck.scale_depth([1.0, 2.0], [0.1, 0.2])["rho"])


def test_orientation_summary_sets_each_model_beside_its_twin():
    rng = np.random.default_rng(2)
    n = 400
    trained = pd.DataFrame({"group": "trained", "fit": "1st-derivative", "kind": "d1",
                            "theta": rng.choice([0.0, 90.0], n) + rng.normal(0, 2, n),
                            "sigma": np.linspace(0.5, 1.5, n), "depth": np.linspace(0, 1, n), "stride": 1})
    twin = pd.DataFrame({"group": "random init", "fit": vocab.UNCLUSTERED, "kind": "d1", "theta": rng.uniform(0, 360, n),
                         "sigma": rng.uniform(0.5, 1.5, n), "depth": np.linspace(0, 1, n), "stride": 1})
    labels = pd.concat([trained, twin], ignore_index=True).assign(kernel_size=5, model="m", degenerate=False)
    [row] = crosscheck.orientation_scale_summary(labels).to_dict("records")
    assert row["n_first_derivatives_trained"] == n and row["n_first_derivatives_twin"] == n   # twins: every fit
    assert row["share_near_axis_trained"] > 0.95 and row["share_near_axis_twin"] < 0.35
    assert row["axis_p_vs_twin"] < 1e-30
    assert row["sigma_depth_rho_trained"] == pytest.approx(1.0) and abs(row["sigma_depth_rho_twin"]) < 0.2
    assert np.isnan(row["median_sigma_stride2_trained"])                  # no stride-2 layer: undefined


def test_orientation_summary_of_a_set_without_twins_leaves_the_twin_columns_undefined():
    """The paper's set has no random-init twins: the twin columns exist (notebook 16 selects them) and are NaN."""
    n = 50
    labels = pd.DataFrame({"group": "trained", "fit": "1st-derivative", "kind": "d1", "theta": np.zeros(n),
                           "sigma": np.linspace(0.5, 1.5, n), "depth": np.linspace(0, 1, n), "stride": 1,
                           "kernel_size": 7, "model": "m", "degenerate": False})
    [row] = crosscheck.orientation_scale_summary(labels).to_dict("records")
    assert row["n_first_derivatives_trained"] == n
    for name in ("n_first_derivatives_twin", "share_near_axis_twin", "sigma_depth_rho_twin", "axis_p_vs_twin"):
        assert np.isnan(row[name])
