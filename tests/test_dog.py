"""The DoG family (complete under rotation), its templates and the synthetic training bank."""
import itertools

import numpy as np
import pandas as pd
import pytest

from kernels_lib.method import dog, dog_bank
from kernels_lib import vocab
from kernels_lib.errors import UnknownClassError
from kernels_lib.preprocess import centre_normalise


@pytest.fixture(scope="module", params=[5, 7])
def bank(request):
    return dog.template_bank(request.param)


@pytest.fixture(scope="module")
def grid7():
    return dog.kernel_grid(7)


def test_kernel_grid_is_centred_with_x_right_y_down():
    x, y = dog.kernel_grid(5)
    assert x[0, 0] == -2 and x[0, -1] == 2 and y[0, 0] == -2 and y[-1, 0] == 2
    fx, fy = dog.fine_grid(5, n=41)
    assert fx.shape == (41, 41) and fx.min() == -2 and fy.max() == 2


def test_on_centre_dog_has_positive_centre_and_negative_surround(grid7):
    on = dog.evaluate("on", *grid7, sigma=0.8, ratio=2.0)
    assert on[3, 3] == on.max() > 0
    assert on[3, 0] < 0 and on[0, 0] < 0


def test_off_is_minus_on_for_every_pattern(grid7):
    kinds = {c.split("-", 1)[1] if "-" in c else "" for c in vocab.CLASSES + vocab.FAMILIES}
    kinds |= {"d1@30", "d2@105.5", "saddle@12"}
    for kind in kinds:
        on, off = ("on", "off") if not kind else (f"on-{kind}", f"off-{kind}")
        theta = 40.0 if kind in ("d1", "d2", "saddle") else None
        kw = dict(sigma=0.9, ratio=2.5, shift=(0.2, -0.1), anisotropy=1.3, aniso_angle=20.0, theta=theta)
        a = dog.evaluate(on, *grid7, **kw)
        b = dog.evaluate(off, *grid7, **kw)
        np.testing.assert_array_equal(a, -b)
        assert np.abs(a).max() > 0


def test_derivative_symmetries(grid7):
    dx = dog.evaluate("on-dx", *grid7, sigma=0.9)
    assert np.allclose(dx, -dx[:, ::-1]) and np.allclose(dx, dx[::-1, :])  # odd in x, even in y
    assert np.allclose(dx[:, 3], 0) and np.abs(dx).max() > 0
    dy = dog.evaluate("on-dy", *grid7, sigma=0.9)
    assert np.allclose(dy, dx.T)
    dxx = dog.evaluate("on-dxx", *grid7, sigma=0.9)
    assert np.allclose(dxx, dxx[:, ::-1]) and np.allclose(dxx, dxx[::-1, :])
    assert np.allclose(dog.evaluate("on-dyy", *grid7, sigma=0.9), dxx.T)
    dxy = dog.evaluate("on-dxy", *grid7, sigma=0.9)
    assert np.allclose(dxy, -dxy[:, ::-1]) and np.allclose(dxy, -dxy[::-1, :]) and np.allclose(dxy, dxy.T)


def test_axis_names_are_the_oriented_kinds_at_their_angles(grid7):
    """on-dx = on-d1@0, on-dy = on-d1@90, on-dxx = on-d2@0, on-dyy = on-d2@90, on-dxy = on-saddle@45."""
    for axis, (kind, angle) in vocab.AXIS_DERIVATIVES.items():
        for pol in ("on", "off"):
            np.testing.assert_allclose(dog.evaluate(f"{pol}-{axis}", *grid7, sigma=0.8, ratio=1.7),
                                       dog.evaluate(f"{pol}-{kind}", *grid7, sigma=0.8, ratio=1.7, theta=angle),
                                       atol=1e-15)


@pytest.mark.parametrize("kind", ["d1", "d2", "saddle"])
@pytest.mark.parametrize("theta", [0.0, 23.0, 45.0, 117.5, 250.0])
def test_oriented_derivative_is_the_axis_pattern_rotated(kind, theta):
    """Steering (cos θ·∂x + sin θ·∂y, …) equals drawing the θ = 0 pattern on rotated coordinates,
    also for an anisotropic DoG whose long axis turns with it."""
    x, y = dog.fine_grid(7, n=41)
    t = np.deg2rad(theta)
    u, v = np.cos(t) * x + np.sin(t) * y, -np.sin(t) * x + np.cos(t) * y    # coordinates in the turned frame
    kw = dict(sigma=0.9, ratio=2.2, surround=0.8, anisotropy=1.4)
    steered = dog.evaluate(f"on-{kind}", x, y, theta=theta, aniso_angle=10.0 + theta, **kw)
    rotated = dog.evaluate(f"on-{kind}", u, v, theta=0.0, aniso_angle=10.0, **kw)
    np.testing.assert_allclose(steered, rotated, atol=1e-12 * np.abs(rotated).max())


def test_rotations_that_negate_a_pattern(grid7):
    """d1 turned by 180° and a saddle turned by 90° are negated (why their names flip polarity);
    a ridge turned by 180° is itself."""
    kw = dict(sigma=0.8, ratio=2.0)
    for kind, half_turn, sign in (("d1", 180.0, -1.0), ("saddle", 90.0, -1.0), ("d2", 180.0, 1.0)):
        a = dog.evaluate(f"on-{kind}", *grid7, theta=33.0, **kw)
        np.testing.assert_allclose(dog.evaluate(f"on-{kind}", *grid7, theta=33.0 + half_turn, **kw), sign * a,
                                   atol=1e-15)
    np.testing.assert_allclose(dog.evaluate("off-d1@20", *grid7, **kw), dog.evaluate("on-d1", *grid7, theta=200.0, **kw),
                               atol=1e-15)


def test_anisotropy_stretches_along_its_axis(grid7):
    x, y = grid7
    iso = dog.evaluate("on", x, y, sigma=0.9, ratio=2.0)
    np.testing.assert_allclose(dog.evaluate("on", x, y, sigma=0.9, ratio=2.0, anisotropy=1.0, aniso_angle=33.0), iso,
                               atol=1e-15)
    along_x = dog.evaluate("on", x, y, sigma=0.9, ratio=2.0, anisotropy=2.0, aniso_angle=0.0)
    assert along_x[3, 4] > along_x[4, 3]                        # wider along x than along y
    along_y = dog.evaluate("on", x, y, sigma=0.9, ratio=2.0, anisotropy=2.0, aniso_angle=90.0)
    np.testing.assert_allclose(along_y, along_x.T, atol=1e-15)
    with pytest.raises(ValueError, match="anisotropy"):
        dog.evaluate("on", x, y, anisotropy=0.5)


def test_derivatives_match_finite_differences_of_the_dog():
    x, y = dog.fine_grid(7, n=601)
    h = x[0, 1] - x[0, 0]
    f = dog.evaluate("on", x, y, sigma=1.0, ratio=2.0, surround=0.8)
    fx = np.gradient(f, h, axis=1)
    np.testing.assert_allclose(dog.evaluate("on-dx", x, y, sigma=1.0, ratio=2.0, surround=0.8)[5:-5, 5:-5],
                               fx[5:-5, 5:-5], atol=1e-4 * np.abs(fx).max())
    fxy = np.gradient(np.gradient(f, h, axis=1), h, axis=0)
    np.testing.assert_allclose(dog.evaluate("on-dxy", x, y, sigma=1.0, ratio=2.0, surround=0.8)[5:-5, 5:-5],
                               fxy[5:-5, 5:-5], atol=1e-3 * np.abs(fxy).max())
    # an anisotropic DoG, differentiated along 30°: first and second directional differences
    kw = dict(sigma=1.0, ratio=2.0, surround=0.8, anisotropy=1.5, aniso_angle=70.0)
    f = dog.evaluate("on", x, y, **kw)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    fu = c * np.gradient(f, h, axis=1) + s * np.gradient(f, h, axis=0)
    fuu = c * np.gradient(fu, h, axis=1) + s * np.gradient(fu, h, axis=0)
    np.testing.assert_allclose(dog.evaluate("on-d1@30", x, y, **kw)[5:-5, 5:-5], fu[5:-5, 5:-5],
                               atol=1e-4 * np.abs(fu).max())
    np.testing.assert_allclose(dog.evaluate("on-d2@30", x, y, **kw)[10:-10, 10:-10], fuu[10:-10, 10:-10],
                               atol=1e-3 * np.abs(fuu).max())


def test_cross_is_the_appendix_b_formula_and_transpose_symmetric(grid7):
    x, y = grid7
    c = dog.evaluate("on-cross", x, y, cross_sigma=0.6)
    np.testing.assert_allclose(c, np.exp(-x**2 / 0.72) + np.exp(-y**2 / 0.72))
    np.testing.assert_allclose(c, c.T)
    assert c[3, 3] == c.max() and c[3, 0] > c[0, 0]  # brightest at the centre, arms above the corners


@pytest.mark.parametrize("corner", dog.CORNERS)
@pytest.mark.parametrize("side", [2.0, 3.0])
def test_square_block_lies_in_its_corner(corner, side):
    sq = dog.evaluate("on-square", *dog.kernel_grid(5), side=side, corner=corner)
    block = sq > 0.5
    rows, cols = np.nonzero(block)
    assert block.sum() == side * side and block[2, 2]  # solid, contains the centre pixel
    if corner == "upper-left":
        assert rows.max() == 2 and cols.max() == 2 and rows.min() == 3 - side
    else:
        assert rows.min() == 2 and cols.min() == 2 and rows.max() == 1 + side
    assert np.all(sq[~block] < 0.01)


def test_template_bank_shapes_and_labels(bank):
    k = bank.k
    assert bank.kernels.shape == (len(bank.classes), k, k) == (len(bank.merged), k, k)
    flat = bank.kernels.reshape(len(bank.classes), -1)
    np.testing.assert_allclose(flat.sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1)
    expected = set(vocab.MERGED_CLASSES) - {"other"} - (set() if k == 5 else {"on-square", "off-square"})
    assert set(bank.merged) == expected
    assert all(vocab.merge_class(c) == m for c, m in zip(bank.classes, bank.merged))
    assert len(bank.params) == len(bank.classes)
    # every derivative kind, both polarities, every 15° of its canonical range
    angles = {}
    for c in set(bank.classes):
        o = vocab.orientation(c)
        if o is not None:
            angles.setdefault(o[:2], set()).add(o[2])
    for (pol, kind), got in angles.items():
        assert got == set(np.arange(0, vocab.ORIENTED_KINDS[kind][1], 15.0)), (pol, kind)
    assert len(angles) == 6


def test_square_templates_follow_the_squares_switch():
    assert "on-square" not in dog.template_bank(5, squares=False, shifts=(0.0,)).classes
    assert "on-square" in dog.template_bank(7, squares=True, shifts=(0.0,)).classes
    assert len(dog.template_bank(7, shifts=(0.0,)).classes) * 9 == len(dog.template_bank(7).classes)
    coarse = dog.template_bank(7, shifts=(0.0,), angle_step=45.0)
    assert {c for c in coarse.classes if c.startswith("on-saddle")} == {"on-saddle@0", "on-saddle@45"}
    with pytest.raises(ValueError, match="angle_step"):
        dog.template_bank(7, angle_step=0.0)


def _worst_cross_class_cosine(bank):
    t = bank.kernels.reshape(len(bank.classes), -1)
    merged = np.array(bank.merged)
    cos = t @ t.T
    return max(
        (cos[np.ix_(merged == a, merged == b)].max(), a, b)
        for a, b in itertools.combinations(sorted(set(merged)), 2)
    )


def test_classes_are_distinguishable(bank):
    """Templates of different merged classes stay apart. The closest pair on both grids is a
    narrow (σ 0.6 px) diagonal ridge and an On/Off DoG, measured at 0.907 (5×5) and 0.906 (7×7):
    sampled that coarsely along the diagonal a ridge is nearly round (at σ 0.8 px the cosine is
    0.85, in the continuum 0.82 = √(2/3), its Laplacian part). The bound catches a change that
    makes classes collapse onto each other."""
    worst, a, b = _worst_cross_class_cosine(bank)
    assert worst < 0.92, f"{a} vs {b}: cosine {worst:.3f} on {bank.k}x{bank.k}"


def test_merge_class():
    assert vocab.merge_class("on-dx") == vocab.merge_class("off-dy") == "1st-derivative"
    assert vocab.merge_class("on-dxy") == vocab.merge_class("off-dyy") == "2nd-derivative"
    for name in vocab.MERGED_CLASSES:
        assert vocab.merge_class(name) == name
    with pytest.raises(ValueError, match="unknown class"):
        vocab.merge_class("gabor")
    assert {vocab.merge_class(c) for c in vocab.CLASSES} | {"other"} == set(vocab.MERGED_CLASSES)


def test_oriented_names_parse_validate_and_merge():
    assert vocab.merge_class("on-d1@30") == vocab.merge_class("off-d1@179.9") == vocab.merge_class("on-d1") \
        == "1st-derivative"
    assert vocab.merge_class("off-d2@105") == vocab.merge_class("on-saddle@12.5") == "2nd-derivative"
    assert vocab.orientation("off-saddle@12.5") == ("off", "saddle", 12.5)
    assert vocab.orientation("on-dxy") == ("on", "saddle", 45.0) and vocab.orientation("off-dy") == ("off", "d1", 90.0)
    assert vocab.orientation("on") is None and vocab.orientation("on-d1") is None
    for bad, says in [("on-d1@180", "write 'off-d1@0'"), ("on-saddle@95", "write 'off-saddle@5'"),
                      ("on-d1@-5", "write 'off-d1@175'"), ("on-d2@abc", "not a number"), ("on-d1@", "not a number"),
                      ("on-d1@1_0", "not a number"), ("on-d1@nan", "not a number"), ("on-d4@10", "unknown class")]:
        with pytest.raises(UnknownClassError, match=says):
            vocab.merge_class(bad)
    # canonical names from any angle: a half turn of d1 and a quarter turn of a saddle negate them
    assert vocab.oriented_class("on", "d1", 200) == "off-d1@20"
    assert vocab.oriented_class("on", "d1", -10) == "off-d1@170"
    assert vocab.oriented_class("off", "d2", 190) == "off-d2@10"
    assert vocab.oriented_class("on", "saddle", 100) == "off-saddle@10"
    assert vocab.oriented_class("on", "d1", 179.96) == "off-d1@0"          # rounds to 180°: the next half turn
    assert vocab.oriented_class("on", "d1", 37.25) == "on-d1@37.2"
    with pytest.raises(UnknownClassError):
        vocab.oriented_class("on", "d3", 10)


def test_oriented_names_display_and_order():
    assert vocab.display_name("on-d1@30") == "On-centre ∂ at 30°"
    assert vocab.display_name("off-d2@105") == "Off-centre ∂² at 105°"
    assert vocab.display_name("on-saddle") == "On-centre saddle (any angle)"
    names = ["other", "on-saddle@3", "off-d1@5", "on-d1@30", "on", "on-d1@10", "on-dx", "2nd-derivative", "on-d2@4"]
    assert vocab.order_classes(names) == ["on", "on-dx", "on-d1@10", "on-d1@30", "off-d1@5", "2nd-derivative",
                                          "on-d2@4", "on-saddle@3", "other"]
    assert vocab.fine_members("2nd-derivative") == ["on-d2", "off-d2", "on-saddle", "off-saddle"]
    assert vocab.fine_members("on-d1@30") == ["on-d1@30"] and vocab.fine_members("on") == ["on"]


def _angle_error(a: str, b: str) -> float:
    """Degrees between the orientations of two derivative names of one kind (inf across kinds or,
    for ridges, polarities), counting the polarity flips of d1 and saddles as half turns."""
    (pa, ka, ta), (pb, kb, tb) = vocab.orientation(a), vocab.orientation(b)
    period = vocab.ORIENTED_KINDS[ka][1]
    if ka != kb or (ka == "d2" and pa != pb):
        return np.inf
    full = period if ka == "d2" else 2 * period
    ta, tb = ta + (period if ka != "d2" and pa == "off" else 0), tb + (period if kb != "d2" and pb == "off" else 0)
    return abs((ta - tb + full / 2) % full - full / 2)


@pytest.mark.parametrize("k", [5, 7])
def test_nearest_template_recovers_clean_synthetic_kernels(k):
    bank = dog.template_bank(k)
    syn = dog_bank.synthetic_bank(k, 4000, snr=np.inf, seed=3, anisotropy_range=(1.0, 1.0))
    match = dog.nearest_template(syn.clean, bank)
    assert not match.degenerate.any()
    assert (match.merged == syn.merged).mean() >= 0.99
    same = [(t, m) for t, m in zip(syn.classes, match.classes) if "@" not in t]
    assert np.mean([t == m for t, m in same]) >= 0.99
    # derivatives at any angle find a template of their kind within a few degrees of their own
    errors = np.array([_angle_error(t, m) for t, m in zip(syn.classes, match.classes) if "@" in t])
    assert len(errors) > 1000 and np.mean(errors <= 15.0) >= 0.99, np.percentile(errors, [50, 99])
    assert np.all(match.cosine > 0.9)  # shifted templates cover sub-pixel offsets
    # anisotropic kernels (long/short axis up to 1.5) still find their class among the isotropic
    # templates; narrow anisotropic saddles match least well (a cosine of 0.71 measured at worst on 5×5)
    stretched = dog_bank.synthetic_bank(k, 2000, snr=np.inf, seed=4)
    anisotropic = dog.nearest_template(stretched.clean, bank)
    assert (anisotropic.merged == stretched.merged).mean() >= 0.99
    assert np.percentile(anisotropic.cosine, 1) > 0.85
    # Noise at SNR 4 lowers the cosine but the merged class mostly survives.
    noisy = dog.nearest_template(dog_bank.synthetic_bank(k, 4000, snr=4.0, seed=3).kernels, bank)
    assert (noisy.merged == syn.merged).mean() >= 0.9


def test_nearest_template_is_invariant_to_scale_and_offset(bank):
    syn = dog_bank.synthetic_bank(bank.k, 200, snr=8.0, seed=5)
    a = dog.nearest_template(syn.kernels, bank)
    b = dog.nearest_template(3.7 * syn.kernels.astype(np.float64) + 0.25, bank)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_allclose(a.cosine, b.cosine, atol=1e-6)


def test_nearest_template_flags_degenerate_kernels_without_nan():
    bank = dog.template_bank(7)
    good = dog_bank.synthetic_bank(7, 3, snr=np.inf, seed=0).kernels
    nan = np.full((7, 7), 0.1, dtype=np.float32)
    nan[2, 4] = np.nan
    inf = good[0].copy()
    inf[0, 0] = np.inf
    kernels = np.stack([np.zeros((7, 7), np.float32), np.full((7, 7), 0.3, np.float32), nan, inf, *good])
    match = dog.nearest_template(kernels, bank)
    np.testing.assert_array_equal(match.degenerate, [True] * 4 + [False] * 3)
    assert list(match.classes[:4]) == ["other"] * 4 and list(match.merged[:4]) == ["other"] * 4
    assert np.all(match.index[:4] == -1) and np.all(match.cosine[:4] == 0)
    assert np.isfinite(match.cosine).all()
    assert list(match.classes[4:]) == list(dog_bank.synthetic_bank(7, 3, snr=np.inf, seed=0).classes)
    classes, cosine = match  # unpacks as (classes, cosine)
    assert classes is match.classes and cosine is match.cosine


def test_nearest_template_min_cosine_and_shape_errors():
    bank = dog.template_bank(7)
    noise = dog_bank.random_kernels(7, 50, seed=1)
    match = dog.nearest_template(noise, bank, min_cosine=0.99)
    assert set(match.classes) == {"other"} and not match.degenerate.any() and (match.index >= 0).all()
    with pytest.raises(ValueError, match="template_bank\\(5\\)"):
        dog.nearest_template(np.ones((2, 5, 5)), bank)


def test_random_kernels_hardly_match_any_template():
    """The control: i.i.d. kernels almost never come within the paper's thresholds of a template."""
    for k, threshold, dist in [(7, 0.7, "normal"), (5, 0.8, "kaiming")]:
        kernels = dog_bank.random_kernels(k, 5000, seed=2, distribution=dist)
        assert kernels.dtype == np.float32 and kernels.shape == (5000, k, k)
        match = dog.nearest_template(kernels, dog.template_bank(k))
        assert (match.cosine >= threshold).mean() <= 0.01
    u = dog_bank.random_kernels(5, 1000, distribution="kaiming")
    assert np.abs(u).max() <= 1 / 5 and np.abs(u).max() > 0.19
    with pytest.raises(ValueError, match="distribution"):
        dog_bank.random_kernels(5, 3, distribution="cauchy")


@pytest.mark.parametrize("k,snr", [(7, 2.0), (5, 0.5), (7, 10.0)])
def test_synthetic_snr_is_what_was_asked(k, snr):
    syn = dog_bank.synthetic_bank(k, 3000, snr=snr, seed=11)
    flat = lambda a: a.reshape(len(a), -1).astype(np.float64)
    clean, noise = flat(syn.clean), flat(syn.kernels) - flat(syn.clean)
    signal_rms = np.sqrt(((clean - clean.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
    np.testing.assert_allclose(signal_rms, syn.params["amplitude"], rtol=1e-5)
    ratio = noise / (signal_rms / snr)[:, None]  # should be i.i.d. N(0, 1)
    assert abs(ratio.mean()) < 0.01 and abs(ratio.std() - 1) < 0.01
    # Pooled estimate: mean over kernels of noise variance / centred signal power = 1/snr².
    measured = 1 / np.sqrt((noise.var(axis=1, ddof=1) / signal_rms**2).mean())
    assert measured == pytest.approx(snr, rel=0.02)


def test_synthetic_bank_is_reproducible_and_seeded():
    a = dog_bank.synthetic_bank(7, 500, snr=3.0, seed=42)
    b = dog_bank.synthetic_bank(7, 500, snr=3.0, seed=42)
    c = dog_bank.synthetic_bank(7, 500, snr=3.0, seed=43)
    np.testing.assert_array_equal(a.kernels, b.kernels)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert a.params.equals(b.params)
    assert not np.array_equal(a.kernels, c.kernels) and not np.array_equal(a.classes, c.classes)
    assert a.kernels.dtype == np.float32 and a.kernels.shape == (500, 7, 7)
    kernels, classes = a  # unpacks as (kernels, classes)
    assert kernels is a.kernels and classes is a.classes


def test_synthetic_clean_kernels_are_the_labelled_templates():
    """Each clean kernel is its label (orientation included) drawn with its recorded parameters."""
    syn = dog_bank.synthetic_bank(7, 300, snr=np.inf, seed=9)
    np.testing.assert_array_equal(syn.kernels, syn.clean)
    x, y = dog.kernel_grid(7)
    names = ("sigma", "ratio", "surround", "anisotropy", "aniso_angle", "cross_sigma")
    for i in range(300):
        p = syn.params.iloc[i]
        kw = {k: p[k] for k in names if np.isfinite(p[k])}
        raw = dog.evaluate(p["class"], x, y, shift=(p["shift_x"], p["shift_y"]), **kw)
        cos = (centre_normalise(raw[None]) @ centre_normalise(syn.clean[i][None]).T).item()
        assert cos == pytest.approx(1, abs=1e-6)
        if "@" in p["class"]:
            assert vocab.orientation(p["class"])[2] == p["theta"]
        else:
            assert np.isnan(p["theta"])


def test_synthetic_orientations_are_uniform():
    """First derivatives point every way with equal probability: the labels' angles (with the
    polarity flip as a half turn) fill the circle evenly, and both polarities are equally common."""
    n = 20000
    syn = dog_bank.synthetic_bank(7, n, snr=np.inf, seed=5, class_weights={"1st-derivative": 1})
    turns = np.array([t + (180.0 if p == "off" else 0.0) for p, _, t in map(vocab.orientation, syn.classes)])
    counts = np.histogram(turns, bins=12, range=(0, 360))[0]
    expected = n / 12
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 31.3, counts                                   # χ² with 11 degrees of freedom, p = 0.001
    assert abs(np.mean([c.startswith("on") for c in syn.classes]) - 0.5) < 4 * np.sqrt(0.25 / n)


def test_class_weights_are_respected():
    n = 20000
    syn = dog_bank.synthetic_bank(7, n, snr=np.inf, seed=1,
                             class_weights={"on": 3, "1st-derivative": 1, "off-cross": 0})
    assert set(syn.merged) == {"on", "1st-derivative"}
    frac_on = (syn.classes == "on").mean()
    assert abs(frac_on - 0.75) < 4 * np.sqrt(0.75 * 0.25 / n)
    np.testing.assert_array_equal(syn.merged, [vocab.merge_class(c) for c in syn.classes])
    # a name with an angle (or an axis name) draws that orientation only, labelled canonically
    fixed = dog_bank.synthetic_bank(7, 200, snr=np.inf, seed=1, class_weights={"on-dy": 1, "off-saddle@20": 1})
    assert set(fixed.classes) == {"on-d1@90", "off-saddle@20"}
    second = dog_bank.synthetic_bank(7, 4000, snr=np.inf, seed=2, class_weights={"2nd-derivative": 1})
    kinds = pd.Series([vocab.orientation(c)[1] for c in second.classes]).value_counts(normalize=True)
    assert abs(kinds["d2"] - 0.5) < 0.04 and abs(kinds["saddle"] - 0.5) < 0.04


def test_default_weights_follow_the_paper_and_squares_only_in_5x5():
    syn7 = dog_bank.synthetic_bank(7, 5000, seed=0)
    counts = {m: (syn7.merged == m).sum() for m in vocab.MERGED_CLASSES}
    assert counts["on-square"] == counts["off-square"] == counts["other"] == 0
    assert counts["on"] > counts["on-cross"] and counts["off"] > counts["off-cross"]
    assert counts["1st-derivative"] > counts["2nd-derivative"] > 0
    syn5 = dog_bank.synthetic_bank(5, 5000, seed=0)
    assert (syn5.merged == "on-square").sum() > 0 and (syn5.merged == "off-square").sum() > 0
    corners = set(syn5.params.loc[syn5.classes == "on-square", "corner"])
    assert corners == set(dog.CORNERS)


def test_other_class_draws_iid_kernels():
    syn = dog_bank.synthetic_bank(7, 400, snr=np.inf, seed=4, class_weights={"other": 1, "on": 1})
    others = syn.clean[syn.classes == "other"]
    assert len(others) > 150
    match = dog.nearest_template(others, dog.template_bank(7))
    assert np.median(match.cosine) < 0.5


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown class"):
        dog_bank.synthetic_bank(7, 10, class_weights={"gabor": 1})
    with pytest.raises(ValueError, match="finite and >= 0"):
        dog_bank.synthetic_bank(7, 10, class_weights={"on": -1})
    with pytest.raises(ValueError, match="not all be zero"):
        dog_bank.synthetic_bank(7, 10, class_weights={"on": 0})
    with pytest.raises(ValueError, match="snr"):
        dog_bank.synthetic_bank(7, 10, snr=0.0)
    with pytest.raises(ValueError, match="ratio"):
        dog.evaluate("on", *dog.kernel_grid(7), ratio=0.5)
    with pytest.raises(ValueError, match="corner"):
        dog.evaluate("on-square", *dog.kernel_grid(5), corner="middle")
    with pytest.raises(ValueError, match="analytic classes"):
        dog.evaluate("other", *dog.kernel_grid(5))
    with pytest.raises(ValueError, match="unknown class"):
        dog.evaluate("on-d3@10", *dog.kernel_grid(5))
    with pytest.raises(ValueError, match="names its orientation"):
        dog.evaluate("on-d1@10", *dog.kernel_grid(5), theta=20.0)
    with pytest.raises(ValueError, match="anisotropy"):
        dog_bank.synthetic_bank(7, 10, anisotropy_range=(0.5, 1.0))
    with pytest.raises(ValueError, match="kernel size"):
        dog.kernel_grid(1)
    with pytest.raises(ValueError, match="constant"):
        dog.template_bank(5, cross_sigmas=(1e6,), shifts=(0.0,))  # a cross that wide is flat on the grid
