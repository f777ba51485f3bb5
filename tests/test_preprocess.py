"""Preprocessing: centring, unit length, the hyperplane basis, and degenerate kernels."""
import numpy as np
import pytest

from kernels_lib import preprocess


@pytest.mark.parametrize("n", [9, 25, 49])
def test_hyperplane_basis_is_orthonormal_and_orthogonal_to_ones(n):
    b = preprocess.hyperplane_basis(n)
    assert b.shape == (n, n - 1)
    np.testing.assert_allclose(b.T @ b, np.eye(n - 1), atol=1e-12)
    np.testing.assert_allclose(np.ones(n) @ b, 0.0, atol=1e-12)


def test_basis_is_deterministic():
    np.testing.assert_array_equal(preprocess.hyperplane_basis(49), preprocess.hyperplane_basis(49))


def test_round_trip_and_angles_preserved():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(100, 7, 7))
    unit = preprocess.centre_normalise(k)
    np.testing.assert_allclose(unit.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-12)
    coords = preprocess.to_hyperplane(unit)
    assert coords.shape == (100, 48)
    np.testing.assert_allclose(preprocess.from_hyperplane(coords), unit, atol=1e-12)
    # cosine similarities are the same in both coordinate systems
    np.testing.assert_allclose(coords @ coords.T, unit @ unit.T, atol=1e-12)


def test_scale_and_offset_invariance():
    """The paper's preprocessing makes a kernel and a·kernel + b (a > 0) identical."""
    rng = np.random.default_rng(1)
    k = rng.normal(size=(1, 5, 5))
    np.testing.assert_allclose(preprocess.centre_normalise(k), preprocess.centre_normalise(3.5 * k - 2.0), atol=1e-12)


def test_degenerate_kernels_are_flagged_not_nan():
    rng = np.random.default_rng(2)
    kernels = rng.normal(size=(6, 3, 3)).astype(np.float32)
    kernels[1] = 0.0                  # pruned
    kernels[2] = 7.25                 # constant: zero after centring
    kernels[3, 1, 1] = np.nan
    kernels[4, 0, 0] = np.inf
    kernels[5] = 1e5 + np.float32(0)  # large constant (float32 centring noise)
    mask = preprocess.degenerate_mask(kernels)
    assert mask.tolist() == [False, True, True, True, True, True]
    prepared = preprocess.prepare(kernels)
    assert prepared.n_degenerate == 5
    assert prepared.index.tolist() == [0]
    assert np.isfinite(prepared.coords).all()
    with pytest.raises(ValueError, match="degenerate"):
        preprocess.centre_normalise(kernels)


def test_all_degenerate_gives_empty_not_nan():
    prepared = preprocess.prepare(np.zeros((4, 5, 5)))
    assert prepared.coords.shape == (0, 24)
    assert prepared.n_degenerate == 4
