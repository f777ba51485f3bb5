"""Figure functions: files written, kernels centred at zero, one colour per class, no NaN through."""
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage

from kernels_lib.method import dog, dog_bank
from kernels_lib.publish import notebooks
from kernels_lib.analysis import pca, tables
from kernels_lib import plots, vocab

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(fig):
    return [a for ax in fig.axes for a in ax.get_children() if isinstance(a, AxesImage)]


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def synthetic():
    return dog_bank.synthetic_bank(7, 600, snr=8.0, seed=3)


def test_kernel_grid_centres_every_kernel_at_zero(tmp_path):
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(5, 7, 7)) * np.array([1, 10, 0.01, 3, 1])[:, None, None]
    kernels[4] = 0.0                                        # an all-zero kernel must not give NaN limits
    kernels[0] += 5.0                                       # a mostly positive kernel stays centred at zero
    fig = plots.kernel_grid(kernels, titles=list("abcde"), captions=list("vwxyz"), ncols=3, colorbar=True)
    images = _images(fig)
    assert len(images) == 5
    for im, k in zip(images, kernels):
        lo, hi = im.get_clim()
        assert lo == -hi and np.isfinite(hi) and hi > 0
        assert hi == pytest.approx(np.abs(k).max() if np.abs(k).max() > 0 else 1.0)
        assert im.get_cmap().name == plots.DIVERGING
    shared = plots.kernel_grid(kernels, shared_scale=True)
    assert {im.get_clim() for im in _images(shared)} == {(-np.abs(kernels).max(), np.abs(kernels).max())}
    path = plots.save_figure(fig, tmp_path / "sub" / "grid.png")
    assert _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary file left behind


def test_nan_kernels_are_refused_not_drawn():
    kernels = np.zeros((3, 5, 5))
    kernels[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"kernels \[1\] hold NaN"):
        plots.kernel_grid(kernels)
    with pytest.raises(ValueError, match="NaN"):
        plots.kernel_rows([("layer 0", kernels)])


def test_one_colour_and_readable_name_per_class():
    colours = [plots.PALETTE[c] for c in vocab.CLASS_ORDER]
    assert len(set(colours)) == len(colours) and set(plots.PALETTE) == set(vocab.CLASS_ORDER)
    for fine in vocab.CLASSES:                               # fine classes take their merged class's colour
        assert plots.class_color(fine) == plots.PALETTE[vocab.merge_class(fine)]
    assert vocab.display_name("on") == "On-centre DoG"
    assert vocab.display_name("off-dxy") == "Off-centre ∂xy"
    assert vocab.order_classes(["other", "1st-derivative", "off", "on"]) == ["on", "off", "1st-derivative", "other"]
    with pytest.raises(vocab.UnknownClassError, match="unknown class 'gabor'"):
        plots.class_color("gabor")               # a typo is an error, never a new colour
    with pytest.raises(vocab.UnknownClassError, match="did you mean 'on-cross'"):
        vocab.merge_class("on-crss")


def test_rows_gallery_and_figure2_layout(tmp_path, synthetic):
    fig = plots.class_gallery(synthetic.kernels, synthetic.merged, per_class=5, seed=1, title="gallery")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    present = vocab.order_classes(synthetic.merged)
    assert [lab.split("\n")[0] for lab in labels] == [vocab.display_name(c) for c in present]
    colours = [ax.yaxis.label.get_color() for ax in fig.axes if ax.get_ylabel()]
    assert colours == [plots.class_color(c) for c in present]
    assert all(lo == -hi for im in _images(fig) for lo, hi in [im.get_clim()])
    assert _is_png(plots.save_figure(fig, tmp_path / "gallery.png"))

    regular = [("layer 0", np.random.default_rng(0).normal(size=(4, 3, 3))), ("layer 5", np.ones((0, 3, 3)))]
    depthwise = [("layer 0", synthetic.kernels[:8]), ("layer 1", synthetic.kernels[8:16]),
                 ("layer 2", synthetic.kernels[16:20])]
    fig2 = plots.regular_vs_depthwise(regular, depthwise, title="Figure 2")
    assert len(_images(fig2)) == 4 + 8 + 8 + 4
    assert _is_png(plots.save_figure(fig2, tmp_path / "fig2.png"))


def test_dog_family_surfaces_and_maps(tmp_path):
    x, y = dog.fine_grid(7, 41)
    fields = {c: dog.evaluate(c, x, y) for c in ("on", "on-dx")}
    fig = plots.dog_family_figure(fields, 3.0, title="Figure 1")
    assert len(fig.axes) == 4
    for im, z in zip(_images(fig), fields.values()):
        assert im.get_clim() == (-np.abs(z).max(), np.abs(z).max())
    assert _is_png(plots.save_figure(fig, tmp_path / "fig1.png"))
    with pytest.raises(ValueError, match="finite 2-D"):
        plots.dog_family_figure({"bad": np.full((5, 5), np.nan)}, 2.0)


def test_pca_finds_pure_clusters_on_synthetic_kernels(tmp_path, synthetic):
    kernels = np.concatenate([synthetic.kernels, np.full((1, 7, 7), 0.3, np.float32)])  # + one constant kernel
    result = pca.kernel_pca(kernels, n_components=3, n_clusters=8, seed=0)
    assert result.n_degenerate == 1 and len(result.index) == len(synthetic.kernels)
    assert np.isfinite(result.coords).all()
    ev = result.explained_variance_ratio
    assert np.all(np.diff(ev) <= 0) and 0 < ev.sum() <= 1
    clearest = result.clearest(4)
    assert len(clearest) == 4
    majority = []
    for c in clearest:  # the most cohesive clusters are (nearly) single classes of the ground truth
        share = pd.Series(synthetic.merged[result.index[result.cluster == c]]).value_counts(normalize=True)
        assert share.iloc[0] >= 0.85
        majority.append(share.index[0])
    assert len(set(majority)) >= 3                      # and they are different classes
    fig = plots.pca_figure(result, kernels, cluster_names={clearest[0]: "first"}, title="Figure 4")
    assert _is_png(plots.save_figure(fig, tmp_path / "fig4.png"))
    meta = pd.DataFrame({"model": "synthetic", "layer": np.arange(len(kernels)) % 5, "channel": np.arange(len(kernels))})
    html = plots.save_html(plots.pca_scatter_html(result, kernels, meta), tmp_path / "fig4.html")
    text = html.read_text()
    assert "layer 3, channel 8" in text and "weights \\u00d7100" in text  # plotly escapes non-ASCII
    assert "<script src=\"http" not in text and len(text) > 1_000_000  # plotly.js embedded: opens offline


def test_proportions_bars_and_activation_boxes(tmp_path, synthetic):
    labels = pd.DataFrame({"layer": np.arange(len(synthetic.merged)) % 4, "class": synthetic.merged})
    labels.loc[labels.index % 7 == 0, "class"] = "unclustered"
    counts = pd.crosstab(labels["layer"], labels["class"])
    props = counts.div(counts.sum(axis=1), axis=0)[vocab.order_classes(set(labels["class"]) - {"unclustered"})]
    fig = plots.stacked_proportions(props, title="per layer")
    ax = fig.axes[0]
    handles, names = ax.get_legend_handles_labels()
    assert names == [vocab.display_name(c) for c in props.columns]
    bars = [p for p in ax.patches]
    assert bars[0].get_height() == pytest.approx(props.iloc[0, 0])
    assert bars[0].get_facecolor()[:3] == pytest.approx(tuple(int(plots.class_color(props.columns[0])[i:i + 2], 16) / 255
                                                              for i in (1, 3, 5)))
    assert _is_png(plots.save_figure(fig, tmp_path / "bars.png"))
    horizontal = plots.stacked_proportions(props, horizontal=True, xlabel="model")
    assert _is_png(plots.save_figure(horizontal, tmp_path / "models.png"))

    table = pd.DataFrame({"class": synthetic.merged, "total_activation": synthetic.kernels.sum(axis=(1, 2))})
    assert _is_png(plots.save_figure(plots.total_activation_boxes(table), tmp_path / "box.png"))
    table.loc[0, "total_activation"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plots.total_activation_boxes(table)


def test_centroids_tables_and_results(tmp_path):
    cents = np.random.default_rng(0).normal(size=(10, 3, 3))
    fig = plots.centroid_figure(cents, np.arange(1, 11))
    assert len(_images(fig)) == 10 and "n=10 (18.2%)" in [ax.get_xlabel() for ax in fig.axes]
    df = pd.DataFrame({"model": ["a|b", "c"], "clustered (%)": [97.333, 50.0]})
    paths = tables.save_table(df, "t1", tmp_path)
    assert pd.read_csv(paths["csv"]).equals(df)
    md = (tmp_path / "tables" / "t1.md").read_text().splitlines()
    assert md[0] == "| model | clustered (%) |" and md[2] == "| a\\|b | 97.33 |"
    path = notebooks.save_results(tmp_path / "results", "99_x", {"n": np.int64(3), "v": np.arange(2), "p": tmp_path})
    assert json.loads(path.read_text()) == {"n": 3, "v": [0, 1], "p": str(tmp_path)}
    with pytest.raises(ValueError, match="non-finite"):
        notebooks.save_results(tmp_path, "bad", {"x": float("nan")})


def test_theta_by_layer_draws_the_same_png_every_time_and_leaves_numpys_generator_alone(tmp_path):
    """The strip plot's jitter is seeded: the same table gives the same bytes (committed figures stay put on a
    rerun); the caller's global numpy state is given back."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"model": np.repeat(["a", "b"], 60), "layer": np.tile(np.arange(3), 40),
                          "theta": rng.uniform(0, 360, 120), "selection": "trained, clustered by the fit"})
    np.random.seed(11)
    before = np.random.get_state()[1].copy()
    paths = [plots.save_figure(plots.theta_by_layer(table, title="t"), tmp_path / f"{i}.png") for i in range(2)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert (np.random.get_state()[1] == before).all()
