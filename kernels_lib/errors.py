"""Every error kernels_lib raises on purpose, in one place. Each message says what was wrong
and what to do next; catching `KernelsLibError` catches them all."""
from __future__ import annotations

import difflib
from pathlib import Path


def did_you_mean(name, known, n: int = 3, cutoff: float = 0.5) -> str:
    """The hint every "unknown name" message carries: "did you mean 'a' or 'b'? " (empty when nothing in
    `known` is close to `name`), so that a typo is answered with the names it was meant to be."""
    close = difflib.get_close_matches(str(name), [str(k) for k in dict.fromkeys(known)], n=n, cutoff=cutoff)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


class KernelsLibError(Exception):
    """Base class of every error kernels_lib raises on purpose."""


class UnknownModelError(KernelsLibError, KeyError):
    """A model name that no registry knows; the message lists close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownClassError(KernelsLibError, ValueError):
    """A class name that the vocabulary (`kernels_lib.vocab`) does not know; the message lists close names."""


class WeightsUnavailableError(KernelsLibError, FileNotFoundError):
    """Pretrained weights that cannot be had here; the message says where we looked and how to get them."""


class CorruptFileError(KernelsLibError, ValueError):
    """A file that cannot be read (weights, kernel database, label file, autoencoder); the message names it."""


class NoDepthwiseError(KernelsLibError, ValueError):
    """A model without any depthwise convolution."""


class ModelSetError(KernelsLibError, ValueError):
    """A model set that does not exist or whose file is malformed; the message names file and entry."""


class KernelDatabaseError(KernelsLibError, FileNotFoundError):
    """A kernel database path that does not exist or holds no kernel files."""


class AnalysisError(KernelsLibError, ValueError):
    """Inputs that cannot be analysed as asked; the message says what to change."""


class NotebookNotFoundError(KernelsLibError, FileNotFoundError):
    """No notebook matches what was asked for."""


class ParametersCellError(KernelsLibError, ValueError):
    """A `parameters` cell line that papermill cannot read: its value would silently never be set."""


class NotebookExecutionError(KernelsLibError, RuntimeError):
    """A cell of a notebook raised: names the notebook, the cell and the error it raised.

    `cell` is the cell's position in the executed notebook (0-based, papermill's injected
    parameters cell included), `exec_count` its `In [n]` number, `source` its failing line.
    """

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str,
                 executed: Path | None = None, exec_count: int | None = None, source: str = ""):
        self.notebook, self.cell, self.ename, self.evalue = notebook, cell, ename, evalue
        self.executed, self.exec_count, self.source = executed, exec_count, source
        where = "kernel start-up" if cell is None else f"cell {cell}" + (f" (In [{exec_count}])" if exec_count else "")
        msg = f"notebook {notebook} failed at {where}: {ename}: {evalue}"
        if source.strip():
            msg += f"\n  failing line: {source.strip()}"
        if executed is not None:
            msg += f"\n  the executed notebook with the full traceback is {executed}"
        super().__init__(msg)


class MissingFileError(KernelsLibError, FileNotFoundError):
    """A weights file that does not exist (or a folder where a file was expected)."""


class UnsafeFileError(KernelsLibError, ValueError):
    """A checkpoint whose loading would run code (a pickle calling a global); it is never loaded."""


class UnsupportedFormatError(KernelsLibError, ValueError):
    """A file whose suffix no reader is registered for; the message lists the known suffixes."""


class ClusterError(KernelsLibError, RuntimeError):
    """A Dask cluster that cannot be started or reached, or a worker that died; the message says what to do."""


class SiteError(KernelsLibError, ValueError):
    """The static HTML site cannot be built (no executed notebook, an unreadable one, a missing asset)."""
