"""Resuming only when it is right to: extraction redoes files of another reader or other weights, the
figures runner skips what completed unchanged and says why, and commands killed at random moments resume
to the bytes of an uninterrupted run with no half-written file ever visible (benchmarks/kill_resume.py)."""
import importlib.util
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_notebook
from kernels_lib.database import extract, store, zoo
from kernels_lib.publish import manifest, notebooks

ROOT = Path(__file__).resolve().parents[1]
ONNX_ENTRY = "{kind: onnx, package: rapidocr, member: rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx}"


def _tamper(path: Path, **changes) -> None:
    """Rewrite a kernel file with its provenance record changed (None removes a key), as an older
    kernels_lib or other weights would have left it."""
    table = pq.read_table(path)
    record = json.loads(table.schema.metadata[store.METADATA_KEY])
    for key, value in changes.items():
        record.pop(key) if value is None else record.__setitem__(key, value)
    meta = {**table.schema.metadata, store.METADATA_KEY: json.dumps(record, sort_keys=True).encode()}
    store.write_arrow(table.replace_schema_metadata(meta), path)


def test_extract_redoes_a_file_of_another_reader_or_other_weights_and_keeps_a_current_one(tmp_path):
    (tmp_path / "one.yaml").write_text(f"models:\n  - {ONNX_ENTRY}\n")
    model_set = zoo.load_model_set(tmp_path / "one.yaml")
    [entry] = model_set.entries
    out = tmp_path / "db"
    first = extract.extract(model_set, out, kernel_sizes=[3, 5], progress=False)
    [path] = store.kernel_files(out)
    original = path.read_bytes()
    assert first.extracted == [entry.id] and store.file_record(path)["reader"] == extract.reader_fingerprint(entry)
    again = extract.extract(model_set, out, kernel_sizes=[3, 5], progress=False)
    assert again.skipped == [entry.id] and not again.redone and path.read_bytes() == original

    for changes, reason in [({"reader": "0" * 64}, "another version of its reader"),
                            ({"reader": None}, "did not record its reader"),
                            ({"files": [{"name": "x.onnx", "sha256": "0" * 64}]}, "other weights")]:
        _tamper(path, **changes)
        assert path.read_bytes() != original
        report = extract.extract(model_set, out, kernel_sizes=[3, 5], progress=False)
        assert report.extracted == [entry.id] and reason in report.redone[entry.id], (changes, report)
        assert path.read_bytes() == original          # extracted again: today's reader, the same bytes


def test_reader_fingerprint_follows_the_readers_source():
    """Each kind hashes its own reader: the ONNX and TFLite readers differ; a twin adds its initialiser."""
    entries = {e.id: e for e in zoo.load_model_set("smoke").entries}
    prints = {i: extract.reader_fingerprint(e) for i, e in entries.items()}
    assert len(set(prints.values())) == len(prints)
    assert extract._source_digest(("sources.onnx_source",)) != extract._source_digest(("sources.tflite_source",))


@pytest.mark.slow
def test_figures_skips_what_completed_unchanged_and_reruns_downstream_of_a_change(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    write_notebook(src / "01_a.ipynb", "value = 1\noutput_dir = 'out'",
              "import pathlib\n(pathlib.Path(output_dir) / 'a.txt').write_text(str(value))")
    write_notebook(src / "02_b.ipynb", "output_dir = 'out'",
              "import pathlib\nout = pathlib.Path(output_dir)\n(out / 'b.txt').write_text((out / 'a.txt').read_text() * 2)")
    build, out = tmp_path / "build", tmp_path / "out"
    out.mkdir()

    def figures(**kwargs):
        log = []
        ran = notebooks.run_all("smoke", notebook_dir=src, build_dir=build, output_dir=out, progress=False,
                                log=log.append, site=False, **kwargs)
        return [r.notebook for r in ran], "\n".join(log)

    assert figures()[0] == ["01_a.ipynb", "02_b.ipynb"]
    ran, log = figures()
    assert ran == [] and log.count("skipped: completed with the same notebook") == 2
    ran, log = figures(parameters={"value": 2})        # a parameter of 01 changes its output: 02 reruns too
    assert ran == ["01_a.ipynb", "02_b.ipynb"] and (out / "b.txt").read_text() == "22"
    assert "parameters changed (value)" in log and "the outputs of 01_a.ipynb changed" in log
    (out / "b.txt").unlink()                           # an output deleted: only its notebook reruns
    ran, log = figures(parameters={"value": 2})
    assert ran == ["02_b.ipynb"] and "outputs missing or changed since: b.txt" in log
    assert figures(parameters={"value": 2}, restart=True)[0] == ["01_a.ipynb", "02_b.ipynb"]
    record = json.loads((build / manifest.MANIFEST_NAME).read_text())
    assert all(entry["completed"] for entry in record["notebooks"].values())


def _kill_resume():
    spec = importlib.util.spec_from_file_location("kill_resume", ROOT / "benchmarks" / "kill_resume.py")
    module = sys.modules.setdefault("kill_resume", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_commands_killed_at_random_moments_resume_to_the_same_bytes(tmp_path):
    """21 SIGKILLs (seeded moments) of extract, autoencoder training, classify and figures on the smoke set: no
    visible file is ever half-written, and each resumed command ends with an uninterrupted run's bytes."""
    kills = {"extract": 7, "train": 7, "classify": 5, "figures": 2}
    record = _kill_resume().drill_all(tmp_path, kills, seed=0)
    for event in record["events"]:      # where the kills landed (pytest -s shows them)
        print(f"{event['command']} killed at {event['fraction']:.0%} of the uninterrupted run: {event['landed']}")
    assert record["problems"] == []
    assert record["kills_by_command"] == kills and all(e["half_written"] == 0 for e in record["events"])
    # the training kills landed mid-training: some after a checkpoint was written, before the autoencoder was
    assert any("windows checkpointed" in e["landed"] for e in record["events"] if e["command"] == "train")


def test_the_drill_sees_a_half_written_file(tmp_path):
    """The kill test is not vacuous: a truncated Parquet, JSON or PNG under a visible name is reported,
    a hidden temporary is not (it is not visible to a reader)."""
    drill = _kill_resume()
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), whole)
    (tmp_path / "cut.parquet").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (tmp_path / "cut.json").write_text('{"total": 12')
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (tmp_path / ".cut.parquet.123.0123abcd.tmp").write_bytes(b"PAR1")
    bad = drill.half_written([tmp_path])
    assert sorted(Path(b.split(":")[0]).name for b in bad) == ["cut.json", "cut.parquet", "cut.png"]
    assert [p.name for p in drill.temporaries([tmp_path])] == [".cut.parquet.123.0123abcd.tmp"]
