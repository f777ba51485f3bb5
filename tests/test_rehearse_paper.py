"""benchmarks/rehearse_paper.py, without running the figures: its hub cache must be one that timm's
pretrained loader reads offline, its subset a model set, its log parsing must match the runner's lines,
and its stamp must mark every figure. Plus the hub-cache writer it shares with the tests."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from kernels_lib.publish import notebooks
from kernels_lib import paths
from kernels_lib.database import zoo
from kernels_lib.sources.hub_cache import (
    cached_timm_weights,
    repo_folder,
    write_hub_cache,
)

SCRIPT = paths.REPO_ROOT / "benchmarks" / "rehearse_paper.py"
TAG = "convnextv2_atto.fcmae_ft_in1k"    # the smallest timm tag of the paper set (15 MB)


def _script():
    spec = importlib.util.spec_from_file_location("rehearse_paper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOAD = textwrap.dedent("""
    import sys, numpy as np
    from kernels_lib.sources.module import conv_layers
    from kernels_lib.sources.timm_source import create_timm_model
    hub = create_timm_model(sys.argv[1])                                  # pretrained=True, from the hub cache
    init = create_timm_model(sys.argv[1], pretrained=False, seed=int(sys.argv[2]))
    same = all(np.array_equal(a.weight, b.weight) for a, b in zip(conv_layers(hub), conv_layers(init)))
    print("SAME" if same and len(conv_layers(hub)) == len(conv_layers(init)) else "DIFFERENT")
""")


@pytest.mark.slow
def test_dry_run_fills_a_hub_cache_that_timm_loads_offline(tmp_path):
    out = tmp_path / "record.json"
    command = [sys.executable, str(SCRIPT), "--subset", TAG, "--seed", "3", "--dry-run",
               "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "written" in first.stdout and "figures --models" in first.stdout and not out.exists()

    model_set = zoo.load_model_set(tmp_path / "work" / "paper-subset.yaml")
    assert [(e.kind, e.id) for e in model_set.entries] == [("timm", TAG)]
    assert model_set.entries[0].spec["depthwise_kernels"] == {"7x7": 1840}
    assert cached_timm_weights(tmp_path / "work" / "hub", TAG) is not None

    env = _script().offline_env(tmp_path / "work")
    loaded = subprocess.run([sys.executable, "-c", LOAD, TAG, "3"], env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "SAME"        # the pretrained path reads timm's seeded initialisation

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and "already there" in again.stdout   # an existing cache is kept


def test_subset_by_number_or_by_tag_names():
    script = _script()
    entries = script.paper_timm_entries()
    assert len(entries) == 82 and all(raw["kind"] == "timm" for raw in entries)
    assert script.choose_subset("2", entries) == entries[:2]
    assert [raw["name"] for raw in script.choose_subset(f"{TAG}, mixnet_s.ft_in1k", entries)] == \
        [TAG, "mixnet_s.ft_in1k"]
    with pytest.raises(SystemExit, match="convnext_nonesuch"):
        script.choose_subset("convnext_nonesuch", entries)
    with pytest.raises(SystemExit, match="1 to 82"):
        script.choose_subset("0", entries)


@pytest.mark.slow
def test_the_runner_lines_are_the_ones_the_script_reads(tmp_path):
    """The script times notebooks by the runner's own log lines: a change there must fail here."""
    import nbformat

    folder = tmp_path / "nb"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("model_set = 'x'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(model_set)")]
    nbformat.write(nb, folder / "01_tiny.ipynb")
    lines = []
    [run] = notebooks.run_all("smoke", notebook_dir=folder, build_dir=tmp_path / "build",
                              output_dir=tmp_path / "out", progress=False, log=lines.append, site=False)
    script = _script()
    started = [m for m in map(script.STARTED.match, lines) if m]
    finished = [m for m in map(script.DONE.match, lines) if m]
    assert len(started) == len(finished) == 1 and lines.index(started[0].string) < lines.index(finished[0].string)
    assert started[0].group(3) == "01_tiny.ipynb"
    done = finished[0]
    assert done.group(3) == "01_tiny.ipynb" and float(done.group(4)) == pytest.approx(run.seconds, abs=0.05)


def test_every_figure_is_stamped_once(tmp_path):
    script = _script()
    Image.fromarray(np.full((60, 200, 3), 255, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "sub" / "b.png")
    (tmp_path / "c.html").write_text("<html><body class='x'><p>plot</p></body></html>")
    assert script.stamp_figures(tmp_path) == {"png": 2, "html": 1}
    with Image.open(tmp_path / "a.png") as image:
        assert image.info["kernels_lib_rehearsal"] == script.BANNER and image.height > 60
        banner = np.asarray(image.convert("RGB"))[: image.height - 60]
    assert (banner != 255).any()                  # the banner is drawn, not a blank strip
    assert script.BANNER in (tmp_path / "c.html").read_text()
    assert "not pretrained" in (tmp_path / "README.md").read_text()
    assert script.stamp_figures(tmp_path) == {"png": 0, "html": 0}   # a rerun does not stamp twice


def test_an_interrupted_hub_cache_write_leaves_nothing_to_load(tmp_path):
    def fail(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_hub_cache(tmp_path, "timm/x.y", fail)
    repo = repo_folder(tmp_path, "timm/x.y")
    assert not (repo / "refs").exists() and list((repo / "snapshots").iterdir()) == []

    snapshot = write_hub_cache(tmp_path, "timm/x.y", lambda f: (f / "model.safetensors").write_bytes(b"w"))
    assert (repo / "refs" / "main").read_text() == snapshot.name
    assert write_hub_cache(tmp_path, "timm/x.y", lambda f: (f / "model.safetensors").write_bytes(b"w")) == snapshot


def test_a_resumed_rehearsal_keeps_each_notebook_from_the_sitting_that_completed_it():
    def sitting(wall, *notebooks, returncode=0):
        return {"run": {"returncode": returncode, "wall_seconds": wall, "peak_rss_tree_bytes": 10 * wall,
                        "peak_rss_process_bytes": wall, "output_tail": [],
                        "notebooks": [{"notebook": name, "seconds": seconds, "completed": seconds is not None}
                                      for name, seconds in notebooks]}}

    first = sitting(100, ("01_a.ipynb", 60.0), ("02_b.ipynb", None), returncode=-9)   # killed during 02
    second = sitting(50, ("02_b.ipynb", 40.0), ("03_c.ipynb", 5.0))                   # 01 skipped: not listed
    run = _script().merge_sittings([first, second])
    assert run["sittings"] == 2 and run["wall_seconds"] == 150 and run["returncode"] == 0
    assert [(nb["notebook"], nb["seconds"], nb["sitting"]) for nb in run["notebooks"]] == \
        [("01_a.ipynb", 60.0, 1), ("02_b.ipynb", 40.0, 2), ("03_c.ipynb", 5.0, 2)]
    assert run["peak_rss_tree_bytes"] == 1000
