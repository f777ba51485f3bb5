"""Kernel preprocessing of the paper (§4.1): centre, unit length, orthonormal hyperplane basis.

Every kernel r is centred (mean subtracted) and scaled to unit length, so all kernels lie on
the hyperplane 1ᵀr = 0 of R^{k·k}. Expressing them in an orthonormal basis of that hyperplane
drops the one redundant coordinate (k² − 1 coordinates remain) without changing any angle.

A kernel whose centred length is zero (constant, pruned) or that holds NaN/inf is *degenerate*:
it has no direction, so it is flagged and excluded, never divided by zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A centred kernel shorter than this fraction of its raw length counts as zero: it is
#: constant up to float32 rounding (centring a constant c leaves ~1e-7·|c| of noise).
DEGENERATE_RTOL = 1e-5


def _as_matrix(kernels: np.ndarray) -> np.ndarray:
    """View kernels of shape [N, kh, kw] or [N, kh*kw] as an [N, kh*kw] float64 matrix."""
    arr = np.asarray(kernels)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ValueError(f"expected kernels of shape [N, kh, kw] or [N, kh*kw], got {arr.shape}")
    return arr.astype(np.float64, copy=False)


def degenerate_mask(kernels: np.ndarray) -> np.ndarray:
    """True for kernels that hold NaN/inf or are (numerically) constant, i.e. zero after centring."""
    x = _as_matrix(kernels)
    finite = np.isfinite(x).all(axis=1)
    safe = np.where(finite[:, None], x, 0.0)
    raw = np.linalg.norm(safe, axis=1)
    centred = np.linalg.norm(safe - safe.mean(axis=1, keepdims=True), axis=1)
    return ~finite | (centred <= DEGENERATE_RTOL * raw) | (raw == 0)


def centre_normalise(kernels: np.ndarray) -> np.ndarray:
    """Centre and scale each kernel to unit length. Refuses degenerate kernels (see `prepare`)."""
    x = _as_matrix(kernels)
    bad = degenerate_mask(x)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {len(x)} kernels are degenerate (constant or NaN/inf); "
            "drop them first, e.g. with kernels_lib.preprocess.prepare(), which excludes and counts them"
        )
    c = x - x.mean(axis=1, keepdims=True)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def hyperplane_basis(n: int) -> np.ndarray:
    """Orthonormal basis of {r ∈ R^n : 1ᵀr = 0}, as an [n, n-1] matrix with orthonormal columns.

    Built deterministically (QR of a fixed matrix) so a saved autoencoder and its basis agree
    across runs and machines.
    """
    if n < 2:
        raise ValueError(f"a kernel needs at least 2 weights to have a direction, got {n}")
    # Columns e_i - e_{i+1} span the hyperplane; QR makes them orthonormal.
    a = np.zeros((n, n - 1))
    idx = np.arange(n - 1)
    a[idx, idx] = 1.0
    a[idx + 1, idx] = -1.0
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))  # fix signs so the basis is unique


def to_hyperplane(unit_kernels: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """Coordinates [N, n-1] of centred kernels in the orthonormal hyperplane basis."""
    x = _as_matrix(unit_kernels)
    b = hyperplane_basis(x.shape[1]) if basis is None else basis
    return x @ b


def from_hyperplane(coords: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """Back from hyperplane coordinates [N, n-1] to flat kernels [N, n] (which sum to zero)."""
    c = np.asarray(coords, dtype=np.float64)
    b = hyperplane_basis(c.shape[1] + 1) if basis is None else basis
    return c @ b.T


@dataclass(frozen=True)
class Prepared:
    """Kernels ready for the autoencoder: hyperplane coordinates of the usable ones.

    `index` maps each row of `coords` back to its row in the input; `n_degenerate` says how
    many input kernels were left out and why nothing silently became NaN.
    """

    coords: np.ndarray       # [M, k*k-1], float64, unit length
    index: np.ndarray        # [M] positions in the input
    n_degenerate: int
    kernel_shape: tuple[int, int]


def prepare(kernels: np.ndarray, kernel_shape: tuple[int, int] | None = None) -> Prepared:
    """Centre, normalise and project all non-degenerate kernels; count the excluded ones."""
    arr = np.asarray(kernels)
    if kernel_shape is None:
        if arr.ndim != 3:
            raise ValueError("pass kernels as [N, kh, kw] or give kernel_shape")
        kernel_shape = (arr.shape[1], arr.shape[2])
    x = _as_matrix(arr)
    bad = degenerate_mask(x)
    keep = np.flatnonzero(~bad)
    coords = to_hyperplane(centre_normalise(x[keep])) if len(keep) else np.zeros((0, x.shape[1] - 1))
    return Prepared(coords=coords, index=keep, n_degenerate=int(bad.sum()), kernel_shape=tuple(kernel_shape))


# -- unit rows without centring (the nearest-code search works on vectors already centred) ----

def as_rows(a, what: str) -> np.ndarray:
    """[N, kh, kw] or [N, d] as a float64 [N, d] matrix."""
    arr = np.asarray(a)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must have shape [N, kh, kw] or [N, d], got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def row_norms(a: np.ndarray) -> np.ndarray:
    """Row lengths; 0 for rows holding NaN/inf (so they count as degenerate)."""
    norms = np.sqrt(np.einsum("ij,ij->i", a, a))
    odd = np.flatnonzero(~np.isfinite(norms))          # NaN/inf inside, or squares that overflow
    if len(odd):
        rows = a[odd]
        finite = np.isfinite(rows).all(axis=1)
        scale = np.where(finite, np.abs(np.where(np.isfinite(rows), rows, 0.0)).max(axis=1), 0.0)
        safe = np.divide(rows, scale[:, None], out=np.zeros_like(rows), where=scale[:, None] > 0)
        norms[odd] = np.where(finite, scale * np.linalg.norm(safe, axis=1), 0.0)
    return norms


def _no_direction_error(bad: np.ndarray, what: str) -> ValueError:
    first = np.flatnonzero(bad)[:5].tolist()
    return ValueError(
        f"{int(bad.sum())} of {len(bad)} rows of {what} are zero or hold NaN/inf (first: {first}); "
        "they have no direction. Drop them (kernels_lib.preprocess.prepare does and counts them) "
        "or let the classifier flag them"
    )


def unit_rows(a, what: str) -> np.ndarray:
    """Rows scaled to unit length; refuses zero/NaN/inf rows instead of producing NaN."""
    m = as_rows(a, what)
    norms = row_norms(m)
    if not (norms > 0).all():
        raise _no_direction_error(~(norms > 0), what)
    return m / norms[:, None]
