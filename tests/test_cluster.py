"""Scale-out with Dask: extraction and classification on a 2-process LocalCluster give what a serial run
gives (same bytes, same rows), resume the same way, and the database reads as one table elsewhere."""
import time

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from kernels_lib import cli, errors
from kernels_lib.database import cluster, extract, store, zoo
from kernels_lib.analysis import results

_TFLITE = "{kind: tflite, package: mediapipe, member: mediapipe/modules/holistic_landmark/hand_recrop.tflite}"
_ONNX = "{kind: onnx, package: rapidocr, member: rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx}"
_BAD = "{kind: onnx, package: rapidocr, member: rapidocr/models/no_such_model.onnx}"


def _write_set(path, entries):
    path.write_text("models:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


@pytest.fixture(scope="module")
def local_cluster():
    """Two single-threaded worker processes as `--workers 2` starts them, shut down after the module's tests."""
    with cluster.local_cluster(2) as running:
        yield running


@pytest.mark.slow
def test_parallel_extraction_is_byte_identical_and_resumes(smoke_db, local_cluster, tmp_path):
    """The smoke set on 2 workers: the serial run's bytes; a rerun after losing a file redoes only that file."""
    serial = smoke_db / "smoke"
    out = tmp_path / "smoke"
    smoke = zoo.load_model_set("smoke")
    report = extract.extract(smoke, out, kernel_sizes=[3, 5, 7], progress=False,
                             scheduler=local_cluster.scheduler_address)
    assert not report.failed and report.extracted == [e.id for e in smoke.entries]
    names = sorted(p.name for p in serial.glob("*.parquet"))
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        assert (out / name).read_bytes() == (serial / name).read_bytes(), name

    lost = store.kernel_file_name(smoke.entries[3].model, smoke.entries[3].weights_tag)
    (out / lost).unlink()
    (out / f".{lost}.999999999.0badf00d.tmp").write_bytes(b"half a file")   # a killed writer's (pid long gone)
    report = extract.extract(smoke, out, kernel_sizes=[3, 5, 7], progress=False,
                             scheduler=local_cluster.scheduler_address)
    assert report.extracted == [smoke.entries[3].id] and len(report.skipped) == len(names) - 1
    assert sorted(p.name for p in out.iterdir()) == names     # the stale temporary file is gone
    for name in names:
        assert (out / name).read_bytes() == (serial / name).read_bytes(), name


def test_parallel_failures_are_reported_and_the_rest_goes_on(tmp_path, local_cluster):
    broken = zoo.load_model_set(_write_set(tmp_path / "broken.yaml", [_BAD, _TFLITE]))
    address = local_cluster.scheduler_address
    report = extract.extract(broken, tmp_path / "db", progress=False, scheduler=address)
    assert report.extracted == ["hand_recrop.mediapipe==0.10.21"]
    [(entry_id, message)] = report.failed
    assert entry_id == "no_such_model.rapidocr==3.10.0" and "no_such_model" in message
    with pytest.raises(errors.KernelsLibError, match="no_such_model"):
        extract.extract(broken, tmp_path / "db2", progress=False, stop_on_error=True, scheduler=address)


@pytest.mark.slow
def test_parallel_classification_gives_the_serial_rows(smoke_db, local_cluster):
    db = smoke_db / "smoke"
    serial = results.classify_kernels(db, progress=False)
    parallel = results.classify_kernels(db, progress=False, scheduler=local_cluster.scheduler_address)
    pd.testing.assert_frame_equal(parallel, serial)
    assert set(serial.kh) == {3, 5, 7}                 # autoencoder and k-means rows both went through
    one_model = results.classify_kernels(db, progress=False, models=["convnextv2_atto"],
                                         scheduler=local_cluster.scheduler_address)
    pd.testing.assert_frame_equal(one_model, serial[serial.model == "convnextv2_atto"].reset_index(drop=True))
    with pytest.raises(errors.AnalysisError, match="give the path"):
        results.classify_kernels(store.read_kernels(db), scheduler=local_cluster.scheduler_address)


def test_database_reads_as_one_table_with_dask_and_pyarrow(smoke_db):
    """One Parquet file per model is a dataset other engines read as one table, kernels included."""
    db = smoke_db / "smoke"
    ours = store.read_kernels(db)
    arrow = ds.dataset(db, format="parquet").to_table().to_pandas()
    lazy = dd.read_parquet(str(db))
    assert lazy.npartitions >= len(store.kernel_files(db))
    frame = lazy.compute().reset_index(drop=True)
    for other in (arrow, frame):
        assert list(other.columns) == list(ours.columns)
        keys = ["model", "weights_tag", "layer", "channel"]
        a = other.sort_values(keys).reset_index(drop=True)
        b = ours.sort_values(keys).reset_index(drop=True)
        assert len(a) == len(b) and (a[keys].astype(str) == b[keys].astype(str)).all().all()
        np.testing.assert_array_equal(np.concatenate(a.kernel.to_list()), np.concatenate(b.kernel.to_list()))
    counts = lazy.groupby("model").size().compute().sort_index()
    assert counts.to_dict() == ours.groupby("model").size().sort_index().to_dict()


def test_cluster_options_are_checked():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(errors.ClusterError, match="positive number"):
            cluster.wants_cluster(workers=bad)
    with pytest.raises(errors.ClusterError, match="not both"):
        cluster.wants_cluster(workers=2, scheduler="tcp://127.0.0.1:8786")
    assert not cluster.wants_cluster() and cluster.wants_cluster(workers=1)


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    with pytest.raises(errors.ClusterError, match="cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'"):
        with cluster.dask_client(scheduler="tcp://127.0.0.1:9", timeout=2):
            pass


def test_extract_help_documents_workers_and_scheduler(capsys):
    with pytest.raises(SystemExit):
        cli.main(["extract", "--help"])
    text = capsys.readouterr().out
    assert "--workers N" in text and "--scheduler ADDRESS" in text and "Dask" in text


@pytest.mark.slow
def test_cli_extract_on_local_workers(smoke_db, tmp_path, capsys):
    """`extract --workers 2` starts its own LocalCluster, writes the serial run's bytes, and stops the cluster."""
    models = _write_set(tmp_path / "one.yaml", [_ONNX])
    out = tmp_path / "db"
    code = cli.main(["extract", "--models", str(models), "--out", str(out), "--kernel-sizes", "3", "5", "7",
                     "--workers", "2", "--no-progress"])
    assert code == 0 and "1 extracted" in capsys.readouterr().out
    [name] = [p.name for p in out.iterdir()]
    assert (out / name).read_bytes() == (smoke_db / "smoke" / name).read_bytes()
    with pytest.raises(SystemExit) as stop:
        cli.main(["extract", "--models", str(models), "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_a_dead_worker_is_a_cluster_error_not_a_crash(local_cluster):
    """A task whose worker process dies (here: it exits; in life: out of memory) comes back as a ClusterError,
    and the cluster goes on serving: its workers are restarted, not given up."""
    import os

    from distributed import Client

    with Client(local_cluster) as client:
        [(index, outcome)] = list(cluster.map_tasks(client, os._exit, [3]))
        assert index == 0 and isinstance(outcome, errors.ClusterError) and "fewer workers" in str(outcome)
        time.sleep(16)        # past Dask's default lost-worker timeout (15 s), which would close the nannies
        assert len(local_cluster.workers) == 2
        assert sorted(result for _, result in cluster.map_tasks(client, abs, [-2, 5])) == [2, 5]   # still serving
