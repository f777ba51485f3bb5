"""The static HTML site (kernels_lib.publish.site): what `figures` writes after the notebooks, checked on a
run of notebooks 04 and 14 on the smoke set (conftest `smoke_site`) and on small hand-made inputs.
The same pages in a real browser: tests/test_browser.py."""
import argparse
import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kernels_lib.publish import notebooks
from kernels_lib import paths
from kernels_lib.publish import site as static_site
from kernels_lib.errors import KernelsLibError, SiteError

from conftest import SITE_PARAMETERS


class _Links(HTMLParser):
    """Every href and src of a page, and the text of each <figure>."""

    def __init__(self):
        super().__init__()
        self.href, self.src, self.figures, self._figure = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("href"):
            self.href.append(attrs["href"])
        if attrs.get("src"):
            self.src.append(attrs["src"])
        if tag == "figure":
            self._figure = []
        if tag == "img" and self._figure is not None:
            self._figure.append(f"[img {attrs.get('src')}]")

    def handle_endtag(self, tag):
        if tag == "figure" and self._figure is not None:
            self.figures.append(" ".join(self._figure))
            self._figure = None

    def handle_data(self, data):
        if self._figure is not None:
            self._figure.append(data.strip())


def _links(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _n_values(trace: dict) -> int:
    """Points of a plotly trace; plotly writes numeric arrays as base64 typed arrays ({dtype, bdata})."""
    x = trace["x"]
    return len(x) if isinstance(x, list) else len(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]))


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_readme_gallery_rows_caption_the_committed_figures():
    rows = static_site.gallery_table(paths.REPO_ROOT / "README.md")
    fig4 = next(r for r in rows if r.paper_item == "Fig 4")
    assert fig4.notebook == "04_pca" and "fig04_pca_7x7.html" in fig4.files
    # a kernel size in a README name stands for any size; '*' for any name, but not for a sub-folder
    assert fig4.named(["fig04_pca_5x5.svg", "fig04_pca_components_5x5.png", "fig04_pca_5x5.png", "x.png"]) == \
        ["fig04_pca_5x5.png", "fig04_pca_components_5x5.png"]           # in the README's order
    bars = next(r for r in rows if "layer_proportions/*.png" in r.files)
    assert bars.named(["layer_proportions/5x5_lite0.png", "layer_proportions/a/b.png"]) == ["layer_proportions/5x5_lite0.png"]
    items = {item.path: item for item in static_site.gallery(paths.FIGURES_DIR)}
    for row in rows:
        for name in row.files:
            if (paths.FIGURES_DIR / name).is_file() and not name.startswith("results/"):
                assert items[name].paper_item == row.paper_item, name
    assert static_site.gallery_table(paths.REPO_ROOT / "no-such-README.md") == []


@pytest.mark.slow
def test_runner_writes_an_index_with_every_figure_and_one_link_per_notebook(smoke_site):
    index = smoke_site.site / "index.html"
    links = _links(index)
    listed = index.read_text(encoding="utf-8").split('id="notebooks"')[1]
    assert re.findall(r'href="([^"]+)"', listed) == ["04_pca.html", "14_explore_kernels.html"]
    for ref in links.href + links.src:                  # everything is in the site, nothing from elsewhere
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (smoke_site.site / ref).is_file(), ref
    written = sorted(p.relative_to(smoke_site.figures).as_posix() for p in smoke_site.figures.rglob("*")
                     if p.suffix in (".png", ".html"))
    assert "fig04_pca_5x5.png" in written and "fig04_pca_5x5.html" in written
    assert "explore_layers_ch_ppocr_mobile_v2.0_cls_mobile_5x5.html" in written
    for rel in written:                                  # every figure shown, copied byte for byte
        assert f"{static_site.FIGURES}/{rel}" in links.href, rel
        assert (smoke_site.site / static_site.FIGURES / rel).read_bytes() == (smoke_site.figures / rel).read_bytes()
    captions = {re.search(r"figures/(\S+)$", f).group(1): f for f in links.figures}
    assert "Fig 4" in captions["fig04_pca_5x5.png"] and "notebook 04_pca" in captions["fig04_pca_5x5.png"]
    assert "notebook 14_explore_kernels" in captions["explore_layers_ch_ppocr_mobile_v2.0_cls_mobile_5x5.html"]
    assert "smoke" in index.read_text(encoding="utf-8")   # says which model set the run used


@pytest.mark.slow
def test_notebook_pages_hold_their_outputs_and_load_nothing_from_the_internet(smoke_site):
    pca = (smoke_site.site / "04_pca.html").read_text(encoding="utf-8")
    explorer = (smoke_site.site / "14_explore_kernels.html").read_text(encoding="utf-8")
    for page, text in (("04_pca.html", pca), ("14_explore_kernels.html", explorer)):
        links = _links(smoke_site.site / page)
        for src in (s for s in links.src if not s.startswith("data:")):   # images of outputs are inline
            assert "://" not in src and (smoke_site.site / src.split("?")[0]).is_file(), (page, src)
        assert links.src.count("plotly.min.js") == 1 and "mathjax/tex-svg.js" in links.src
        assert "index.html" in links.href
        # what nbconvert's own page would fetch: require.js, MathJax, mermaid, the widget manager
        assert "cdnjs.cloudflare.com" not in text and "unpkg.com" not in text and "require.min.js" not in text
        assert text.count("data:image/png;base64,") >= 1       # matplotlib figures shown as images
    result = json.loads((smoke_site.results / "04_pca.json").read_text())
    # the 3-D scatter: one plotly scatter3d trace per k-means cluster, drawn by the site's plotly.js
    call = re.search(r'Plotly\.newPlot\(\s*"plotly-cell\d+-output\d+",\s*', pca)
    traces, _ = json.JSONDecoder().raw_decode(pca, call.end())
    assert [t["type"] for t in traces] == ["scatter3d"] * len(result["cluster_sizes"])
    assert len(traces) == SITE_PARAMETERS["n_clusters"] and sum(map(_n_values, traces)) == result["n_used"]
    assert "$$" in pca or "\\[" in pca                      # the equations, left to MathJax
    # the explorer's dropdowns cannot work without a kernel: a note says so; its bars are plotly
    assert static_site.WIDGET_NOTE.split(":")[0] in explorer
    assert "application/vnd.jupyter.widget-view+json" not in explorer and "widget-state" not in explorer
    assert '"type":"bar"' in explorer


@pytest.mark.slow
def test_same_inputs_give_the_same_bytes_and_a_failed_build_keeps_the_old_site(smoke_site, tmp_path):
    executed = static_site.executed_notebooks(smoke_site.build)
    assert [p.name for p in executed] == ["04_pca.ipynb", "14_explore_kernels.ipynb"]
    again = static_site.build_site(executed, smoke_site.figures, tmp_path / "site")
    assert again.index == tmp_path / "site" / "index.html" and set(again.pages) == {"04_pca", "14_explore_kernels"}
    before = _files(tmp_path / "site")
    assert before == _files(smoke_site.site)
    broken = tmp_path / "15_broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(SiteError, match="15_broken.ipynb") as info:
        static_site.build_site([*executed, broken], smoke_site.figures, tmp_path / "site")
    assert isinstance(info.value, KernelsLibError)
    assert _files(tmp_path / "site") == before                       # the old site, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["15_broken.ipynb", "site"]   # no temporary left


def test_no_notebook_or_a_missing_one_is_an_error_that_says_what_to_run(tmp_path):
    with pytest.raises(SiteError, match="python -m kernels_lib figures"):
        static_site.build_site([], tmp_path / "figures", tmp_path / "site")
    with pytest.raises(SiteError, match="01_missing.ipynb"):
        static_site.build_site([tmp_path / "01_missing.ipynb"], tmp_path / "figures", tmp_path / "site")
    assert not (tmp_path / "site").exists()


def _widget_state(models: dict) -> dict:
    return {static_site.WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": {
        key: {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}
        for key, (name, state) in models.items()}}}


def test_static_outputs_draw_plotly_keep_finished_progress_bars_and_explain_controls():
    view = "application/vnd.jupyter.widget-view+json"
    nb = new_notebook(cells=[new_markdown_cell("# 01 · t"), new_code_cell("x", outputs=[
        new_output("display_data", {static_site.PLOTLY_MIME: {"data": [{"type": "scatter3d", "x": [1], "y": [2], "z": [3]}],
                                                               "layout": {}}}),
        new_output("display_data", {view: {"model_id": "bar", "version_major": 2, "version_minor": 0},
                                    "text/plain": "extract:   0%|          | 0/3"}),
        new_output("display_data", {view: {"model_id": "pick", "version_major": 2, "version_minor": 0},
                                    "text/plain": "Dropdown(options=('a',))"}),
    ])])
    nb.metadata["widgets"] = _widget_state({
        "bar": ("HBoxModel", {"children": ["IPY_MODEL_text", "IPY_MODEL_progress"]}),
        "text": ("HTMLModel", {"value": "extract: 100%"}),
        "progress": ("FloatProgressModel", {"value": 3.0, "max": 3.0}),
        "pick": ("DropdownModel", {"index": 0}),
    })
    page, n_plotly = static_site.static_outputs(nb)
    assert n_plotly == 1 and "widgets" not in page.metadata and "widgets" in nb.metadata   # the input is untouched
    plotly_html, progress, control = (o["data"] for o in page.cells[1].outputs)
    assert static_site.PLOTLY_MIME not in plotly_html and 'id="plotly-cell1-output0"' in plotly_html["text/html"]
    assert "Plotly.newPlot" in plotly_html["text/html"] and "<script src" not in plotly_html["text/html"]
    assert "extract: 100%" in progress["text/html"] and '<progress value="3.0" max="3.0">' in progress["text/html"]
    assert control["text/plain"] == static_site.WIDGET_NOTE
    assert static_site.static_outputs(nb)[0] == page                # same input, same page


@pytest.mark.slow
def test_figures_without_site_runs_the_notebooks_only(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    cell = new_code_cell("output_dir = 'x'\nresults_dir = 'y'")
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# 01 · tiny"), cell, new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "01_tiny.ipynb")
    parser = argparse.ArgumentParser()
    notebooks.add_arguments(parser)
    args = parser.parse_args(["--no-site", "--notebook-dir", str(src), "--build-dir", str(tmp_path / "build" / "nb"),
                              "--output-dir", str(tmp_path / "figures"), "--models", "smoke", "--no-progress"])
    assert notebooks.run_from_args(args) == 0
    assert (tmp_path / "build" / "nb" / "01_tiny.ipynb").is_file() and not (tmp_path / "build" / "site").exists()
    args.no_site = False
    assert notebooks.run_from_args(args) == 0
    assert (tmp_path / "build" / "site" / "01_tiny.html").is_file()
    assert "01 · tiny" in (tmp_path / "build" / "site" / "index.html").read_text(encoding="utf-8")


def test_gallery_leaves_out_results_and_other_sets_figures(tmp_path):
    figures = tmp_path / "figures"
    for rel in ("a.png", "results/01_x.json", "layer_proportions/c.png", "tables/t.md", "tables/t.csv",
                "smoke/b.png", "smoke/results/04_pca.json", ".a.png.123.abcdef12.tmp"):
        (figures / rel).parent.mkdir(parents=True, exist_ok=True)
        (figures / rel).write_text("x")
    (figures / "results" / "01_x.json").write_text(json.dumps({"figures": {"a": str(figures / "a.png")}}))
    items = static_site.gallery(figures, tmp_path / "no-README.md")
    assert [(i.path, i.kind, i.notebook) for i in items] == [
        ("a.png", "image", "01_x"), ("layer_proportions/c.png", "image", None), ("tables/t.md", "table", None)]
