"""The DoG family down to the discrete scale-space limit, written twice: the labelling side
(`method.scale_space`, `dog_bank.synthetic_bank(renderings=…)`, own code on scipy's Bessel
functions) and the scoring side (`analysis.groundtruth_extended`, built on pyscsp). Each is checked
on its own, and then against the other: they must agree on what every class is."""
import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyscsp import discscsp

from kernels_lib.analysis import groundtruth, groundtruth_extended as gx
from kernels_lib.method import dog, dog_bank, scale_space as ss


def _unit(v):
    v = np.asarray(v, dtype=np.float64).ravel()
    v = v - v.mean()
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------------------------
# Labelling side
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", [0.25, 1.0, 3.0])
def test_discrete_gaussian_is_lindebergs_kernel(s):
    """Sums to 1 with variance s (on a wide support), and equals pyscsp's independently written filter."""
    n = np.arange(-30, 31)
    t = ss.discrete_gaussian(n, s)
    assert t.sum() == pytest.approx(1.0, abs=1e-12)
    assert (t * n ** 2).sum() == pytest.approx(s, rel=1e-9)
    theirs = discscsp.make1Ddiscgaussfilter(np.sqrt(s), 1e-12)
    half = len(theirs) // 2
    np.testing.assert_allclose(t[30 - half:31 + half], theirs, atol=1e-12)


@pytest.mark.parametrize("kind,name", [("", "on"), ("d1", "on-d1@{}"), ("d2", "on-d2@{}"), ("saddle", "on-saddle@{}")])
@pytest.mark.parametrize("theta", [0.0, 30.0, 75.0])
def test_discrete_kernels_at_a_coarse_scale_are_the_continuous_ones(kind, name, theta):
    """At s = 2.5 px² the discrete family is the sampled Gaussian family, same sign and orientation."""
    x, y = dog.kernel_grid(9)
    continuous = dog.evaluate(name.format(theta) if kind else name, x, y, sigma=np.sqrt(2.5), surround=0.0)
    discrete = ss.discrete(kind, 9, scale=2.5, theta=theta)[0]
    assert _unit(continuous) @ _unit(discrete) > 0.97


def test_one_sided_differences_sit_half_a_pixel_off_the_centre():
    forward = ss.discrete("d1", 7, scale=0.25, difference="forward")[0]
    backward = ss.discrete("d1", 7, scale=0.25, difference="backward")[0]
    assert forward[3, 2] > 0.5 and forward[3, 3] < -0.5        # T(0) − T(−1) left of centre, T(1) − T(0) at it
    np.testing.assert_allclose(backward[:, 1:], forward[:, :-1], atol=1e-12)
    with pytest.raises(ValueError, match="difference"):
        ss.discrete("d1", 7, scale=1.0, difference="sideways")
    with pytest.raises(ValueError, match="odd"):
        ss.discrete("d1", 6, scale=1.0)


def test_integrated_rendering_is_the_pixel_average():
    """Box-averaging a Gaussian over 4×4 points gives nearly its exact pixel integral (products of erf)."""
    from scipy.special import ndtr
    sigma = 0.7
    got = ss.integrated("on", 7, subpixels=16, sigma=sigma, surround=0.0)
    c = np.arange(7) - 3.0
    p = ndtr((c + 0.5) / sigma) - ndtr((c - 0.5) / sigma)
    np.testing.assert_allclose(got, np.outer(p, p), atol=2e-3 * got.max())


def test_synthetic_bank_renderings():
    plain = dog_bank.synthetic_bank(7, 3000, seed=3)
    assert np.array_equal(plain.kernels, dog_bank.synthetic_bank(7, 3000, seed=3, renderings={"sampled": 1}).kernels)
    bank = dog_bank.synthetic_bank(7, 3000, seed=3, renderings={"sampled": 0.2, "integrated": 0.3, "discrete": 0.5})
    assert list(bank.classes) == list(plain.classes)                 # the same classes, drawn another way
    p = bank.params
    family = ~p["merged"].isin(["on-cross", "off-cross"])
    shares = p.loc[family, "rendering"].value_counts(normalize=True)
    assert shares["discrete"] == pytest.approx(0.5, abs=0.05) and shares["integrated"] == pytest.approx(0.3, abs=0.05)
    assert p.loc[~family, "rendering"].isna().all()
    discrete = p["rendering"] == "discrete"
    assert p.loc[discrete, "scale"].min() >= ss.SCALE_MIN and p.loc[discrete, "scale"].max() <= (1.5 ** 2) + 1e-9
    assert set(p.loc[discrete & (p["merged"] == "1st-derivative"), "difference"]) == set(ss.DIFFERENCES)
    with pytest.raises(ValueError, match="renderings"):
        dog_bank.synthetic_bank(7, 10, renderings={"painted": 1.0})


# --------------------------------------------------------------------------------------------
# Scoring side
# --------------------------------------------------------------------------------------------

def test_extended_ground_truth_is_written_apart_from_the_labelling_side():
    tree = ast.parse(Path(gx.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "numpy", "pandas", "pyscsp", "scipy.ndimage", "groundtruth"}, imported


@pytest.mark.parametrize("recipe", ["blob", "edge", "ridge", "saddle"])
@pytest.mark.parametrize("theta", [0.0, 30.0, 100.0])
def test_pyscsp_renderings_keep_the_projects_orientation(recipe, theta):
    """pyscsp's y points up; at a coarse scale its discrete and affine kernels must equal the
    generator's continuous recipe at the same θ (cosine > 0.96), not its mirror image."""
    p = dict(sigma=1.6, aspect=1.0, axis=0.0, along=1.0, ratio=2.0, weight=0.0, theta=theta, shift_x=0.0, shift_y=0.0)
    continuous = groundtruth.render(recipe, 9, pd.DataFrame([p]))[0]
    discrete = gx.discrete_kernel(recipe, 9, {**p, "scale": 1.6 ** 2, "grid_aspect": 1.0, "dog": False,
                                              "laplacian": 0.0, "difference": "centred"})
    affine = gx.affine_kernel(recipe, 9, {**p, "along": True})
    assert _unit(continuous) @ _unit(discrete) > 0.96 and _unit(continuous) @ _unit(affine) > 0.99


def test_extended_bank_is_reproducible_and_covers_its_renderings():
    a, b = gx.extended_bank(7, 2000, seed=4), gx.extended_bank(7, 2000, seed=4)
    np.testing.assert_array_equal(a.kernels, b.kernels)
    assert not np.array_equal(a.kernels, gx.extended_bank(7, 2000, seed=5).kernels)
    p = a.params
    family = p["recipe"].isin(["blob", "edge", "ridge", "saddle"])
    shares = p.loc[family, "rendering"].value_counts(normalize=True)
    for name, share in gx.RENDERINGS.items():
        assert shares[name] == pytest.approx(share, abs=0.05)
    discrete = p["rendering"] == "discrete"
    assert p.loc[discrete, "scale"].min() < 0.3 and (p.loc[discrete, "scale"] <= gx.SMALLEST_BAND).mean() > 0.25
    assert p.loc[p["rendering"] == "sampled", "shift"].max() > 0.45
    with pytest.raises(ValueError, match="odd"):
        gx.extended_bank(6, 10)


@pytest.mark.parametrize("k", [5, 7])
def test_the_two_sides_agree_on_every_class(k):
    """The labelling templates (`scale_space.labelling_bank`) name clean extended ground-truth kernels
    in every rendering with their merged class. Measured: 100 % at both sizes."""
    bank = gx.extended_bank(k, 2000, snr=np.inf, seed=7)
    match = dog.nearest_template(bank.clean, ss.labelling_bank(k))
    agree = pd.Series(match.merged == bank.merged).groupby(bank.params["rendering"].to_numpy()).mean()
    assert (agree >= 0.99).all(), agree
