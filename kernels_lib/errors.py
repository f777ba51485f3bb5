"""Errors that tell the user what was wrong and what to do next."""


class KernelsLibError(Exception):
    """Base class of every error kernels_lib raises on purpose."""


class UnknownModelError(KernelsLibError, KeyError):
    """A model name that no registry knows; the message lists close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(KernelsLibError, FileNotFoundError):
    """Pretrained weights that cannot be had here; the message says where we looked and how to get them."""


class CorruptFileError(KernelsLibError, ValueError):
    """A weights file that cannot be read; the message names the file."""


class NoDepthwiseError(KernelsLibError, ValueError):
    """A model without any depthwise convolution."""


class MissingFileError(KernelsLibError, FileNotFoundError):
    """A weights file that does not exist (or a folder where a file was expected)."""


class UnsafeFileError(KernelsLibError, ValueError):
    """A checkpoint whose loading would run code (a pickle calling a global); it is never loaded."""


class UnsupportedFormatError(KernelsLibError, ValueError):
    """A file whose suffix no reader is registered for; the message lists the known suffixes."""
