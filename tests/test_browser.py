"""The site, the interactive PCA figure and JupyterLab in a real browser: Debian's headless Chromium
driven over the DevTools protocol (tests/browser.py). Every page must load without a JavaScript
exception, a console error or a failed load, and fetch nothing from outside the site (or, for
JupyterLab, outside the local server): the site is meant to be opened with no internet."""
import base64
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import nbformat
import numpy as np
import pytest
from PIL import Image

from kernels_lib import paths

from browser import Browser, chromium_or_skip

LOCAL = ("file://", "data:", "blob:")
#: Images loaded eagerly and decoded, MathJax finished: then the page is as a reader sees it.
SETTLED = """(async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  if (!images.every(img => img.complete)) return false;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  return {broken: images.filter(img => img.naturalWidth === 0).map(img => img.src.slice(0, 80)),
          images: images.length,
          equations: document.querySelectorAll("mjx-container").length,
          math_errors: document.querySelectorAll("mjx-merror").length,
          graphs: Array.from(document.querySelectorAll(".js-plotly-plot")).map(g => !!g._fullLayout)};
})()"""
#: The first plotly graph with a 3-D scatter: its points, where it is on the page, its id.
SCATTER = """(() => {
  const gd = Array.from(document.querySelectorAll(".js-plotly-plot"))
                  .find(g => (g._fullData || []).some(t => t.type === "scatter3d"));
  if (!gd || !gd._fullLayout.scene || !gd._fullLayout.scene._scene) return null;
  gd.scrollIntoView();
  const r = gd.getBoundingClientRect();
  return {id: gd.id, rect: [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height],
          points: gd._fullData.filter(t => t.type === "scatter3d" && t.visible === true).reduce((n, t) => n + t._length, 0),
          webgl: !!gd._fullLayout.scene._scene.glplot};
})()"""


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    executable = chromium_or_skip()
    with Browser(executable, tmp_path_factory.mktemp("chromium") / "profile") as browser:
        yield browser


def _check_loaded(page, allowed=LOCAL):
    assert page.errors() == [], page.url
    outside = [url for url in page.requests if not url.startswith(allowed)]
    assert outside == [], f"{page.url} fetched {outside}"


def _coloured_pixels(page, rect) -> int:
    """Pixels of a region of the page's screenshot with a clear hue (marker colours, not grey axes or white)."""
    x, y, w, h = rect
    shot = page.browser.send("Page.captureScreenshot", {"format": "png", "clip": {
        "x": x, "y": y, "width": w, "height": h, "scale": 1}}, page.session)["data"]
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot))).convert("RGB")).astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())


@pytest.mark.slow
def test_every_site_page_loads_offline_without_javascript_errors(chromium, smoke_site):
    index = chromium.open((smoke_site.site / "index.html").as_uri())
    state = index.wait_for(SETTLED)
    _check_loaded(index)
    assert state["broken"] == [] and state["images"] >= 2               # the gallery's PNGs are there
    links = index.evaluate("Array.from(document.querySelectorAll('ol.notebooks a')).map(a => a.href)")
    assert [link.rsplit("/", 1)[1] for link in links] == ["04_pca.html", "14_explore_kernels.html"]
    for link in links:
        page = chromium.open(link)
        state = page.wait_for(SETTLED)
        _check_loaded(page)
        assert state["broken"] == [] and state["images"] >= 1           # matplotlib outputs as images
        assert state["graphs"] and all(state["graphs"]), link            # every plotly figure drawn
        assert state["math_errors"] == 0
        if link.endswith("04_pca.html"):
            assert state["equations"] >= 5                               # the PCA equations typeset offline
        page.close()
    index.close()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["figure file", "site page"])
def test_pca_scatter_draws_its_points(chromium, smoke_site, where):
    result = json.loads((smoke_site.results / "04_pca.json").read_text())
    url = (smoke_site.site / "04_pca.html").as_uri() if where == "site page" else \
        (smoke_site.figures / "fig04_pca_5x5.html").as_uri()
    assert result["figures"]["fig04_html"].endswith("fig04_pca_5x5.html")
    page = chromium.open(url)
    scatter = page.wait_for(SCATTER)
    assert scatter["webgl"] and scatter["points"] == result["n_used"] == 800
    deadline, drawn = time.monotonic() + 20, 0
    while drawn < scatter["points"] and time.monotonic() < deadline:   # WebGL draws on the next frames
        chromium.pump(0.3)
        drawn = _coloured_pixels(page, scatter["rect"])
    # the control: the same region with every trace hidden has no marker colour left
    page.evaluate(f"Plotly.restyle(document.getElementById('{scatter['id']}'), {{visible: false}}).then(() => 1)")
    chromium.pump(0.5)
    hidden = _coloured_pixels(page, scatter["rect"])
    assert drawn >= scatter["points"] and hidden <= drawn / 100, (drawn, hidden)
    _check_loaded(page)
    page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _jupyterlab(tmp_path, timeout=120):
    """JupyterLab on a free loopback port with a random token, no browser, no autosave, its settings
    and state in tmp_path; yields (base URL, token); the server and its kernels are always ended."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')   # never write the repository's notebook
    env = {**os.environ, **{name: str(tmp_path / name.lower()) for name in
                            ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}}
    log = open(tmp_path / "jupyterlab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={paths.REPO_ROOT}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start (exit status {server.poll()}): "
                                       f"{(tmp_path / 'jupyterlab.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.3)
        yield base, token
    finally:
        server.terminate()                                  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(server.pid, signal.SIGKILL)           # whatever is left of its own process group
        except ProcessLookupError:
            pass
        server.wait()
        log.close()


def _api(base, token, path):
    with urllib.request.urlopen(f"{base}/api/{path}?token={token}", timeout=30) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_jupyterlab_serves_and_opens_notebook_01(chromium, tmp_path):
    source = paths.NOTEBOOK_DIR / "01_extract_kernels.ipynb"
    before = source.read_bytes()
    with _jupyterlab(tmp_path) as (base, token):
        served = _api(base, token, "contents/notebooks/01_extract_kernels.ipynb")
        assert served["type"] == "notebook"
        assert [c["source"] for c in served["content"]["cells"]] == \
            [c.source for c in nbformat.read(source, as_version=4).cells]
        page = chromium.open(f"{base}/lab/tree/notebooks/01_extract_kernels.ipynb?token={token}", timeout=120)
        title = page.wait_for("(() => { const h = document.querySelector('.jp-NotebookPanel .jp-MarkdownOutput h1');"
                              " return h && h.textContent; })()", timeout=120)
        assert title.startswith("01 · Extracting depthwise kernels")
        deadline = time.monotonic() + 90                   # opening the notebook started its kernel
        while True:
            sessions = _api(base, token, "sessions")
            if any(s["path"] == "notebooks/01_extract_kernels.ipynb" and s["kernel"]["execution_state"] == "idle"
                   for s in sessions) or time.monotonic() > deadline:
                break
            chromium.pump(0.5)
        assert [(s["path"], s["kernel"]["execution_state"]) for s in sessions] == \
            [("notebooks/01_extract_kernels.ipynb", "idle")]
        chromium.pump(1.0)
        _check_loaded(page, allowed=(base, "data:", "blob:"))
        page.close()
    assert source.read_bytes() == before                   # opened, not written


#: Each plotly graph of a page once drawn: its bar segments, the categories of its x axes, where it is.
BARS = """(() => {
  const graphs = Array.from(document.querySelectorAll(".js-plotly-plot"));
  if (!graphs.length || !graphs.every(g => g._fullLayout)) return null;
  graphs[0].scrollIntoView();
  return graphs.map(g => { const r = g.getBoundingClientRect();
    return {segments: g.querySelectorAll(".barlayer .point path").length,
            panels: Object.keys(g._fullLayout).filter(k => /^xaxis[0-9]*$/.test(k)).length,
            layers: g._fullLayout.xaxis._categories,
            rect: [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]}; });
})()"""


@pytest.mark.slow
def test_inspect_report_draws_its_bars_offline(chromium, keras_inspection, tmp_path):
    page = chromium.open((keras_inspection.out / "mobilenet_v2.html").as_uri())
    state = page.wait_for(SETTLED)
    graphs = page.wait_for(BARS)
    _check_loaded(page)
    assert state["broken"] == [] and state["images"] == 1             # the class gallery, decoded
    [bars] = graphs                                                   # one size (3×3), one model
    assert bars["panels"] == 2                                        # trained, then its random-init twin
    assert bars["layers"] == [str(i) for i in range(17)]              # MobileNetV2's 17 layers in network order
    assert bars["segments"] >= 2 * 17
    assert _coloured_pixels(page, bars["rect"]) > 5_000               # the class colours painted, not only in the DOM
    page.screenshot(tmp_path / "inspect_report.png")
