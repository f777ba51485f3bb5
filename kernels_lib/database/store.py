"""The kernel database: plain Parquet, one row per depthwise kernel (columns `records.KERNEL_COLUMNS`).

One file per (model, weights tag) under an output directory; a directory reads as one table.
Any Parquet reader works (pandas, DuckDB, Polars): ``kernel`` is ``list<float32>`` (row-major
kh×kw), each depthwise layer is one row group, so selecting kernel sizes or models skips the
bytes of the others. Provenance (kernels_lib version, source, sha256 of the weights file, the
model-set entry) sits in the file's key-value metadata under ``kernels_lib``.

Writes are atomic (`kernels_lib.fileio`), so a finished file is the record that its model is
done: `kernels_lib.database.extract` skips it on a rerun, and a run killed mid-way leaves only finished
files behind. This module only reads, writes, filters and counts; it knows nothing of model sets.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..errors import CorruptFileError, KernelDatabaseError
from ..fileio import atomic_write
from ..records import KERNEL_COLUMNS, KERNEL_SCHEMA

#: Key of the JSON provenance record in each file's Parquet key-value metadata.
METADATA_KEY = b"kernels_lib"


def kernel_file_name(model: str, weights_tag: str) -> str:
    """File name of one (model, weights tag): safe on every file system, stable across runs."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{model}__{weights_tag}")
    return f"{safe}.parquet"


def to_arrow(table: pd.DataFrame, metadata: dict | None = None) -> pa.Table:
    """A kernel DataFrame as an Arrow table with `KERNEL_SCHEMA` (kernels as list<float32>)."""
    missing = [c for c in KERNEL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"kernel table lacks columns {missing}; build it with records.kernel_table")
    kernels = [np.asarray(k, dtype=np.float32).ravel() for k in table["kernel"]]
    lengths = np.fromiter((len(k) for k in kernels), dtype=np.int64, count=len(kernels))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate(kernels) if kernels else np.zeros(0, np.float32)
    arrays = []
    for name in KERNEL_COLUMNS:
        typ = KERNEL_SCHEMA.field(name).type
        if name == "kernel":
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32())))
        else:
            arrays.append(pa.array(table[name].to_numpy(), type=typ))
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata else None
    return pa.Table.from_arrays(arrays, schema=KERNEL_SCHEMA.with_metadata(meta))


def write_kernels(table: pd.DataFrame, path, metadata: dict | None = None, progress: bool = False) -> Path:
    """Write a kernel table atomically (`kernels_lib.fileio`), one row group per depthwise layer.

    A killed writer may leave its hidden ``.<name>.<pid>.*.tmp`` behind, never a partial `path`;
    `fileio.remove_stale_temp_files` clears those.
    """
    return write_arrow(to_arrow(table, metadata), path, progress=progress)


def write_arrow(arrow: pa.Table, path, progress: bool = False) -> Path:
    """`write_kernels` for a table already converted by `to_arrow` (e.g. built on a Dask worker):
    the same bytes for the same table, wherever it was built."""
    layer = arrow.column("layer").to_numpy()
    starts = np.flatnonzero(np.r_[True, layer[1:] != layer[:-1]]) if len(layer) else []
    bounds = list(zip(starts, list(starts[1:]) + [len(layer)]))

    def write(tmp):
        with pq.ParquetWriter(tmp, arrow.schema, compression="zstd") as writer:
            for start, stop in tqdm(bounds, desc=f"write {Path(path).stem}", unit="layer",
                                    leave=False, disable=not progress):
                writer.write_table(arrow.slice(start, stop - start))

    return atomic_write(path, write, fsync=True)


def kernel_files(path_or_dir) -> list[Path]:
    """The kernel files a path stands for: the file itself, a directory's ``*.parquet`` sorted by name,
    or those of each path in a list, in list order."""
    if isinstance(path_or_dir, (list, tuple)):
        return [file for item in path_or_dir for file in kernel_files(item)]
    path = Path(path_or_dir)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
    raise KernelDatabaseError(
        f"kernel database {str(path)!r} does not exist; build one with "
        "`python -m kernels_lib extract --models <set> --out DIR`"
    )


def _size_filter(kernel_sizes) -> pc.Expression:
    expr = None
    for size in kernel_sizes:
        kh, kw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        term = (pc.field("kh") == kh) & (pc.field("kw") == kw)
        expr = term if expr is None else expr | term
    return expr if expr is not None else pc.scalar(False)


def _filter_expression(models=None, weights_tags=None, sources=None, kernel_sizes=None,
                       include_degenerate: bool = True) -> pc.Expression | None:
    terms = []
    for name, values in (("model", models), ("weights_tag", weights_tags), ("source", sources)):
        if values is not None:
            terms.append(pc.field(name).isin([values] if isinstance(values, str) else list(values)))
    if kernel_sizes is not None:
        terms.append(_size_filter(kernel_sizes))
    if not include_degenerate:
        terms.append(~pc.field("degenerate"))
    expr = None
    for term in terms:
        expr = term if expr is None else expr & term
    return expr


def _read_arrow(path_or_dir, columns: list[str], expr) -> pa.Table:
    unknown = [c for c in columns if c not in KERNEL_COLUMNS]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; choose from {KERNEL_COLUMNS}")
    tables = []
    for file in kernel_files(path_or_dir):
        _check_schema(file)
        try:
            tables.append(pq.read_table(file, columns=columns, filters=expr, schema=KERNEL_SCHEMA))
        except (pa.ArrowInvalid, OSError) as err:
            raise _corrupt(file, err) from err
    if not tables:
        return pa.schema([KERNEL_SCHEMA.field(c) for c in columns]).empty_table()
    return pa.concat_tables([t.replace_schema_metadata() for t in tables])


def read_kernels(path_or_dir, *, models=None, weights_tags=None, sources=None, kernel_sizes=None,
                 columns=None, include_degenerate: bool = True) -> pd.DataFrame:
    """Read a kernel file, a directory of them or a list of those as one DataFrame, in file then row order.

    models / weights_tags / sources: keep only these values. kernel_sizes: ints (k×k) or
    (kh, kw) pairs. columns: a subset of `KERNEL_COLUMNS`; leaving out ``kernel`` skips the
    weights, which makes counting cheap. include_degenerate=False drops flagged kernels.
    """
    expr = _filter_expression(models, weights_tags, sources, kernel_sizes, include_degenerate)
    return _read_arrow(path_or_dir, list(KERNEL_COLUMNS if columns is None else columns), expr).to_pandas()


def read_kernel_array(path_or_dir, kernel_size, *, models=None, weights_tags=None, sources=None,
                      columns=None, include_degenerate: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """The kernels of one size as an [N, kh, kw] float32 array taken straight from Arrow's buffers
    (much faster than stacking the ``kernel`` column), and the other `columns` (default: all) as a
    DataFrame in the same row order. Filters as in `read_kernels`."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
    columns = [c for c in (KERNEL_COLUMNS if columns is None else columns) if c != "kernel"]
    expr = _filter_expression(models, weights_tags, sources, [(kh, kw)], include_degenerate)
    table = _read_arrow(path_or_dir, [*columns, "kernel"], expr)
    values = table.column("kernel").combine_chunks().flatten().to_numpy()
    return table.drop_columns(["kernel"]).to_pandas(), values.reshape(len(table), kh, kw)


def _check_schema(file: Path) -> None:
    """A kernel file of another schema (an older kernels_lib) is refused with what to do."""
    try:
        names = pq.read_schema(file).names
    except (pa.ArrowInvalid, OSError) as err:
        raise _corrupt(file, err) from err
    if names != KERNEL_COLUMNS:
        missing = [c for c in KERNEL_COLUMNS if c not in names]
        raise CorruptFileError(f"{file} was written by another version of kernels_lib (columns {names}; missing "
                               f"{missing}); extract it again — `python -m kernels_lib extract` redoes such files")


def _corrupt(file: Path, err: Exception) -> Exception:
    return CorruptFileError(f"{file} is not a readable kernel file ({err}); delete it and extract again")


def read_provenance(path_or_dir) -> pd.DataFrame:
    """One row per kernel file: its name, row count and the provenance recorded when it was written."""
    rows = []
    for file in kernel_files(path_or_dir):
        try:
            meta = pq.read_metadata(file)
        except (pa.ArrowInvalid, OSError) as err:
            raise _corrupt(file, err) from err
        record = json.loads((meta.metadata or {}).get(METADATA_KEY, b"{}"))
        rows.append({"file": file.name, "rows": meta.num_rows, **record})
    return pd.DataFrame(rows)


def count_table(table: pd.DataFrame) -> pd.DataFrame:
    """Kernels per model/weights tag (rows) and kernel size (columns, "kh×kw"), with totals."""
    if len(table) == 0:
        return pd.DataFrame()
    size = table["kh"].astype(str) + "×" + table["kw"].astype(str)
    order = sorted(size.unique(), key=lambda s: tuple(int(v) for v in s.split("×")))
    pivot = pd.crosstab([table["model"], table["weights_tag"]], size.rename("kernel"), margins=True, margins_name="total")
    return pivot[order + ["total"]]


def counts(path_or_dir, **filters) -> pd.DataFrame:
    """`count_table` of a database without reading the kernel weights."""
    return count_table(read_kernels(path_or_dir, columns=["model", "weights_tag", "kh", "kw"], **filters))


def counts_summary(path_or_dir, **filters) -> dict:
    """Counts of a database as plain data (for a notebook's results JSON): totals per kernel size,
    per model and size, and degenerate kernels per size."""
    table = read_kernels(path_or_dir, columns=["model", "weights_tag", "kh", "kw", "degenerate"], **filters)
    size = table["kh"].astype(str) + "x" + table["kw"].astype(str)
    ident = table["model"] + "." + table["weights_tag"]
    return {
        "total": int(len(table)),
        "by_size": {k: int(v) for k, v in size.value_counts().sort_index().items()},
        "degenerate_by_size": {k: int(v) for k, v in size[table["degenerate"]].value_counts().sort_index().items()},
        "by_model": {m: {k: int(v) for k, v in size[ident == m].value_counts().sort_index().items()}
                     for m in sorted(ident.unique())},
    }


def file_record(path: Path) -> dict:
    """The provenance record of one kernel file ({} when it has none or cannot be read)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return {}
    return json.loads(meta.get(METADATA_KEY, b"{}"))


def file_kernel_sizes(path: Path):
    """(True, sizes) if `path` is a finished kernel file of this schema (sizes None = every size was
    kept), else (False, None): a missing file, an unreadable one or one written with an older schema
    is extracted again."""
    try:
        schema = pq.read_schema(path)
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return False, None
    if schema.names != KERNEL_COLUMNS:
        return False, None
    meta = schema.metadata or {}
    record = json.loads(meta.get(METADATA_KEY, b"{}"))
    return True, record.get("kernel_sizes")
