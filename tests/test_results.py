"""Database classification and the tables built from it: counts, proportions, paper numbers, files."""
import numpy as np
import pandas as pd
import pytest

from kernels_lib.method import autoencoder, classify, dog, dog_bank, spectrum
from kernels_lib import errors, paths, vocab
from kernels_lib.analysis import results, tables
from kernels_lib.method.classify import PrototypeClassifier
from kernels_lib.method.autoencoder import train
from kernels_lib.preprocess import centre_normalise, to_hyperplane
from kernels_lib.records import ConvLayer, kernel_table

LITE0_TABLE3 = 61.08   # "EfficientNet lite0 ra" in the paper's Table 3
LOOSE = {5: 0.7, 7: 0.8}


def template_classifier(k=7, threshold=0.3):
    """Prototypes = the DoG-family templates (no shifts), labelled with their fine class."""
    bank = dog.template_bank(k, shifts=(0.0,))
    coords = to_hyperplane(bank.kernels.reshape(len(bank.classes), -1))
    return PrototypeClassifier("templates", (k, k), coords, np.array(bank.classes), threshold), bank


def test_prototype_classifier_labels_flags_degenerate_and_never_nan():
    clf, bank = template_classifier()
    syn = dog_bank.synthetic_bank(7, 400, snr=8.0, seed=3)
    kernels = np.concatenate([syn.kernels, np.full((2, 7, 7), 0.25, np.float32),
                              np.full((1, 7, 7), np.nan, np.float32)])
    out = clf.predict(kernels)
    assert len(out) == len(kernels)
    deg = out["degenerate"].to_numpy()
    assert deg.tolist()[-3:] == [True] * 3 and deg.sum() == 3
    assert (out.loc[deg, "label"] == vocab.DEGENERATE).all() and not out.loc[deg, "clustered"].any()
    # missing, not NaN: the nullable column says "no value" and nothing numeric is invented
    assert out["dissimilarity"].isna().sum() == 3 and out["code"].isna().all()
    d = out.loc[~deg, "dissimilarity"].to_numpy(dtype=float)
    assert np.isfinite(d).all() and (d >= 0).all() and (d <= 2).all()
    np.testing.assert_array_equal(out.loc[~deg, "clustered"].to_numpy(), d < 0.3)
    assert (out.loc[~deg & ~out["clustered"], "label"] == vocab.UNCLUSTERED).all()
    # clean-ish DoG-family kernels mostly land on a template of their own merged class
    hit = out.loc[~deg, "merged"].to_numpy() == syn.merged
    assert hit.mean() > 0.8
    # the dissimilarity is exactly 1 − cos with the winning prototype
    unit = to_hyperplane(centre_normalise(syn.kernels.reshape(400, -1)))
    cos = np.einsum("ij,ij->i", unit, clf.prototypes[out["prototype"].to_numpy()[:400]])
    np.testing.assert_allclose(1 - cos, d, atol=1e-9)


def test_prototype_classifier_refuses_bad_input():
    clf, _ = template_classifier()
    with pytest.raises(errors.AnalysisError, match=r"expected kernels \[N, 7, 7\]"):
        clf.predict(np.zeros((3, 5, 5)))
    with pytest.raises(errors.AnalysisError, match="search"):
        clf.predict(np.zeros((3, 7, 7)), search="quick")
    with pytest.raises(errors.AnalysisError, match="threshold"):
        PrototypeClassifier("x", (7, 7), clf.prototypes, clf.labels, 0.0)
    with pytest.raises(errors.AnalysisError, match="labels"):
        PrototypeClassifier("x", (7, 7), clf.prototypes, clf.labels[:3], 0.3)


@pytest.fixture(scope="module")
def autoencoders(tmp_path_factory):
    """Tiny 5×5 and 7×7 autoencoders with hand-written label files (structure, not quality)."""
    root = tmp_path_factory.mktemp("ae")
    dirs = {}
    for k in (5, 7):
        bank = dog_bank.synthetic_bank(k, 400, snr=8.0, seed=k)
        ae = train(bank.kernels, hidden=(32, 16), max_epochs=6, lr=3e-3, batch_size=32, progress=False, seed=0,
                   num_threads=1)
        dirs[k] = ae.save(root / f"{k}x{k}")
        spectrum.write_labels(dirs[k] / spectrum.LABEL_FILE, [
            {"start": 0.0, "end": 0.3, "label": "on"}, {"start": 0.3, "end": 0.5, "label": "on-dx"},
            {"start": 0.6, "end": 1.0, "label": "off"}])
    return dirs


def fake_model(name, tag, seed=0):
    """A model with depthwise layers of 3×3, 5×5 and 7×7, some kernels constant (degenerate)."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, c) in enumerate([(3, 40), (5, 24), (5, 16), (7, 12)]):
        syn = dog_bank.synthetic_bank(k, c, snr=4.0, seed=seed + i).kernels if k > 3 else rng.standard_normal((c, 3, 3))
        w = np.asarray(syn, np.float32)[:, None]
        if k == 5 and i == 1:
            w[:3] = 0.5          # three constant kernels
        layers.append(ConvLayer(f"blocks.{i}.dw", w, in_channels=c, groups=c))
    layers.insert(0, ConvLayer("stem", rng.standard_normal((8, 3, 3, 3)).astype(np.float32), 3, 1))
    return kernel_table(layers, name, tag, "module")


@pytest.fixture(scope="module")
def classified(autoencoders):
    table = pd.concat([fake_model("efficientnet_lite0", "ra_in1k"),
                       fake_model("tf_efficientnet_lite0", "random-init-seed0", seed=5),
                       fake_model("tf_efficientnet_lite0", "wheel.pth", seed=9)], ignore_index=True)
    # loose thresholds: these tiny autoencoders are for structure, and some kernels must cluster
    return results.classify_kernels(table, autoencoders, thresholds=LOOSE, kmeans_clusters=4, progress=False), table


def test_classify_database_one_row_per_kernel_methods_apart(classified, autoencoders):
    res, table = classified
    assert list(res.columns) == results.RESULT_COLUMNS
    assert len(res) == len(table)                                   # every depthwise kernel, no stem
    assert res.groupby("kh")["clustering"].unique().map(list).to_dict() == {
        3: ["kmeans"], 5: ["autoencoder"], 7: ["autoencoder"]}
    assert res.loc[res.kh == 5, "threshold"].eq(0.7).all() and res.loc[res.kh == 7, "threshold"].eq(0.8).all()
    assert res.loc[res.kh == 3, ["code", "dissimilarity", "threshold"]].isna().all().all()
    # three constant kernels per model, all degenerate, labelled so and never clustered
    assert res["degenerate"].sum() == 9 and (res.loc[res.degenerate, "merged"] == "degenerate").all()
    ae = res[(res.clustering == "autoencoder") & ~res.degenerate]
    np.testing.assert_array_equal(ae["clustered"], ae["dissimilarity"].to_numpy(float) < ae["threshold"].to_numpy(float))
    assert set(ae.loc[ae.clustered, "label"]) <= {"on", "on-dx", "off", "other"}
    assert ae.loc[ae.clustered & (ae.label == "on-dx"), "merged"].eq("1st-derivative").all()
    codes = ae["code"].to_numpy(float)
    assert ((codes >= 0) & (codes <= 1)).all()
    # reference search agrees with the fast one
    assert 0 < ae["clustered"].sum() < len(ae)
    ref = results.classify_kernels(table, autoencoders, thresholds=LOOSE, method="reference", kmeans_clusters=None,
                                     progress=False)
    fast = res[res.clustering == "autoencoder"].reset_index(drop=True)
    pd.testing.assert_series_equal(ref["label"], fast["label"])
    np.testing.assert_allclose(ref["dissimilarity"].to_numpy(float, na_value=-1),
                               fast["dissimilarity"].to_numpy(float, na_value=-1), atol=1e-12)


def test_clustered_fraction_counts_and_paper_numbers(classified):
    res, _ = classified
    table = tables.clustered_fraction(res)
    assert len(table) == 6                                          # 3 weights × {5×5, 7×7}
    for row in table.itertuples():
        sub = res[(res.model == row.model) & (res.weights_tag == row.weights_tag) & (res.kh == row.kh)]
        assert row.n_kernels == len(sub) and row.n_clustered == sub.clustered.sum()
        assert row.clustered_pct == pytest.approx(100 * sub.clustered.sum() / (~sub.degenerate).sum())
    paper5 = table[(table.model == "efficientnet_lite0") & (table.kh == 5)].iloc[0]
    assert paper5.paper_pct == LITE0_TABLE3 and "lite0" in paper5.paper_row
    assert table[(table.model == "efficientnet_lite0") & (table.kh == 7)].paper_pct.isna().all()  # not in Table 4
    other = table[(table.weights_tag == "wheel.pth") & (table.kh == 5)].iloc[0]
    assert np.isnan(other.paper_pct) and f"{LITE0_TABLE3:.2f}" in other.paper_related
    twin = table[table.weights_tag == "random-init-seed0"]
    assert twin.random_init.all() and (twin.paper_related == "").all()
    with pytest.raises(errors.AnalysisError, match="cluster shares, not a % clustered"):
        tables.clustered_fraction(res[res.clustering == "kmeans"])    # k-means assigns every kernel: no %
    assert res.loc[res.clustering == "kmeans", "clustered"].isna().all()   # undefined, not True


def test_a_model_without_usable_kernels_has_no_percentage(classified):
    res, _ = classified
    dead = res[(res.kh == 5) & (res.model == "efficientnet_lite0")].copy()
    dead["degenerate"], dead["clustered"], dead["model"] = True, False, "pruned"
    table = tables.clustered_fraction(pd.concat([res, dead], ignore_index=True))
    row = table[table.model == "pruned"].iloc[0]
    assert row.n_kernels == row.n_degenerate and np.isnan(row.clustered_pct)      # undefined, never 0 %
    assert "| pruned |  |" in tables.markdown_table(table[["model", "clustered_pct"]])   # an empty cell


def test_layer_and_model_proportions_sum_to_one(classified):
    res, _ = classified
    with pytest.raises(errors.AnalysisError, match="several weights"):
        tables.layer_proportions(res, "tf_efficientnet_lite0")
    props = tables.layer_proportions(res, "tf_efficientnet_lite0", "wheel.pth")
    assert props.index.tolist() == [1, 2, 3]                       # the 5×5 and 7×7 layers (3×3 is k-means)
    np.testing.assert_allclose(props.sum(axis=1), 1.0)
    assert props.loc[1, "degenerate"] == pytest.approx(3 / 24)
    assert list(props.columns)[-2:] == ["unclustered", "degenerate"]
    only5 = tables.layer_proportions(res, "efficientnet_lite0", kernel_size=5)
    assert only5.index.tolist() == [1, 2]
    km = tables.layer_proportions(res, "efficientnet_lite0", clustering="kmeans")
    assert km.index.tolist() == [0] and km.sum(axis=1).iloc[0] == pytest.approx(1.0)
    mp = tables.model_proportions(res, kernel_size=5)
    assert len(mp) == 3 and np.allclose(mp.sum(axis=1), 1.0)
    sub = res[(res.model == "efficientnet_lite0") & (res.kh == 5)]
    assert mp.loc["efficientnet_lite0.ra_in1k", "unclustered"] == pytest.approx((sub.merged == "unclustered").mean())


def test_activation_by_class_matches_the_rows(classified):
    res, table = classified
    stats = tables.activation_by_class(res)
    clustered = res[(res.clustering == "autoencoder") & res.clustered]
    assert stats["n"].sum() == len(clustered)
    for row in stats.itertuples():
        vals = clustered.loc[clustered.merged == row[1], "total_activation"]
        assert row.mean == pytest.approx(vals.mean()) and row.median == pytest.approx(vals.median())
    # total activation is the DB's column, joined row by row
    np.testing.assert_allclose(res["total_activation"].to_numpy(),
                               table[table.kh.isin([3, 5, 7])]["total_activation"].to_numpy())


def test_results_file_round_trip_is_atomic(classified, tmp_path):
    res, _ = classified
    path = results.write_results(res, tmp_path / "set" / paths.RESULTS_FILE)
    assert [p.name for p in path.parent.iterdir()] == [paths.RESULTS_FILE]   # no temporary left
    back = results.read_results(path)
    pd.testing.assert_frame_equal(back, res, check_dtype=False)
    assert back["dissimilarity"].isna().sum() == res["dissimilarity"].isna().sum()
    with pytest.raises(errors.AnalysisError, match="lack columns"):
        results.write_results(res.drop(columns=["label"]), tmp_path / "x.parquet")
    with pytest.raises(errors.AnalysisError, match="notebook 07"):
        results.read_results(tmp_path / "missing.parquet")


def test_missing_label_file_and_empty_selection_say_what_to_do(autoencoders, tmp_path):
    from kernels_lib.method.autoencoder import Autoencoder

    assert classify.autoencoder_classifier(autoencoders[7]).threshold == 0.3     # the paper's, by default
    assert classify.autoencoder_classifier(autoencoders[5]).threshold == 0.2
    bare = Autoencoder.load(autoencoders[7]).save(tmp_path / "7x7")
    with pytest.raises(errors.AnalysisError, match="label_spectrum"):
        classify.autoencoder_classifier(bare)
    with pytest.raises(errors.AnalysisError, match="no 5×5, 7×7"):
        results.classify_kernels(fake_model("m", "t").iloc[:0], {5: autoencoders[5], 7: autoencoders[7]},
                                   kmeans_clusters=None, progress=False)


def test_kmeans_runs_per_model_and_leaves_too_small_models_unclustered():
    big, small = fake_model("big", "t"), fake_model("small", "t", seed=3)
    small = small[(small.kh != 3) | (small.channel < 3)]             # 3 usable 3×3 kernels: fewer than 4 clusters
    res = results.classify_kernels(pd.concat([big, small]), {}, kmeans_clusters=4, progress=False)
    assert set(res["kh"]) == {3} and (res["clustering"] == "kmeans").all()
    b, s = res[res.model == "big"], res[res.model == "small"]
    assert len(b) == 40 and b["clustered"].all() and set(b["prototype"]) == {0, 1, 2, 3}
    assert len(s) == 3 and (s["label"] == vocab.UNCLUSTERED).all() and (s["prototype"] == -1).all()
    # the big model's clusters do not depend on the small one being there
    alone = results.classify_kernels(big, {}, kmeans_clusters=4, progress=False)
    assert alone["label"].tolist() == b["label"].tolist()


def test_write_results_clears_temporaries_of_dead_writers(classified, tmp_path):
    res, _ = classified
    stale = tmp_path / f".{paths.RESULTS_FILE}.999999999.0123abcd.tmp"   # a writer that no longer runs
    stale.write_bytes(b"partial")
    results.write_results(res, tmp_path / paths.RESULTS_FILE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths.RESULTS_FILE]


def test_training_config_of_the_reference_autoencoders():
    import inspect

    from kernels_lib.method.autoencoder import Autoencoder
    from kernels_lib.method.autoencoder import train as train_fn

    for k, directory in paths.REFERENCE_AUTOENCODERS.items():
        config = autoencoder.training_config(directory)
        ae = Autoencoder.load(directory, device="cpu")
        assert config["hidden"] == list(ae.hidden) and config["lr"] == ae.provenance["lr"]
        assert set(config) <= set(inspect.signature(train_fn).parameters) - {"seed", "kernels", "corpus"}
    with pytest.raises(errors.AnalysisError, match="not a readable autoencoder directory"):
        autoencoder.training_config(paths.REFERENCE_AUTOENCODERS[5].parent / "missing")
