"""What every file reader shares: the path check, the format sniffer and the size caps.

Readers are defensive: a damaged or hostile file must end in a `KernelsLibError` that names
the file, never in a crash, a MemoryError or a huge allocation. So sizes a file declares are
checked against the bytes it really has before anything is allocated (`check_declared`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptFileError, MissingFileError
from ..records import LAYER_ORDERS as ORDERS  # noqa: F401  (the readers name their order from it)
from ..records import ConvLayer

#: Magic bytes → (format, suffixes that hold it), for "this file looks like ..." hints.
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FORMAT_SUFFIXES = {
    "zip": ".pth/.pt/.bin/.ckpt (torch.save) or .keras",
    "pickle": ".pth/.pt/.bin (legacy torch.save)",
    "safetensors": ".safetensors",
    "hdf5": ".h5/.hdf5/.keras weights (Keras)",
    "tflite": ".tflite",
    "json": "model.json (TF.js)",
}


def checked_path(path) -> Path:
    """`path` as a Path, or MissingFileError saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise MissingFileError(f"{path}: {what}")
    return path


def sniff(path: Path) -> str | None:
    """The container format of `path` from its first bytes (see FORMAT_SUFFIXES), None if unknown."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x80"):
        return "pickle"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head[4:8] == b"TFL3":
        return "tflite"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return "safetensors"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return None


def format_hint(path: Path) -> str:
    """' It looks like ...' when the first bytes say which kind of file this really is, else ''."""
    try:
        kind = sniff(path)
    except OSError:
        return ""
    return f" Its first bytes look like a {kind} file ({FORMAT_SUFFIXES[kind]})." if kind else ""


def check_declared(path: Path, what: str, declared: int, available: int) -> None:
    """CorruptFileError when `what` declares more bytes than the file can hold (before allocating them)."""
    if declared < 0 or declared > available:
        raise CorruptFileError(f"{path}: {what} declares {declared:,} bytes but only {available:,} are "
                               "there; the file is truncated or damaged")


def natural_key(name: str):
    """Sort key that puts "block_2" before "block_10" (digits compare as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Reading:
    """What a reader found in a file: conv layers, the source name, how their order is known, notes."""

    layers: tuple[ConvLayer, ...]
    source: str
    order: str
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order {self.order!r} is not one of {sorted(ORDERS)}")
