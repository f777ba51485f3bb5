"""`kernels-lib inspect SOURCE` as a user runs it on one model: a Keras .h5, a TF.js model.json, a timm name
(weights from a local hub cache, in a fresh interpreter) and a model-set YAML. The Parquet rows must hold
the file's own kernels with their labels, the twin PyTorch's (or timm's) initialisation of the same layers,
and the HTML page everything it needs (no file or script from elsewhere)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from keras_layouts import _model_config, depthwise_reference, mobilenetv2_layers, write_tfjs

from kernels_lib import cli
from kernels_lib.analysis import results
from kernels_lib.sources.hub_cache import write_timm_init
from kernels_lib.sources.module import conv_layers
from kernels_lib.records import kernel_table
from kernels_lib.sources.timm_source import create_timm_model

ATTO = "convnextv2_atto.fcmae_ft_in1k"


def _kernels(rows, k):
    return np.stack(rows.sort_values(["layer", "channel"])["kernel"].to_numpy()).reshape(-1, k, k)


def _check_page(page, graphs, galleries):
    """Self-contained: plotly.js inline, images as data URIs, nothing fetched from elsewhere."""
    text = page.read_text()
    library, _, rest = text.partition("</script>")         # the first script is plotly.js itself, inline
    assert "plotly.js v" in library and "<script src" not in library
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", rest)
    assert rest.count('class="plotly-graph-div"') == graphs
    assert rest.count('src="data:image/png;base64,') == galleries


def _check_3x3_file(out, name, reference):
    """The rows of a MobileNetV2 with 3×3 kernels only: the file's kernels, k-means labels, and a twin
    drawn as nn.Conv2d would (|w| ≤ 1/√fan_in, fan_in = 9)."""
    rows = results.read_results(out / f"{name}.parquet")
    assert set(rows["model"]) == {name} and len(rows) == 2 * 7136
    trained = rows[rows["weights_tag"] != "random-init-seed0"]
    np.testing.assert_array_equal(_kernels(trained, 3), np.concatenate([k for _, _, k in reference]))
    assert (rows["clustering"] == "kmeans").all() and rows["label"].notna().all() and rows["clustered"].isna().all()
    twin = _kernels(rows[rows["weights_tag"] == "random-init-seed0"], 3)
    assert np.abs(twin).max() <= 1 / 3 and np.abs(twin).max() > 0.3 and not np.allclose(twin[:10], _kernels(trained, 3)[:10])
    _check_page(out / f"{name}.html", graphs=1, galleries=1)


@pytest.mark.slow
def test_inspect_a_keras_h5(keras_inspection):
    run = keras_inspection
    assert run.status == 0
    _check_3x3_file(run.out, "mobilenet_v2", depthwise_reference(run.layers))
    assert "mobilenet_v2.mobilenet_v2" not in run.stdout             # a file's model is its stem, once
    assert re.search(r"^mobilenet_v2 +[0-9.]", run.stdout, re.M) and "mobilenet_v2 (random init)" in run.stdout
    assert "3×3 kernels, share of each of the k-means clusters" in run.stdout
    assert "clustered (reference autoencoders" not in run.stdout      # 3×3 only: shares, never a % clustered


@pytest.mark.slow
def test_inspect_a_tfjs_model_json(tmp_path, capsys):
    layers = mobilenetv2_layers(seed=3)
    weights = [(f"{name}/{w}", array, "float32") for name, _, _, arrays in layers for w, array in arrays.items()]
    (tmp_path / "mnv2_web").mkdir()
    path, _ = write_tfjs(tmp_path / "mnv2_web", {"model_config": _model_config(layers), "keras_version": "2.15.0"},
                         weights, shard_bytes=4 << 20)
    assert cli.main(["inspect", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--per-class", "4"]) == 0
    _check_3x3_file(tmp_path / "out", "mnv2_web", depthwise_reference(layers))
    assert "mnv2_web" in capsys.readouterr().out


@pytest.mark.slow
def test_inspect_a_timm_name_from_the_hub_cache(tmp_path):
    hub = tmp_path / "hub"
    write_timm_init(hub, ATTO, seed=1)         # stand-in "pretrained" weights: timm's init with seed 1
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "kernels_lib", "inspect", ATTO, "--out", str(tmp_path / "out"),
                           "--no-progress", "--seed", "4"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "% of 5×5/7×7 kernels clustered" in done.stdout and "convnextv2_atto (random init)" in done.stdout
    rows = results.read_results(tmp_path / "out" / "convnextv2_atto.parquet")
    assert set(rows["weights_tag"]) == {"fcmae_ft_in1k", "random-init-seed4"} and (rows["kh"] == 7).all()
    assert (rows["clustering"] == "autoencoder").all() and (rows["threshold"] == 0.3).all()
    for tag, seed in (("fcmae_ft_in1k", 1), ("random-init-seed4", 4)):    # the twin: timm's own init, as sets draw it
        model = create_timm_model("convnextv2_atto", pretrained=False, seed=seed)
        expected = kernel_table(conv_layers(model), "convnextv2_atto", tag, "timm")
        np.testing.assert_array_equal(_kernels(rows[rows["weights_tag"] == tag], 7), _kernels(expected, 7))
    _check_page(tmp_path / "out" / "convnextv2_atto.html", graphs=1, galleries=1)


@pytest.mark.slow
def test_inspect_a_model_set_yaml(tmp_path, capsys):
    member = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
    (tmp_path / "mine.yaml").write_text(
        "description: a TFLite model and its twin\nmodels:\n"
        f"  - {{kind: tflite, package: mediapipe, member: {member}}}\n"
        f"  - {{kind: tflite, package: mediapipe, member: {member}, seed: 0}}\n")
    out = tmp_path / "out"
    assert cli.main(["inspect", str(tmp_path / "mine.yaml"), "--out", str(out), "--no-progress"]) == 0
    rows = results.read_results(out / "mine.parquet")
    pairs = rows.groupby(["model", "weights_tag"]).size()
    assert len(pairs) == 2 and pairs.iloc[0] == pairs.iloc[1]             # the trained model and its twin
    assert len(list((out / "kernels").glob("*.parquet"))) == 2           # the set's database, for a rerun
    sizes = sorted(rows["kh"].unique())
    text = (out / "mine.html").read_text()
    assert text.count('class="plotly-graph-div"') == len(sizes) and "random-init twin" in text


@pytest.mark.parametrize("source, message", [("README.md", "unknown file type '.md'"),
                                             ("missing/model.onnx", "no such file")])
def test_inspect_bad_source_is_one_clear_error(tmp_path, monkeypatch, capsys, source, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["inspect", source, "--no-progress"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("kernels_lib inspect: error:") and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []                                 # nothing written


def test_sizes_without_a_classifier_are_left_out_and_said(tmp_path):
    from torch import nn

    from kernels_lib.errors import AnalysisError
    from kernels_lib.publish import report

    net = nn.Sequential(nn.Conv2d(12, 12, 9, groups=12), nn.Conv2d(12, 12, 3, groups=12))
    found = report.inspect_source(net, tmp_path, seed=2, progress=False)
    assert sorted(found.results["kh"].unique()) == [3] and len(found.results) == 2 * 12
    assert any(note.startswith("left out: 24 9×9 kernels") for note in found.notes)     # trained and twin
    with pytest.raises(AnalysisError, match="no 3×3, 5×5 or 7×7 depthwise kernels"):
        report.inspect_source(nn.Sequential(nn.Conv2d(4, 4, 9, groups=4)), tmp_path, progress=False)
