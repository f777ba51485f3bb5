"""The one way kernels_lib writes files: atomically, with the usual permissions.

A writer gets a hidden temporary path beside the target (``.<name>.<pid>.<random>.tmp``),
writes there, and the file takes its final name only when complete (`os.replace`), so an
exception or a kill never leaves a half-written file under the real name. A killed process may
leave its temporary file behind; `remove_stale_temp_files` clears those whose process is gone.
Directories (an autoencoder) are written the same way (`atomic_directory`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .paths import portable

_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path(path: Path | str) -> Path:
    """A fresh hidden temporary path beside `path`, named so `remove_stale_temp_files` knows its owner."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def atomic_write(path: Path | str, write: Callable[[Path], None], fsync: bool = False) -> Path:
    """Call write(tmp) on a temporary path beside `path`, then move it onto `path`.

    The file gets the usual permissions (0666 minus the umask), whatever the writer used.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


#: Significant digits a float keeps in a JSON record: summation order (BLAS threads, pandas' groupby) moves
#: the 15th-16th digit between runs of the same inputs; 12 keep every number a reader uses and the same bytes.
SIGNIFICANT_DIGITS = 12


def jsonable(value):
    """`value` ready for JSON: NumPy arrays and scalars as Python values, floats to `SIGNIFICANT_DIGITS`, paths
    inside the repository relative to it (`paths.portable`), and no NaN or infinity (an undefined number is
    recorded as None, never faked)."""
    if isinstance(value, dict):
        return {str(k): jsonable(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(x) for x in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (Path, str)):
        return portable(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to record a non-finite number ({value}); record None for an undefined one")
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def write_json(path: Path | str, data, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write `data` (through `jsonable`) as a JSON file, atomically: results, benchmarks and provenance."""
    return atomic_write_text(path, json.dumps(jsonable(data), indent=indent, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_directory(target: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it replaces `target` whole.

    An existing `target` is replaced only with `overwrite` (else FileExistsError before anything
    is written); on an exception the temporary folder is removed and `target` is left as it was.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    tmp.mkdir()
    try:
        yield tmp
        mask = umask()
        os.chmod(tmp, 0o777 & ~mask)
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~mask)
        if target.exists():
            old = temp_path(target)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temp_files(directory: Path | str) -> list[Path]:
    """Delete temporary files and folders left by writers that no longer run (killed mid-write)."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for tmp in directory.glob(".*.tmp"):
        match = _TMP_RE.match(tmp.name)
        if match and not _pid_alive(int(match["pid"])):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
