"""The figure notebooks run headlessly under papermill on the smoke profile; assert on the JSON they record."""

import pytest

from kernels_lib.method import dog

from conftest import assert_png
from conftest import run_notebook as _run


def _all_png(files):
    for f in files:
        assert_png(f)


@pytest.mark.slow
def test_02_dog_family_on_5x5(tmp_path):
    result, out = _run("02_dog_family", tmp_path, kernel_size=5, n_synthetic=120, seed=1)
    bank = dog.template_bank(5)
    assert result["kernel_size"] == 5
    assert result["n_templates"] == len(bank.classes)
    assert result["squares_in_bank"] is True                      # squares belong to 5×5 kernels only
    assert result["template_counts"] == {c: bank.classes.count(c) for c in dict.fromkeys(bank.classes)}
    assert result["cross_centre_values"] == pytest.approx([2.0] * len(result["cross_sigmas"]))
    assert sum(result["synthetic_counts"].values()) == 120
    files = result["figures"]
    assert {"fig01", "fig12", "fig13", "fig15", "fig17"} <= set(files)
    assert files["fig13"].endswith("fig13_dog_diagram_5x5.png")
    _all_png(files.values())
    assert all(str(out) in f for f in files.values())             # written where the parameters said


@pytest.mark.slow
def test_03_kernel_gallery_on_smoke(tmp_path):
    from kernels_lib.database import zoo

    result, out = _run("03_kernel_gallery", tmp_path, rows_per_model=2, per_row=4)
    trained = [e.id for e in zoo.load_model_set("smoke").entries if e.seed is None]
    assert result["trained_models"] == sorted(trained) and result["failed"] == {}
    assert len(result["figure2_models"]) == 3
    # In the smoke models the only regular conv with a k×k kernel (k >= 3) is the stem.
    assert len(result["regular_rows"]) == 3 and all("stem" in r for r in result["regular_rows"])
    assert len(result["depthwise_rows"]) == 3 * 2
    assert "mobilenetv2_100\nlayer 17/17\n(3×3)" in result["depthwise_rows"]   # MobileNetV2 has 17 depthwise layers
    assert set(result["kernels_per_row"]["depthwise"]) == {4}
    assert result["control"] == {"model": "face_detection_short_range", "trained": "mediapipe==0.10.21",
                                 "twin": "random-init-seed0"}
    assert result["large_kernels"] == 0 and "fig27" not in result["figures"]
    assert set(result["figures"]) == {"fig02", "control"}
    _all_png(result["figures"].values())


@pytest.mark.slow
def test_04_pca_of_trained_5x5_kernels(tmp_path, smoke_db):
    result, out = _run("04_pca", tmp_path, smoke_db, kernel_size=5, n_clusters=6, seed=2)
    # the smoke set's only trained 5×5 kernels: PP-OCR's text-orientation classifier, 800 of them
    assert result["trained"] and result["selection"] == "ch_ppocr_mobile_v2.0_cls_mobile, trained"
    assert result["models"] == ["ch_ppocr_mobile_v2.0_cls_mobile"] and result["n_kernels"] == 800
    assert result["n_used"] + result["n_degenerate"] == 800 == sum(result["cluster_sizes"]) + result["n_degenerate"]
    ev = result["explained_variance_ratio"]
    assert len(ev) == 3 and ev == sorted(ev, reverse=True) and 0 < sum(ev) < 1
    assert len(result["cluster_names"]) == 6 and 1 <= len(result["clearest"]) <= 4
    assert all(-1 <= c <= 1 for c in result["cluster_cohesion"])
    _all_png([result["figures"]["fig04"], result["figures"]["components"]])
    html = open(result["figures"]["fig04_html"]).read()
    assert "ch_ppocr_mobile_v2.0_cls_mobile" in html and "channel" in html


@pytest.mark.slow
def test_04_pca_says_when_it_falls_back_to_untrained_kernels(tmp_path, smoke_db):
    result, _ = _run("04_pca", tmp_path, smoke_db, kernel_size=7, n_clusters=4, max_points=500)
    # no trained 7×7 kernels in the smoke set: the random-init ConvNeXtV2-atto (1,840 7×7 kernels) is used, and said so
    assert not result["trained"] and "no trained 7×7 kernels in this set" in result["selection"]
    assert result["models"] == ["convnextv2_atto"] and result["n_kernels"] == 1840
