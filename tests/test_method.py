"""The paper's method on a model set: a size gets its own autoencoder from enough trained kernels,
the reference otherwise, and every table and figure can say which."""
import numpy as np
import pandas as pd
import pytest

from kernels_lib.method import corpus, per_set
from kernels_lib import paths
from kernels_lib.analysis import results
from kernels_lib.database import store
from kernels_lib.records import ConvLayer, kernel_table


def _db(tmp_path, trained5=60, trained7=10, twins7=40):
    """A small database: trained 5×5 and 7×7 kernels of one model, and 7×7 random-init twins."""
    rng = np.random.default_rng(0)

    def table(name, tag, shapes):
        layers = [ConvLayer(f"dw{i}", rng.normal(size=(n, 1, k, k)).astype(np.float32), n, n) for i, (n, k) in
                  enumerate(shapes)]
        return kernel_table(layers, name, tag, "module")

    store.write_kernels(table("net", "trained", [(trained5, 5), (trained7, 7)]), tmp_path / "db" / "net.parquet")
    store.write_kernels(table("net", "random-init-seed0", [(trained5, 5), (twins7, 7)]), tmp_path / "db" / "twin.parquet")
    return tmp_path / "db"


def test_plan_counts_trained_kernels_only_and_applies_the_threshold(tmp_path):
    db = _db(tmp_path)
    plan = per_set.plan(db, (5, 7), min_trained=50).set_index("kernel_size")
    assert plan.loc[5, "trained_kernels"] == 60 and plan.loc[5, "autoencoder"] == per_set.OWN
    assert plan.loc[7, "trained_kernels"] == 10 and plan.loc[7, "autoencoder"] == per_set.REFERENCE   # twins never count
    assert per_set.MIN_TRAINED_KERNELS == 20_000


def test_corpus_subset_is_seeded_and_recorded(tmp_path):
    db = _db(tmp_path, trained5=200)
    a, ca = corpus.corpus_kernels(5, db, max_kernels=50, seed=3)
    b, _ = corpus.corpus_kernels(5, db, max_kernels=50, seed=3)
    c, _ = corpus.corpus_kernels(5, db, max_kernels=50, seed=4)
    assert len(a) == 50 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert ca["real_kernels"] == 50 and ca["real_kernels_available"] == 200 and ca["subset_seed"] == 3


def test_corpus_joins_several_synthetic_banks_in_order_and_describes_each(tmp_path):
    """A main bank plus a small bank of the shapes it has too few of (the 7×7 reference's round 2)."""
    main, sharp = {"n": 40, "snr": 4.0, "seed": 0}, {"n": 10, "snr": 4.0, "seed": 1,
                                                    "class_weights": {"1st-derivative": 1.0}}
    both, described = corpus.corpus_kernels(7, synthetic=[main, sharp])
    first, one = corpus.corpus_kernels(7, synthetic=main)
    second, _ = corpus.corpus_kernels(7, synthetic=sharp)
    assert np.array_equal(both, np.concatenate([first, second]))
    assert [d["n_kernels"] for d in described["synthetic"]] == [40, 10] and described["synthetic"][1]["seed"] == 1
    assert one["synthetic"]["n_kernels"] == 40            # one bank keeps its one description
    assert corpus.synthetic_kernels(described) == 50 and corpus.synthetic_kernels(one) == 40
    assert corpus.synthetic_kernels({"real_kernels": 9}) is None


def test_choose_prefers_the_sets_own_and_says_what_it_learnt(tmp_path):
    db = _db(tmp_path)
    own_dir = per_set.autoencoders_dir("toy", tmp_path / "classification")
    before = per_set.choose(own_dir, (5, 7))
    assert {k: c.kind for k, c in before.items()} == {5: "reference", 7: "reference"}
    assert before[7].directory == paths.REFERENCE_AUTOENCODERS[7]
    assert "synthetic DoG-family kernels" in before[7].what and before[7].description.startswith("7×7: ")
    per_set.train_own(db, 5, own_dir, hidden=(8, 4), max_epochs=2, batch_size=16, progress=False, num_threads=1)
    after = per_set.choose(own_dir, (5, 7))
    assert after[5].kind == "own" and after[5].directory == own_dir / "5x5" and after[7].kind == "reference"
    assert after[5].what == "the set's own autoencoder, trained on its 60 trained kernels"
    labels = per_set.label_own(after, n_codes=500)
    assert labels[5].is_file() and labels[5].parent == own_dir / "5x5"
    assert labels[7] == paths.REFERENCE_AUTOENCODERS[7] / "labels.yaml"       # the reference is never relabelled


def test_results_carry_which_autoencoder_classified_each_size(tmp_path):
    db = _db(tmp_path)
    choices = per_set.choose(tmp_path / "none", (5, 7))
    table = results.classify_kernels(db, {k: c.directory for k, c in choices.items()}, progress=False)
    path = results.write_results(table, tmp_path / "r.parquet", {"autoencoders": {str(k): c.record()
                                                                                  for k, c in choices.items()}})
    prov = results.read_provenance(path)
    assert per_set.classified_by(prov, 7) == choices[7].what and per_set.classified_by(prov, 3) == "k-means (Appendix N)"
    pd.testing.assert_frame_equal(results.read_results(path), table)
    assert results.read_provenance(results.write_results(table, tmp_path / "bare.parquet")) == {}
    with pytest.raises(Exception, match="no classification"):
        results.read_provenance(tmp_path / "missing.parquet")


def test_figures_of_other_sets_never_overwrite_the_gallery():
    assert paths.figures_dir("offline") == paths.FIGURES_DIR
    assert paths.figures_dir("paper") == paths.FIGURES_DIR / "paper"
    assert paths.figures_dir("/somewhere/my_models.yaml") == paths.FIGURES_DIR / "my_models"
