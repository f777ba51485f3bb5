"""The kernel explorer (notebook 14, kernels_lib.publish.explore): the page it shows is the classification's
rows that match the choice, checked against a plain pandas filter, with the database's weights;
its widgets follow their controls without a kernel behind them."""
import json

import numpy as np
import pandas as pd
import pytest

from kernels_lib.publish import explore
from kernels_lib.analysis import selection, tables
from kernels_lib.database import store
from kernels_lib import vocab
from kernels_lib.errors import AnalysisError, UnknownClassError

from conftest import SITE_PARAMETERS

PPOCR = "ch_ppocr_mobile_v2.0_cls_mobile"


def _matching(table, model, weights_tag, k, layer=None, cls=None, class_col="merged"):
    rows = table[(table["model"] == model) & (table["weights_tag"] == weights_tag) & (table["kh"] == k)]
    if layer is not None:
        rows = rows[rows["layer"] == layer]
    return rows if cls is None else rows[rows[class_col] == cls]


@pytest.mark.slow
def test_14_records_the_page_it_draws(smoke_site, smoke_db, reference_classification):
    result = json.loads((smoke_site.results / "14_explore_kernels.json").read_text())
    _, table = reference_classification
    p = SITE_PARAMETERS
    assert (result["model"], result["kernel_size"], result["layer"], result["kernel_class"]) == \
        (p["model"], p["kernel_size"], p["layer"], p["kernel_class"])
    assert result["weights_tag"] == "rapidocr==3.10.0"            # the model's trained weights, not a twin
    matching = _matching(table, PPOCR, result["weights_tag"], 5, p["layer"], p["kernel_class"])
    assert result["n_matching"] == len(matching) > p["per_page"]
    shown = pd.DataFrame(result["shown"])
    assert len(shown) == p["per_page"] and (shown["merged"] == p["kernel_class"]).all()
    assert set(shown["channel"]) <= set(matching["channel"]) and shown["channel"].is_monotonic_increasing
    in_layer = _matching(table, PPOCR, result["weights_tag"], 5, p["layer"])
    assert result["class_counts"] == in_layer["merged"].value_counts().to_dict()
    # the kernels drawn are the database's kernels of those (layer, channel) rows
    db = store.read_kernels(smoke_db / "smoke", models=[PPOCR], kernel_sizes=[5]).set_index(["layer", "channel"])
    sums = [float(np.sum(db.loc[(p["layer"], c), "kernel"])) for c in shown["channel"]]
    assert result["shown_sums"] == pytest.approx(sums, rel=1e-5, abs=1e-6)
    # the headless run built the widget too: its lists say how many kernels each choice holds
    module = in_layer["module"].iloc[0]
    assert f"layer {p['layer']} · {module} ({len(in_layer)})" in result["widget"]["layer"]
    assert result["widget"]["class"][0] == f"every class ({len(in_layer)})"
    assert (smoke_site.figures / "explore_layers_ch_ppocr_mobile_v2.0_cls_mobile_5x5.html").is_file()


def test_kernel_page_defaults_sampling_and_errors(reference_classification):
    _, table = reference_classification
    first = selection.kernel_page(table, n=10, seed=1)
    # default: the trained model with most kernels, its largest kernel size, every layer and class
    assert (first.model, first.kernel_size, first.layer, first.kernel_class) == ("mobilenetv2_100", 3, None, None)
    assert first.n_matching == 7136 and len(first.rows) == 10 and "10 of 7136 kernels" in first.what
    assert selection.kernel_page(table, n=10, seed=1).rows.equals(first.rows)          # a seed is a seed
    assert not selection.kernel_page(table, n=10, seed=2).rows.equals(first.rows)
    twin = selection.kernel_page(table, "face_detection_short_range", "random-init-seed0", n=None)
    assert twin.n_matching == len(twin.rows) == 978 and "random init" in twin.what
    # a known class that a layer lacks matches nothing; it is not an error
    rows = _matching(table, PPOCR, "rapidocr==3.10.0", 5, 3)
    absent = next(c for c in ("on-square", "off-square", "on-cross", "off-cross", "2nd-derivative", "off")
                  if c not in set(rows["merged"]))
    empty = selection.kernel_page(table, PPOCR, kernel_size=5, layer=3, kernel_class=absent)
    assert empty.n_matching == 0 and empty.rows.empty
    counts = tables.class_counts(rows)
    # every kernel counted once, classes in display order (which classes a layer has depends on the reference)
    assert counts.sum() == len(rows) and len(counts) >= 2
    assert list(counts.index) == [c for c in vocab.CLASS_ORDER if c in counts.index]
    with pytest.raises(AnalysisError, match="did you mean 'mobilenetv2_100'"):
        selection.kernel_page(table, "mobilenet_v2")
    with pytest.raises(AnalysisError, match="kernel size .* choose one of: 3, 5"):
        selection.kernel_page(table, PPOCR, kernel_size=7)
    with pytest.raises(AnalysisError, match="choose one of: 3, 4, 5"):
        selection.kernel_page(table, PPOCR, kernel_size=5, layer=99)
    with pytest.raises(AnalysisError, match="'1st-derivative'"):
        selection.kernel_page(table, kernel_class="on-dx")                 # fine class, merged column
    with pytest.raises(UnknownClassError, match="did you mean 'on'"):
        selection.kernel_page(table, kernel_class="onn")
    with pytest.raises(AnalysisError, match="at least 1"):
        selection.kernel_page(table, n=0)


def test_widget_follows_its_controls(reference_classification, smoke_db):
    _, table = reference_classification
    explorer = explore.KernelExplorer(table, smoke_db / "smoke", per_page=8)
    explorer.widget(model=PPOCR, kernel_size=5)
    c = explorer.controls
    assert explorer.current.model == PPOCR and explorer.current.kernel_size == 5
    assert [label for label, _ in c["kernel_size"].options] == ["3×3", "5×5"]
    c["model"].value = ("face_detection_short_range", "random-init-seed0")
    assert explorer.current.weights_tag == "random-init-seed0" and explorer.current.kernel_size == 3
    assert len(c["layer"].options) == 1 + table[table["model"] == "face_detection_short_range"]["layer"].nunique()
    c["layer"].value = 2
    layer2 = _matching(table, "face_detection_short_range", "random-init-seed0", 3, 2)
    assert explorer.current.n_matching == len(layer2) and (explorer.current.rows["layer"] == 2).all()
    biggest = layer2["merged"].value_counts().index[0]
    c["class"].value = biggest
    assert explorer.current.n_matching == int((layer2["merged"] == biggest).sum())
    assert (explorer.current.rows["merged"] == biggest).all()
    before = explorer.current.rows.index.tolist()
    c["again"].click()                                                  # another random page of the same choice
    assert explorer.current.n_matching == int((layer2["merged"] == biggest).sum())
    if explorer.current.n_matching > 8:
        assert explorer.current.rows.index.tolist() != before
    assert explorer.current_figure is not None
    with pytest.raises(AnalysisError, match="class_col"):
        explore.KernelExplorer(table, smoke_db / "smoke", class_col="fine")


def test_trained_table_finds_a_models_trained_kernels_and_its_twin(smoke_db, tmp_path):
    db = smoke_db / "smoke"
    trained, twin = selection.trained_table(db, "face_detection_short_range")
    assert set(trained["weights_tag"]) == {"mediapipe==0.10.21"} and set(twin["weights_tag"]) == {"random-init-seed0"}
    assert trained[["layer", "channel"]].values.tolist() == twin[["layer", "channel"]].values.tolist()
    trained, twin = selection.trained_table(db, "mobilenetv2_100")     # the smoke set keeps no twin of it
    assert set(trained["model"]) == {"mobilenetv2_100"} and twin is None
    counts = store.read_kernels(db, columns=["model", "weights_tag"])
    counts = counts[~vocab.random_init_mask(counts["weights_tag"])]["model"].value_counts()
    largest, _ = selection.trained_table(db)                            # no name: the largest trained model
    assert set(largest["model"]) == {counts.idxmax()} and len(largest) == counts.max()
    assert selection.trained_table(db, "convnextv2_atto") == (None, None)      # only its twin is in the set
    assert selection.trained_table(db, "not_in_the_set") == (None, None)
    assert selection.trained_table(tmp_path / "no_db", "mobilenetv2_100") == (None, None)
