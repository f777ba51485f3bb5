"""Notebooks 16 (the direct fit: agreement with the autoencoder and k-means, σ and θ per layer) and 17
(how few prototypes explain a corpus) run headlessly under papermill on the smoke set; assert on the
JSON they record."""
import numpy as np
import pytest

from kernels_lib.analysis import fit
from kernels_lib.database import store
from kernels_lib import vocab

from conftest import assert_png, run_notebook

PPOCR_CLS = "ch_ppocr_mobile_v2.0_cls_mobile"      # the smoke set's only trained 5×5 kernels (800)
ATTO = "convnextv2_atto"                           # its only 7×7 kernels: a random-init twin (1,840)


def _kappa_from_matrix(matrix: dict) -> float:
    """Cohen's κ recomputed from a recorded agreement matrix {row label: {column label: count}}."""
    rows = sorted(matrix)
    cols = sorted({c for r in matrix.values() for c in r})
    labels = sorted(set(rows) | set(cols))
    m = np.array([[matrix.get(a, {}).get(b, 0) for b in labels] for a in labels], dtype=float)
    n = m.sum()
    p_o = np.trace(m) / n
    p_e = (m.sum(1) @ m.sum(0)) / n ** 2
    return (p_o - p_e) / (1 - p_e)


@pytest.mark.slow
def test_16_fit_family_records_agreement_and_scale_beside_the_twins(tmp_path, smoke_db):
    result, out = run_notebook("16_fit_family", tmp_path, smoke_db)
    assert result["thresholds"] == {"5x5": 0.2, "7x7": 0.3}                      # the paper's, for all methods
    assert {k: a["kind"] for k, a in result["autoencoders"].items()} == {"5x5": "reference", "7x7": "reference"}
    assert result["n_kernels"] == {"5x5": {"trained": 800}, "7x7": {"random init": 1840}}
    assert result["n_fitted"] == 800 + 1840
    assert not [key for key in result if "seconds" in key]                    # no wall time: the same bytes every run

    # the fit's labels are what fit.fit_labels gives on the same database, under the same threshold
    meta, kernels = store.read_kernel_array(smoke_db / "smoke", 5, models=[PPOCR_CLS])
    expected = fit.fit_labels(fit.fit_kernels(kernels), kernel_size=5)
    counts = result["labels"]["5x5"]["trained"]["fit"]
    assert counts == {str(k): int(v) for k, v in zip(*np.unique(expected, return_counts=True))}
    assert len(counts) > 2                                                      # several classes, not only "unclustered"

    by_pair = {(r["kernel_size"], r["group"], r["pair"]): r for r in result["agreement"]}
    assert set(by_pair) == {(k, g, p) for k, g in ((5, "trained"), (7, "random init"))
                            for p in ("autoencoder vs fit", "autoencoder vs kmeans", "fit vs kmeans")}
    trained = by_pair[5, "trained", "autoencoder vs fit"]
    matrix = result["agreement_matrices"]["5x5 trained"]
    assert sum(sum(r.values()) for r in matrix.values()) == trained["n"] == 800 - sum(
        v for c, v in counts.items() if c == vocab.DEGENERATE)
    assert trained["kappa"] == pytest.approx(_kappa_from_matrix(matrix), abs=1e-9)
    assert -1 <= trained["kappa"] <= 1 and trained["n_both_clustered"] > 0
    # random kernels: the fit leaves almost all 7×7 twins unclustered
    twins = by_pair[7, "random init", "autoencoder vs fit"]
    assert twins["clustered_fit"] <= 0.01 and twins["n"] == 1840

    rows = {(r["kernel_size"], r["model"]): r for r in result["orientation_scale"]}
    assert set(rows) == {(5, PPOCR_CLS), (7, ATTO)}
    assert rows[7, ATTO]["n_first_derivatives_twin"] > 0 and rows[7, ATTO].get("share_near_axis_trained") is None
    assert rows[5, PPOCR_CLS]["axis_p_vs_twin"] is None                        # no twin of it in the smoke set: undefined
    assert {"agreement_5x5", "agreement_7x7", "theta_by_layer_5x5", "sigma_by_layer_5x5", "sigma_by_layer_7x7",
            "axis_distance_7x7", "examples_5x5_trained"} <= set(result["figures"])
    for path in result["figures"].values():
        assert_png(path)
    assert {"kappa", "orientation_scale", "agreement_table_5x5"} <= set(result["tables"])
    assert (out / "tables" / "fit_kappa.md").is_file() and (out / "tables" / "fit_agreement_5x5.csv").is_file()


@pytest.mark.slow
def test_17_master_keys_curves_rise_for_trained_kernels_and_stay_flat_for_random_ones(tmp_path, smoke_db):
    result, out = run_notebook("17_master_keys", tmp_path, smoke_db, k_max=12, n_fitted=300, n_decoded=300)
    summary = {(r["pool"], r["kernel_size"], r["group"], r["model"]): r for r in result["summary"]}
    assert ("fitted", 5, "trained", "all models") in summary and ("decoded", 7, "random init", "all models") in summary
    for key, share in result["curves"].items():
        share = np.array([np.nan if s is None else s for s in share])
        assert len(share) == 12
        assert np.all(np.diff(share) >= -1e-12) and np.all((share >= 0) & (share <= 1)), key   # greedy never loses ground
    trained = summary["fitted", 5, "trained", "all models"]
    # PP-OCR's text classifier is the offline set's least DoG-like model (~10 % explained by 50 prototypes)
    assert trained["n_kernels"] > 700 and trained["share_at_12"] > trained["share_at_1"] > 0
    assert trained["share_at_8"] == pytest.approx(sum(result["first_gains"]["fitted 5x5 trained"]))
    for pool in ("fitted", "decoded"):
        assert summary[pool, 7, "random init", "all models"]["share_at_12"] <= 0.01        # the control
    assert all(r["elbow"] is None or 0 <= r["elbow"] <= 12 for r in result["summary"])
    assert result["signed"] is False and result["thresholds"] == {"5x5": 0.2, "7x7": 0.3}
    for path in result["figures"].values():
        assert_png(path)
    assert (out / "tables" / "master_keys.md").is_file()
