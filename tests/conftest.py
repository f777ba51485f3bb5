"""Fixtures shared by the notebook tests."""
import pytest

from kernels_lib import store, zoo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory):
    """The smoke set's kernel database as notebook 01 writes it (db_dir/smoke/*.parquet), built once."""
    db_dir = tmp_path_factory.mktemp("db")
    report = store.extract(zoo.load_model_set("smoke"), db_dir / "smoke", kernel_sizes=[3, 5, 7], progress=False)
    assert not report.failed, report.failed
    return db_dir
