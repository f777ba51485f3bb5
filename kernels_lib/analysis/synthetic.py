"""Synthetic data shaped like a decoder's output, for tests, benchmarks and demonstrations of the
nearest-code search (`kernels_lib.method.search`). Not a ground truth of the DoG family: see
`kernels_lib.method.dog_bank.synthetic_bank` for that."""
from __future__ import annotations

import math

import numpy as np


def synthetic_curve(m: int, d: int, seed: int = 0, harmonics: int = 8) -> np.ndarray:
    """A smooth curve of m unit vectors in R^d: a random Fourier path, normalised.

    Harmonic h has amplitude 1/h, so the curve bends like a decoder's spectrum rather than
    jumping; rows are in curve order, as decoded codes are.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, m)[:, None]
    h = np.arange(1, harmonics + 1)[None, :]
    a, b = rng.standard_normal((2, harmonics, d)) / h.T
    path = np.cos(2 * np.pi * t * h) @ a + np.sin(2 * np.pi * t * h) @ b + 0.5 * rng.standard_normal(d)
    return path / np.linalg.norm(path, axis=1, keepdims=True)


def kernels_near_curve(curve: np.ndarray, n: int, noise, seed: int = 0) -> np.ndarray:
    """n unit vectors: random points of the curve plus isotropic Gaussian noise of norm ≈ noise
    (a number, or one per kernel)."""
    rng = np.random.default_rng(seed)
    m, d = curve.shape
    scale = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n,))[:, None]
    x = curve[rng.integers(0, m, n)] + scale * rng.standard_normal((n, d)) / math.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
