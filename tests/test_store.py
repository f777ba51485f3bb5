"""The kernel database: exact round trip, plain Parquet, atomic writes, resumable and reproducible extraction."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kernels_lib import errors, fileio
from kernels_lib.database import extract, store, zoo
from kernels_lib.errors import CorruptFileError, KernelsLibError
from kernels_lib.records import KERNEL_COLUMNS, ConvLayer, kernel_array, kernel_table

REPO = Path(__file__).resolve().parents[1]


def _table(seed=0, model="toy"):
    rng = np.random.default_rng(seed)
    layers = [
        ConvLayer("stem", rng.normal(size=(8, 3, 3, 3)).astype(np.float32), in_channels=3, groups=1),
        ConvLayer("dw3", rng.normal(size=(8, 1, 3, 3)).astype(np.float32), in_channels=8, groups=8),
        ConvLayer("dw5", rng.normal(size=(16, 1, 5, 5)).astype(np.float32), in_channels=16, groups=16, stride=(2, 2)),
        ConvLayer("dw7", rng.normal(size=(4, 1, 7, 7)).astype(np.float32), in_channels=4, groups=4),
        ConvLayer("dw5b", rng.normal(size=(6, 1, 5, 5)).astype(np.float32), in_channels=6, groups=6),
    ]
    layers[2].weight[3] = 0.25   # a constant kernel: degenerate
    return layers, kernel_table(layers, model, "seed0", "module")


def test_round_trip_is_exact_and_plain_parquet(tmp_path):
    layers, table = _table()
    path = store.write_kernels(table, tmp_path / "toy.parquet", metadata={"source": "unit test"})
    back = store.read_kernels(path)
    assert list(back.columns) == KERNEL_COLUMNS and len(back) == len(table) == 8 + 16 + 4 + 6
    for col in KERNEL_COLUMNS:
        if col != "kernel":
            assert back[col].tolist() == table[col].tolist(), col
    np.testing.assert_array_equal(kernel_array(back[back.module == "dw7"]), layers[3].weight[:, 0])
    assert back.kernel.iloc[0].dtype == np.float32
    # any Parquet reader: pandas and pyarrow see list<float32> kernels, one row group per depthwise layer
    plain = pd.read_parquet(path)
    np.testing.assert_array_equal(np.stack(plain.kernel[plain.module == "dw5"]), layers[2].weight.reshape(16, 25))
    meta = pq.ParquetFile(path)
    assert str(meta.schema_arrow.field("kernel").type) == "list<element: float>"
    assert meta.num_row_groups == 4
    assert store.read_provenance(path).loc[0, "source"] == "unit test"


def test_selection_without_loading_everything(tmp_path):
    _, a = _table(0, "a")
    _, b = _table(1, "b")
    store.write_kernels(a, tmp_path / "a.parquet")
    store.write_kernels(b, tmp_path / "b.parquet")
    both = store.read_kernels(tmp_path)
    assert both.model.tolist() == ["a"] * len(a) + ["b"] * len(b)
    five = store.read_kernels(tmp_path, kernel_sizes=[5], models=["b"], columns=["model", "kh", "channel"])
    assert list(five.columns) == ["model", "kh", "channel"]
    assert len(five) == 16 + 6 and set(five.kh) == {5} and set(five.model) == {"b"}
    assert len(store.read_kernels(tmp_path, kernel_sizes=[(7, 7), 3])) == 2 * (8 + 4)
    assert len(store.read_kernels(tmp_path, include_degenerate=False)) == len(both) - 2
    meta, fives = store.read_kernel_array(tmp_path, 5, include_degenerate=False, columns=["model", "module"])
    reference = store.read_kernels(tmp_path, kernel_sizes=[5], include_degenerate=False)
    np.testing.assert_array_equal(fives, kernel_array(reference))
    assert meta.columns.tolist() == ["model", "module"] and meta.module.tolist() == reference.module.tolist()
    assert store.read_kernel_array(tmp_path, 9)[1].shape == (0, 9, 9)
    empty = store.read_kernels(tmp_path, models=["nobody"])
    assert len(empty) == 0 and list(empty.columns) == KERNEL_COLUMNS
    counts = store.counts(tmp_path)
    assert counts.loc[("a", "seed0"), "5×5"] == 22 and counts.loc[("total", ""), "total"] == len(both)
    summary = store.counts_summary(tmp_path)
    assert summary["by_size"] == {"3x3": 16, "5x5": 44, "7x7": 8}
    assert summary["degenerate_by_size"] == {"5x5": 2} and summary["total"] == len(both)


def test_same_table_gives_same_bytes(tmp_path):
    _, table = _table()
    one = store.write_kernels(table, tmp_path / "one.parquet", metadata={"x": 1})
    two = store.write_kernels(table.copy(), tmp_path / "two.parquet", metadata={"x": 1})
    assert one.read_bytes() == two.read_bytes()


def test_failed_write_leaves_old_file_and_no_partial(tmp_path, monkeypatch):
    _, old = _table(0)
    _, new = _table(1)
    path = store.write_kernels(old, tmp_path / "m.parquet")
    before = path.read_bytes()
    started = set()
    real = pq.ParquetWriter.write_table

    def fail_on_second_layer(self, table, *args, **kwargs):
        if id(self) in started:
            raise OSError("disk full (injected)")
        started.add(id(self))
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_on_second_layer)
    with pytest.raises(OSError, match="injected"):
        store.write_kernels(new, path)
    with pytest.raises(OSError, match="injected"):
        store.write_kernels(new, tmp_path / "fresh.parquet")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet"]


_SLOW_WRITER = """
import sys, time
import pyarrow.parquet as pq
from kernels_lib.database import store
from kernels_lib.records import ConvLayer, kernel_table
import numpy as np
real = pq.ParquetWriter.write_table
def slow(self, table, *a, **k):
    real(self, table, *a, **k)
    print("wrote a layer", flush=True)
    time.sleep(60)
pq.ParquetWriter.write_table = slow
layers = [ConvLayer(f"dw{i}", np.ones((4, 1, 3, 3), np.float32) * i, in_channels=4, groups=4) for i in range(3)]
store.write_kernels(kernel_table(layers, "m", "t", "module"), sys.argv[1])
"""


def test_killed_writer_leaves_no_partial_file(tmp_path):
    _, done = _table()
    store.write_kernels(done, tmp_path / "done.parquet")
    target = tmp_path / "killed.parquet"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "wrote a layer"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not target.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")
    assert len(store.read_kernels(tmp_path)) == len(done)       # the hidden temp file is not a kernel file
    assert fileio.remove_stale_temp_files(tmp_path) == leftovers  # its writer is dead, so it goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.parquet"]


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(errors.KernelDatabaseError, match="does not exist.*extract"):
        store.read_kernels(tmp_path / "nothing")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(CorruptFileError, match="bad.parquet"):
        store.read_kernels(tmp_path)
    with pytest.raises(ValueError, match="unknown columns"):
        store.read_kernels(bad, columns=["kernel", "weights"])


# -- extraction of a model set ---------------------------------------------------------------

def _write_set(path: Path, entries: list[str]) -> Path:
    path.write_text("description: test set\nmodels:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


_TFLITE = "{kind: tflite, package: mediapipe, member: mediapipe/modules/holistic_landmark/hand_recrop.tflite}"
_TWIN = "{kind: tflite, package: mediapipe, member: mediapipe/modules/holistic_landmark/hand_recrop.tflite, seed: 3}"
_BAD = "{kind: onnx, package: rapidocr, member: rapidocr/models/no_such_model.onnx}"
_ONNX = "{kind: onnx, package: rapidocr, member: rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx}"


def test_extraction_stops_cleanly_and_resumes(tmp_path):
    out = tmp_path / "db"
    broken = zoo.load_model_set(_write_set(tmp_path / "broken.yaml", [_TFLITE, _BAD, _TWIN]))
    with pytest.raises(KernelsLibError, match="no_such_model"):
        extract.extract(broken, out, progress=False, stop_on_error=True)
    assert sorted(p.name for p in out.iterdir()) == ["hand_recrop__mediapipe_0.10.21.parquet"]
    first = (out / "hand_recrop__mediapipe_0.10.21.parquet").read_bytes()

    # without stop_on_error the failure is reported and the rest goes on
    report = extract.extract(broken, out, progress=False)
    assert report.skipped == ["hand_recrop.mediapipe==0.10.21"]
    assert report.extracted == ["hand_recrop.random-init-seed3"]
    assert [entry_id for entry_id, _ in report.failed] == ["no_such_model.rapidocr==3.10.0"]

    fixed = zoo.load_model_set(_write_set(tmp_path / "fixed.yaml", [_TFLITE, _ONNX, _TWIN]))
    report = extract.extract(fixed, out, progress=False)
    assert report.extracted == ["ch_ppocr_mobile_v2.0_cls_mobile.rapidocr==3.10.0"]
    assert len(report.skipped) == 2 and not report.failed
    assert (out / "hand_recrop__mediapipe_0.10.21.parquet").read_bytes() == first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_kernel_size_selection_and_widening(tmp_path):
    model_set = zoo.load_model_set(_write_set(tmp_path / "s.yaml", [_ONNX]))
    report = extract.extract(model_set, tmp_path, kernel_sizes=[5], progress=False)
    assert report.extracted and set(store.read_kernels(tmp_path, columns=["kh"]).kh) == {5}
    assert extract.extract(model_set, tmp_path, kernel_sizes=[5], progress=False).skipped
    # asking for more sizes than the file holds extracts again, keeping the union
    report = extract.extract(model_set, tmp_path, kernel_sizes=[3], progress=False)
    assert report.extracted
    sizes = store.read_kernels(tmp_path, columns=["kh"]).kh.value_counts().to_dict()
    assert sizes == {5: 800, 3: 64}
    assert store.read_provenance(tmp_path).loc[0, "kernel_sizes"] == [3, 5]


def test_a_file_of_an_older_schema_is_refused_and_extracted_again(tmp_path):
    model_set = zoo.load_model_set(_write_set(tmp_path / "s.yaml", [_ONNX]))
    extract.extract(model_set, tmp_path / "db", progress=False)
    [path] = (tmp_path / "db").glob("*.parquet")
    current = path.read_bytes()
    old = pq.read_table(path).drop_columns(["layer_order"])        # as kernels_lib wrote it before layer_order
    pq.write_table(old.replace_schema_metadata(pq.read_schema(path).metadata), path)
    with pytest.raises(CorruptFileError, match=r"another version of kernels_lib.*layer_order.*extract it again"):
        store.read_kernels(tmp_path / "db")
    report = extract.extract(model_set, tmp_path / "db", progress=False)
    assert report.extracted and path.read_bytes() == current


def test_a_file_that_keeps_no_layer_order_says_so(tmp_path):
    """A safetensors state dict read without its model: layers sorted by name, depth unknown, the
    per-layer figures' axis named by layer name."""
    from safetensors.numpy import save_file

    from kernels_lib.analysis import tables

    rng = np.random.default_rng(0)
    save_file({f"block_{i}.dw.weight": rng.normal(size=(4, 1, 3, 3)).astype(np.float32) for i in (10, 2, 1)},
              str(tmp_path / "net.safetensors"))
    model_set = zoo.load_model_set(_write_set(tmp_path / "s.yaml", [
        f"{{kind: state_dict, model: net, path: {tmp_path / 'net.safetensors'}}}"]))
    report = extract.extract(model_set, tmp_path / "db", progress=False)
    assert not report.failed and any("unknown" in note for note in report.notes["net.net.safetensors"])
    table = store.read_kernels(tmp_path / "db")
    assert (table["layer_order"] == "name").all() and table["depth"].isna().all()
    assert table.drop_duplicates("layer")["module"].tolist() == ["block_1.dw", "block_2.dw", "block_10.dw"]
    assert "name" in store.read_provenance(tmp_path / "db").loc[0, "layer_order"]
    rows = table.assign(merged="on", clustering="autoencoder")
    assert tables.layer_proportions(rows, "net").index.tolist() == ["block_1.dw", "block_2.dw", "block_10.dw"]
    assert "true depth is unknown" in tables.layer_axis_label(rows)


@pytest.fixture(scope="module")
def smoke_db(tmp_path_factory):
    """The smoke set extracted in one uninterrupted in-process run."""
    out = tmp_path_factory.mktemp("smoke_full")
    report = extract.extract(zoo.load_model_set("smoke"), out, progress=False)
    assert not report.failed, report.failed
    return out


def test_smoke_set_counts_match_architectures(smoke_db):
    counts = store.counts(smoke_db)
    assert counts.xs("mobilenetv2_100", level="model")["3×3"].tolist() == [7136]   # SPEC §5
    assert counts.loc[("convnextv2_atto", "random-init-seed0"), "7×7"] == 2 * 40 + 2 * 80 + 6 * 160 + 2 * 320
    trained = counts.loc[("face_detection_short_range", "mediapipe==0.10.21")]
    twin = counts.loc[("face_detection_short_range", "random-init-seed0")]
    assert trained.tolist() == twin.tolist()                               # a twin keeps every shape
    prov = store.read_provenance(smoke_db).set_index("model")
    sha = prov.loc["ch_ppocr_mobile_v2.0_cls_mobile", "files"][0]["sha256"]
    assert sha == "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
    assert prov.loc["convnextv2_atto", "files"] == []


def test_interrupted_cli_run_resumes_to_identical_bytes(tmp_path, smoke_db):
    """Kill `extract --models smoke` once its first file is finished; the rerun does only the rest."""
    out = tmp_path / "db"
    proc = subprocess.Popen([sys.executable, "-m", "kernels_lib", "extract", "--models", "smoke", "--out", str(out),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = sorted(p.name for p in out.glob("*.parquet"))
    assert finished, "the run did not finish any model"
    for name in finished:                                                  # finished files are whole
        assert (out / name).read_bytes() == (smoke_db / name).read_bytes()

    smoke = zoo.load_model_set("smoke")
    report = extract.extract(smoke, out, progress=False)
    file_of = {e.id: store.kernel_file_name(e.model, e.weights_tag) for e in smoke.entries}
    all_files = sorted(p.name for p in smoke_db.glob("*.parquet"))
    done_now = sorted(file_of[entry_id] for entry_id in report.extracted)
    assert sorted(finished + done_now) == all_files and not set(finished) & set(done_now)
    assert len(report.skipped) == len(finished)
    assert sorted(p.name for p in out.iterdir()) == all_files             # no temp file left behind
    for name in all_files:
        assert (out / name).read_bytes() == (smoke_db / name).read_bytes()
    pd.testing.assert_frame_equal(store.read_kernels(out), store.read_kernels(smoke_db))
