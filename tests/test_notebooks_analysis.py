"""Notebooks 05–08 run headlessly under papermill on small profiles; assert on the JSON they record."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kernels_lib.method import autoencoder, corpus, per_set, spectrum
from kernels_lib import paths
from kernels_lib.analysis import results
from kernels_lib.method.autoencoder import Autoencoder, train

from conftest import assert_png as _png
from conftest import run_notebook as _run
from conftest import stopped_training
SMOKE_COUNTS = {3: 9156, 5: 800, 7: 1840}      # the smoke set's depthwise kernels (see test_notebook_01)
SMOKE_YAML = str(paths.MODELS_DIR / "smoke.yaml")   # the smoke set named by its file, as `figures --models PATH` does


@pytest.fixture(scope="module")
def autoencoders(tmp_path_factory):
    """Small 5×5 and 7×7 autoencoders trained on synthetic banks, spectra labelled automatically.

    2,000 kernels and 8 epochs: on the rotation-complete bank, 300 kernels and 4 epochs left a
    spectrum named 'other' throughout, so notebook 07 found no clustered kernel at all (measured:
    0 of the smoke set's 800 5×5 kernels; with these settings 5, from five named classes)."""
    root = tmp_path_factory.mktemp("autoencoders")
    for k in (5, 7):
        kernels, described = corpus.corpus_kernels(k, synthetic={"n": 2000, "snr": 8.0, "seed": k})
        ae = train(kernels, hidden=(24, 12), max_epochs=8, lr=3e-3, batch_size=32, progress=False, seed=0,
                   num_threads=1, corpus=described)
        ae.save(root / f"{k}x{k}")
        spectrum.label_spectrum(root / f"{k}x{k}", n=2000, ae=ae)
    return root


@pytest.mark.slow
def test_05_trains_the_sets_own_autoencoder_where_it_has_enough_kernels(tmp_path, autoencoders, smoke_db, monkeypatch):
    # the smoke set has 800 trained 5×5 kernels (PP-OCR) and no trained 7×7 ones (a twin only)
    result, out = _run("05_autoencoder_training", tmp_path, smoke_db, min_trained_kernels=500,
                       reference_dir=str(autoencoders), epochs=3, batch_size=32, num_threads=1)
    plan = {row["kernel_size"]: row for row in result["plan"]}
    assert plan[5]["trained_kernels"] == 800 and plan[5]["autoencoder"] == "own"
    assert plan[7]["trained_kernels"] == 0 and plan[7]["autoencoder"] == "reference"
    five, seven = result["sizes"]["5x5"], result["sizes"]["7x7"]
    assert seven == {"autoencoder": "reference", "reference": str(autoencoders / "7x7"), "trained_kernels": 0}
    # the architecture comes from the reference, the optimisation from the package defaults, except
    # what was set (the epoch rule, batch size, threads)
    assert five["settings"]["hidden"] == [24, 12] and five["settings"]["lr"] == autoencoder.TRAINING_DEFAULTS["lr"]
    assert five["settings"]["batch_size"] == 32 and five["settings"]["max_epochs"] == 3
    assert five["n_used"] + five["n_degenerate"] == 800 == five["corpus"]["real_kernels"]
    assert list(five["corpus"]["models"]) == ["ch_ppocr_mobile_v2.0_cls_mobile [rapidocr==3.10.0]"]
    history = five["loss_history"]
    assert len(history) == five["windows_run"] <= 3 and all(0 <= v <= 2 for v in history)
    assert five["best_loss"] == min(history) == history[five["best_window"] - 1]
    assert 0 <= five["encoder_below_threshold"] <= 1 and five["encoder_threshold"] == 0.2
    saved = Autoencoder.load(five["saved_to"])
    assert saved.hidden == (24, 12) and saved.provenance["loss_history"] == pytest.approx(history, rel=1e-11)   # JSON keeps 12 digits
    assert Path(five["saved_to"]) == tmp_path / "classification" / "smoke" / "autoencoders" / "5x5"   # never the reference
    assert set(result["figures"]) == {"fig16_5x5", "loss_5x5", "reconstructions_5x5"}
    for f in result["figures"].values():
        _png(f)
    # the training checkpoint went when training completed; one left by a run stopped after its first window
    # (the same corpus and settings) is found by the next run of the notebook, which continues from it
    own = Path(five["saved_to"]).parent
    assert not list(own.glob(".*"))
    weights = (own / "5x5" / autoencoder.WEIGHTS_FILE).read_bytes()
    checkpoint = per_set.checkpoint_file(own, 5)
    with stopped_training(monkeypatch, 1):
        per_set.train_own(smoke_db / "smoke", 5, own, seed=0, checkpoint=checkpoint, progress=False, **five["settings"])
    resumed, _ = _run("05_autoencoder_training", tmp_path, smoke_db, min_trained_kernels=500,
                      reference_dir=str(autoencoders), epochs=3, batch_size=32, num_threads=1)
    executed = (tmp_path / "build" / "05_autoencoder_training.ipynb").read_text()
    assert f"resuming from {checkpoint}: 1 windows done" in executed
    assert resumed["sizes"]["5x5"]["loss_history"] == history and not checkpoint.exists()
    assert (own / "5x5" / autoencoder.WEIGHTS_FILE).read_bytes() == weights
    # below the threshold nothing is trained; the set given as a .yaml path reads the same database
    again, _ = _run("05_autoencoder_training", tmp_path / "again", smoke_db, reference_dir=str(autoencoders),
                    model_set=SMOKE_YAML)
    assert {v["autoencoder"] for v in again["sizes"].values()} == {"reference"} and again["figures"] == {}
    assert again["model_set"] == "smoke"
    assert {row["kernel_size"]: row["trained_kernels"] for row in again["plan"]} == {5: 800, 7: 0}


def _own(autoencoders, tmp_path, sizes):
    """Copies of the test autoencoders as the smoke set's own (as notebook 05 would have trained them)."""
    own = tmp_path / "classification" / "smoke" / "autoencoders"
    for k in sizes:
        shutil.copytree(autoencoders / f"{k}x{k}", own / f"{k}x{k}")
    return own


@pytest.mark.slow
def test_06_labels_the_sets_own_spectra_and_draws_them(tmp_path, autoencoders):
    own = _own(autoencoders, tmp_path, [5])
    (own / "5x5" / spectrum.LABEL_FILE).unlink()             # a fresh own autoencoder: labelled automatically here
    result, out = _run("06_spectrum_labeling", tmp_path, reference_dir=str(autoencoders), n_strip=200, n_label=2000,
                       model_set=SMOKE_YAML)   # a .yaml path finds the set's own autoencoders by the set's name
    five, seven = result["sizes"]["5"], result["sizes"]["7"]
    assert five["autoencoder"]["kind"] == "own" and seven["autoencoder"]["kind"] == "reference"
    assert five["label_source"] == str(own / "5x5" / spectrum.LABEL_FILE) and (own / "5x5" / spectrum.LABEL_FILE).is_file()
    assert seven["label_source"] == str(autoencoders / "7x7" / spectrum.LABEL_FILE)
    assert "synthetic DoG-family kernels" in seven["autoencoder"]["description"]
    assert sum(five["strip_codes_per_class"].values()) == 200 == sum(seven["strip_codes_per_class"].values())
    # the file was written by the same auto-labeller on 2000 codes: the proposal agrees with it
    assert five["agreement_with_label_file"] == 1.0
    for entry in (five, seven):
        ivs = entry["proposal"]
        assert ivs[0]["start"] == 0.0 and ivs[-1]["end"] == 1.0
        assert all(a["end"] == b["start"] for a, b in zip(ivs, ivs[1:]))     # proposals leave no gaps
        assert [iv.label for iv in spectrum.read_labels(entry["proposal_file"])] == [iv["label"] for iv in ivs]
    assert five["intervals"] == [{k: iv[k] for k in ("start", "end", "label")} for iv in five["proposal"]]
    assert result["figures"]["fig03"] == result["figures"]["fig32"]
    for f in set(result["figures"].values()):
        _png(f)
    assert not (autoencoders / "7x7" / spectrum.PROPOSAL_FILE).exists()     # nothing written beside the reference


@pytest.mark.slow
def test_07_classifies_the_smoke_set_with_the_chosen_autoencoders(tmp_path, autoencoders, smoke_db):
    _own(autoencoders, tmp_path, [5, 7])
    result, out = _run("07_classify", tmp_path, smoke_db, model_set=SMOKE_YAML)   # as `figures --models FILE.yaml` passes it
    path = tmp_path / "classification" / "smoke" / paths.RESULTS_FILE
    assert result["results_path"] == str(path)
    res = results.read_results(path)
    assert len(res) == result["n_kernels"] == sum(SMOKE_COUNTS.values())
    assert result["n_by_size"] == {f"{k}x{k}": n for k, n in SMOKE_COUNTS.items()}
    # which autoencoder classified each size is recorded in the JSON and in the results file
    assert {k: v["kind"] for k, v in result["autoencoders"].items()} == {"5x5": "own", "7x7": "own"}
    assert results.read_provenance(path)["autoencoders"]["5"]["kind"] == "own"
    # one row per model, weights and size classified by the autoencoder; counts as in the file
    table = pd.DataFrame(result["clustered"])
    assert sorted(zip(table.model, table.kh)) == [("ch_ppocr_mobile_v2.0_cls_mobile", 5), ("convnextv2_atto", 7)]
    assert table["autoencoder"].str.startswith("the set's own autoencoder").all()
    for row in table.itertuples():
        sub = res[(res.model == row.model) & (res.weights_tag == row.weights_tag) & (res.kh == row.kh)]
        assert row.n_kernels == len(sub) and row.n_clustered == int(sub.clustered.sum())
        assert row.paper_pct is None
    assert table.set_index("model").loc["convnextv2_atto", "random_init"]
    assert result["max_random_init_pct"] <= 5.0                  # untrained kernels hardly cluster
    csv = pd.read_csv(result["tables"]["table3_clustered_5x5"]["csv"])
    assert len(csv) == 1 and csv.loc[0, "n_kernels"] == SMOKE_COUNTS[5]
    assert Path(result["tables"]["table4_clustered_7x7"]["md"]).read_text().startswith("| model |")
    for k in ("5x5", "7x7"):
        for shares in result["proportions"][k].values():
            assert sum(shares.values()) == pytest.approx(1.0, abs=1e-5)
    # 3×3: k-means per model, never mixed into the % clustered tables
    assert len(result["kmeans_3x3"]) == 4
    assert (res.loc[res.kh == 3, "clustering"] == "kmeans").all()
    _png(result["figures"]["clustered_fraction"])


@pytest.mark.slow
def test_07_runs_when_no_kernel_is_clustered(tmp_path, autoencoders, smoke_db):
    """Untrained weights (the paper rehearsal's) can leave nothing clustered: 07 says so and goes on."""
    _own(autoencoders, tmp_path, [5, 7])
    result, out = _run("07_classify", tmp_path, smoke_db, threshold_5x5=1e-12, threshold_7x7=1e-12)   # no kernel that close
    assert {row["n_clustered"] for row in result["clustered"]} == {0}
    assert result["activation"] is None and "total_activation" not in result["tables"]
    assert result["n_kernels"] == sum(SMOKE_COUNTS.values())


@pytest.mark.slow
def test_08_autoencoder_vs_kmeans_small_profile(tmp_path):
    result, out = _run("08_autoencoder_vs_kmeans", tmp_path, n_train=600, n_test=400, n_random=400,
                       n_clusters=[10, 16], hidden=[24, 12], epochs=3, lr=3e-3, batch_size=32, n_codes=1000,
                       num_threads=1, n_extended=800)
    assert set(result["banks"]) == {"7×7, SNR 3", "5×5, SNR 3"}
    # the references on the extended ground truth: every slice, scale band and angle band reported
    assert set(result["extended"]) == {"7x7", "5x5"}
    for size, ext in result["extended"].items():
        slices = pd.DataFrame(ext["by_slice"]).set_index("slice")
        assert slices.loc["all", "support"] == 800 and slices.loc["all", "accuracy"] == pytest.approx(ext["accuracy"])
        assert {s.split(" (")[0] for s in slices.index} >= {"smallest scales", "shifted", "elongated", "rendering discrete"}
        assert set(pd.DataFrame(ext["by_scale"])["rendering"]) == {"integrated", "sampled", "discrete", "affine"}
        assert set(pd.DataFrame(ext["by_angle"])["rendering"]) == {"integrated", "sampled", "discrete", "affine", "all"}
        assert 0 <= max(ext["random_clustered"].values()) <= 0.01
        assert Path(result["tables"][f"extended_by_slice_{size}"]["csv"]).exists()
    assert result["settings"]["scored_on"] == "kernels_lib.analysis.groundtruth.ground_truth_bank"
    for name, bank in result["banks"].items():
        summary = pd.DataFrame(bank["summary"]).set_index("method")
        assert list(summary.index) == ["autoencoder", "kmeans-10", "kmeans-16", "reference"]
        for col in ("accuracy", "clustered_fraction", "random_clustered_fraction"):
            assert summary[col].between(0, 1).all(), (name, col)
        # undefined (None in the JSON) exactly when a method clustered nothing
        assert summary["accuracy_clustered"].isna().tolist() == (summary["clustered_fraction"] == 0).tolist()
        chance = summary["chance"].iloc[0]
        assert chance == max(bank["test_classes"].values()) / 400
        assert (summary.loc[["kmeans-10", "kmeans-16", "reference"], "accuracy"] > chance).all()
        assert (summary.loc[["kmeans-10", "kmeans-16", "reference"], "random_clustered_fraction"] <= 0.05).all()
        per = pd.DataFrame(bank["per_class"])
        assert per.groupby("method")["support"].sum().eq(400).all()
        assert per[["precision", "recall"]].stack().dropna().between(0, 1).all()
        assert per["precision"].isna().tolist() == (per["predicted"] == 0).tolist()   # never predicted: undefined
        assert bank["autoencoder_intervals"][0]["start"] == 0.0
        # the confusion matrices add up to the scored kernels and their diagonal is the recall
        for method, confusion in bank["confusion"].items():
            table = pd.DataFrame(confusion).T.fillna(0)
            assert table.to_numpy().sum() == 400
            recall = per[per["method"] == method].set_index("class")["recall"]
            for c in table.index:
                assert table.loc[c, c] / table.loc[c].sum() == pytest.approx(recall[c])
        by_angle = pd.DataFrame(bank["recall_by_angle"])
        assert set(by_angle["method"]) == set(summary.index)
        assert by_angle.groupby("method")["support"].sum().eq(
            sum(bank["test_classes"].get(c, 0) for c in ("1st-derivative", "2nd-derivative"))).all()
    files = result["figures"]
    assert {"comparison", "recall_7x7", "recall_5x5", "kmeans_centroids_5x5", "confusion_reference_7x7",
            "confusion_autoencoder_5x5", "ground_truth_7x7"} <= set(files)
    for f in files.values():
        _png(f)
    assert len(pd.read_csv(result["tables"]["summary"]["csv"])) == 8
