"""Nearest-code classification: the fast search must be exact, thresholds strict, bad input flagged.

"Exact" means: the same winning code as the brute force, or a different code whose float64
similarity ties with the brute force's winner to rounding (checked here in float64).
"""
import numpy as np
import pytest

from kernels_lib.method import classify as C
from kernels_lib.method import dog_bank, kmeans, search as S
from kernels_lib.analysis import synthetic
from kernels_lib import vocab

D = 48  # 7×7 kernels in hyperplane coordinates
TIE = 1e-12


def unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def assert_same_nearest(x, decoded, idx_fast, dis_fast, idx_ref, dis_ref):
    """Codes equal, or tied in float64; dissimilarities equal to rounding."""
    xu, uu = unit(x), unit(decoded)
    differ = np.flatnonzero(idx_fast != idx_ref)
    if len(differ):
        s_fast = np.einsum("ij,ij->i", xu[differ], uu[idx_fast[differ]])
        s_ref = np.einsum("ij,ij->i", xu[differ], uu[idx_ref[differ]])
        assert np.abs(s_fast - s_ref).max() <= TIE, f"{len(differ)} kernels got a worse code"
    np.testing.assert_allclose(dis_fast, dis_ref, rtol=0, atol=TIE)
    return len(differ)


def assert_labels_equal_up_to_ties(x, decoded, labels, got, ref):
    """Labels equal, except where another code ties with the reference's winner in float64: there
    the label must be that of a tied code (rounding decides between tied codes of different labels)."""
    xu, du = unit(x), unit(decoded)
    differ = np.flatnonzero(got.label != ref.label)
    for i in differ:
        tied = np.flatnonzero(xu[i] @ du.T >= 1 - ref.dissimilarity[i] - TIE)
        assert got.code_index[i] in tied and got.label[i] in set(labels[tied]), f"kernel {i}: {got.label[i]} vs {ref.label[i]}"
    return len(differ)


def labelled_curve(m, seed=0):
    """Smooth curve with labelled intervals: a repeated label ("on" twice), gaps ("other").

    The curve is closed (code 0 and code m−1 coincide to rounding) and its ends carry different
    labels ("on", "other"): kernels nearest to that point have two tied codes of different labels.
    """
    curve = synthetic.synthetic_curve(m, D, seed=seed)
    z = np.linspace(0, 1, m)
    labels = np.full(m, "other", dtype=object)
    for lo, hi, name in [(0.0, 0.12, "on"), (0.15, 0.3, "off"), (0.3, 0.45, "on-dx"),
                         (0.5, 0.62, "on"), (0.7, 0.9, "off-cross")]:
        labels[(z >= lo) & (z < hi)] = name
    return curve, labels.astype(str)


def warped_curve(m, seed=0):
    """A curve that crawls through its first codes and races through the last (speed ∝ t²)."""
    dense = synthetic.synthetic_curve(20 * m, D, seed=seed)
    return dense[np.round(np.linspace(0, 1, m) ** 3 * (20 * m - 1)).astype(int)]


@pytest.fixture(scope="module")
def curve_data():
    curve, labels = labelled_curve(3000)
    rng = np.random.default_rng(1)
    near = [synthetic.kernels_near_curve(curve, 6000, noise, seed=s) for s, noise in enumerate((0.05, 0.3, 0.7, 1.2))]
    x = np.vstack(near + [rng.standard_normal((6000, D))])  # last block: i.i.d. Gaussian kernels
    return curve, labels, x


@pytest.fixture(scope="module")
def reference(curve_data):
    curve, labels, x = curve_data
    return S.nearest_code_reference(x, curve)


def test_fast_equals_reference_near_curve_and_random(curve_data, reference):
    curve, _, x = curve_data
    idx, dis = S.nearest_code_fast(x, curve, chunk=5000, workers=2)
    ties = assert_same_nearest(x, curve, idx, dis, *reference)
    assert ties < len(x) // 100  # ties are the exception, not a loophole
    # the corpus covers what it claims: near kernels mostly below 0.3, random ones far above
    assert np.mean(reference[1][:12000] < 0.3) > 0.99 and np.mean(reference[1][-6000:] < 0.3) < 0.01


def test_classify_fast_labels_match_reference(curve_data, reference):
    curve, labels, x = curve_data
    ref = C.label_kernels(x, curve, labels, 0.3, method="reference")
    index = S.CurveIndex.build(curve)
    exact = C.label_kernels(x, index, labels, 0.3, chunk=7000)
    quick = C.label_kernels(x, index, labels, 0.3, need_exact_code=False, chunk=7000)
    np.testing.assert_array_equal(ref.code_index, reference[0])
    for got in (exact, quick):
        assert assert_labels_equal_up_to_ties(x, curve, labels, got, ref) < len(x) // 1000  # ties: the closed curve's ends
        np.testing.assert_array_equal(got.clustered, ref.clustered)
    assert exact.exact.all()
    assert_same_nearest(x, curve, exact.code_index, exact.dissimilarity, ref.code_index, ref.dissimilarity)
    # the shortcut skipped work and says so; its codes are true codes and its dissimilarities upper bounds
    assert 0.2 < np.mean(~quick.exact) < 1.0
    sure = quick.exact
    np.testing.assert_array_equal(quick.code_index[sure], exact.code_index[sure])
    assert (quick.dissimilarity >= ref.dissimilarity - TIE).all()
    np.testing.assert_allclose(quick.code, np.linspace(0, 1, len(curve))[quick.code_index])
    # both "on" intervals are used; the gaps give "other"; random kernels are unclustered
    assert {"on", "off", "on-dx", "off-cross", "other", vocab.UNCLUSTERED} <= set(ref.label)
    assert (ref.label[-6000:] == vocab.UNCLUSTERED).mean() > 0.99


def test_exact_where_the_decoder_races():
    """Codes unevenly spread along the curve: blocks shorten where it moves fast, results stay exact."""
    curve = warped_curve(3000, seed=11)
    index = S.CurveIndex.build(curve)
    steps = np.diff(index.fine)
    assert np.mean(steps[:-1] < steps.max()) > 0.2  # blocks shortened where the curve races
    rng = np.random.default_rng(12)
    x = np.vstack([synthetic.kernels_near_curve(curve, 6000, rng.uniform(0.05, 1.2, 6000), seed=13), rng.standard_normal((1000, D))])
    assert_same_nearest(x, curve, *S.nearest_code_fast(x, index, chunk=2500), *S.nearest_code_reference(x, curve))


def test_exact_on_a_curve_that_is_not_smooth():
    """The bounds hold for any row order; a shuffled curve only makes the search slower."""
    rng = np.random.default_rng(3)
    decoded = rng.standard_normal((700, D)) * rng.uniform(0.1, 3.0, (700, 1))  # unnormalised rows too
    x = np.vstack([rng.standard_normal((3000, D)), synthetic.kernels_near_curve(unit(decoded), 2000, 0.2, seed=4)])
    idx_ref, dis_ref = S.nearest_code_reference(x, decoded)
    for fine, coarse, rows in ((None, None, 2000), (50, 40, 2000), (3, 2, 400), (1, 1, 400)):
        index = S.CurveIndex.build(decoded, fine, coarse)
        sub = np.r_[:rows, 3000:3000 + rows]  # random kernels and kernels near the rows
        assert_same_nearest(x[sub], decoded, *S.nearest_code_fast(x[sub], index), idx_ref[sub], dis_ref[sub])


def test_exact_ties_duplicates_and_midpoints():
    curve, _ = labelled_curve(1200, seed=5)
    # duplicated rows: the same stretch of codes twice, and single rows repeated
    decoded = np.vstack([curve, curve[200:500], np.repeat(curve[600:650], 3, axis=0)])
    labels = np.r_[np.full(1200, "a"), np.full(300, "b"), np.full(150, "a")]
    rng = np.random.default_rng(6)
    on_rows = decoded[rng.integers(0, len(decoded), 1500)] * rng.uniform(0.5, 2, (1500, 1))
    j = rng.integers(0, 1199, 1500)
    midpoints = curve[j] + curve[j + 1]  # equally similar to two neighbouring codes
    x = np.vstack([on_rows, midpoints, synthetic.kernels_near_curve(curve, 1500, 0.1, seed=7)])
    idx_ref, dis_ref = S.nearest_code_reference(x, decoded)
    idx, dis = S.nearest_code_fast(x, decoded, chunk=1000)
    assert assert_same_nearest(x, decoded, idx, dis, idx_ref, dis_ref) > 0  # real ties occurred
    assert np.abs(dis_ref[:1500]).max() < 1e-12  # kernels equal to a decoded row match it
    # with tied codes of different labels any tied label is right; untied kernels agree exactly
    got = C.label_kernels(x, decoded, labels, 0.3)
    ref = C.label_kernels(x, decoded, labels, 0.3, method="reference")
    assert_labels_equal_up_to_ties(x, decoded, labels, got, ref)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 17])
def test_tiny_code_sets(m):
    rng = np.random.default_rng(m)
    decoded = synthetic.synthetic_curve(m, D, seed=m) if m > 1 else rng.standard_normal((1, D))
    x = rng.standard_normal((400, D))
    idx, dis = S.nearest_code_fast(x, decoded)
    assert_same_nearest(x, decoded, idx, dis, *S.nearest_code_reference(x, decoded))


def test_chord_bound_holds_for_every_block():
    """The lemma under the pruning: for unit x, max over a block ≤ bound from its two anchors."""
    rng = np.random.default_rng(8)
    for decoded in (synthetic.synthetic_curve(2000, D, seed=9), warped_curve(2000, seed=10), rng.standard_normal((300, D))):
        index = S.CurveIndex.build(decoded)
        x = np.vstack([unit(rng.standard_normal((300, D))), synthetic.kernels_near_curve(index.unit, 300, 0.1)])
        sims = x @ index.unit.T
        for anchors, bulge in ((index.fine, index.fine_bulge), (index.fine[index.coarse], index.coarse_bulge)):
            for b in range(len(anchors) - 1):
                lo, hi = anchors[b], anchors[b + 1]
                bound = S._chord_bound(sims[:, lo], sims[:, hi], bulge[b], 0.0)
                assert (sims[:, lo:hi + 1].max(axis=1) <= bound + 1e-12).all()


def test_threshold_is_strict(curve_data, reference):
    """Clustered iff dissimilarity < threshold: at exactly the kernel's dissimilarity it is not."""
    curve, labels, x = curve_data
    idx, dis = reference
    pick = np.argsort(np.abs(dis - 0.25))[:4]  # kernels whose dissimilarity is near 0.25
    index = S.CurveIndex.build(curve)
    for i in pick:
        one = x[i:i + 1]
        for method in ("reference", "fast"):
            d = C.label_kernels(one, index, labels, 1.0, method=method).dissimilarity[0]  # as this method computes it
            for need in (True, False):
                at = C.label_kernels(one, index, labels, d, method=method, need_exact_code=need)
                above = C.label_kernels(one, index, labels, np.nextafter(d, 3), method=method, need_exact_code=need)
                assert not at.clustered[0] and at.label[0] == vocab.UNCLUSTERED
                assert above.clustered[0] and above.label[0] == labels[idx[i]]


def test_degenerate_kernels_are_flagged_never_nan(curve_data):
    curve, labels, x = curve_data
    bad = x[:6].copy()
    bad[0] = 0.0
    bad[1, 3] = np.nan
    bad[2, 0] = np.inf
    bad[3] *= 1e200  # squares overflow but the row has a direction
    for method in ("fast", "reference"):
        res = C.label_kernels(bad, curve, labels, 0.3, method=method)
        np.testing.assert_array_equal(res.degenerate, [True, True, True, False, False, False])
        assert res.degenerate.sum() == 3 and list(res.label[:3]) == [vocab.DEGENERATE] * 3
        assert not res.clustered[:3].any() and (res.code_index[:3] == -1).all()
        # no direction, no code, no dissimilarity: undefined (NaN) exactly there and nowhere else
        assert np.isnan(res.dissimilarity[:3]).all() and np.isnan(res.code[:3]).all()
        assert np.isfinite(res.dissimilarity[3:]).all() and np.isfinite(res.code[3:]).all()
        assert res.code_index[3] == C.label_kernels(x[3:4], curve, labels, 0.3).code_index[0]
    with pytest.raises(ValueError, match="NaN/inf"):
        C.label_kernels(bad, curve, labels, 0.3, on_degenerate="raise")
    with pytest.raises(ValueError, match="no direction"):
        S.nearest_code_fast(bad, curve)
    with pytest.raises(ValueError, match="decoded codes"):
        S.CurveIndex.build(np.vstack([curve[:10], np.zeros((1, D))]))


def test_degenerate_rows_scattered_over_many_chunks(curve_data):
    """Flagged rows between usable ones, over many chunks: every usable kernel still gets its exact code."""
    curve, labels, x = curve_data
    x = x[:3000].copy()
    x[::7] = 0.0
    x[5::11, 2] = np.nan
    got = C.label_kernels(x, curve, labels, 0.3, chunk=256, workers=2)
    ref = C.label_kernels(x, curve, labels, 0.3, method="reference")
    np.testing.assert_array_equal(got.degenerate, ref.degenerate)
    assert 0.1 < ref.degenerate.mean() < 0.3
    ok = ~ref.degenerate
    assert_same_nearest(x[ok], curve, got.code_index[ok], got.dissimilarity[ok], ref.code_index[ok], ref.dissimilarity[ok])


def test_bad_arguments_say_what_to_do(curve_data):
    curve, labels, x = curve_data
    with pytest.raises(ValueError, match="same space"):
        C.label_kernels(x[:5, :40], curve, labels, 0.3)
    with pytest.raises(ValueError, match="one label per decoded code"):
        C.label_kernels(x[:5], curve, labels[:-1], 0.3)
    with pytest.raises(ValueError, match="threshold"):
        C.label_kernels(x[:5], curve, labels, 0.0)
    with pytest.raises(ValueError, match="method"):
        C.label_kernels(x[:5], curve, labels, 0.3, method="faiss")


def test_results_do_not_depend_on_workers_chunks_or_memory_layout(curve_data):
    """Same bytes whatever the threads, chunk sizes or the input's memory layout.

    Each kernel's float64 similarities come from the same per-kernel loop, and every code that
    could win or tie is always scanned, so the path the bounds take cannot change the answer.
    """
    curve, labels, x = curve_data
    x = x[::3]
    one = C.label_kernels(x, curve, labels, 0.3, chunk=1500, workers=1)
    wide = np.zeros((len(x), 2 * D))
    wide[:, ::2] = x
    strided = wide[:, ::2]  # the same values, every other column of a wider array
    for got in (C.label_kernels(x, curve, labels, 0.3, chunk=1500, workers=3),
                C.label_kernels(x, curve, labels, 0.3, chunk=4321, workers=2),
                C.label_kernels(strided, S.CurveIndex.build(curve), labels, 0.3, chunk=999),
                C.label_kernels(np.asfortranarray(x), curve, labels, 0.3)):
        for field in ("code_index", "dissimilarity", "label", "clustered"):
            np.testing.assert_array_equal(getattr(got, field), getattr(one, field))


# ------------------------------------------------------------------------------------------
# 3×3 kernels: k-means on min-max encoded kernels
# ------------------------------------------------------------------------------------------

def test_minmax_encoding_flags_constant_kernels():
    k = np.random.default_rng(0).normal(size=(4, 3, 3))
    k[1] = 0.7          # constant
    k[2] = 0.0          # all zero
    k[3, 1, 1] = np.nan
    enc, bad = kmeans.minmax_encode(k)
    np.testing.assert_array_equal(bad, [False, True, True, True])
    assert np.isfinite(enc).all() and (enc[bad] == 0).all()
    assert enc[0].min() == 0.0 and enc[0].max() == 1.0


def test_kmeans_3x3_is_seeded_names_clusters_and_flags_degenerate():
    bank = dog_bank.synthetic_bank(3, 2400, snr=4.0, class_weights={"on": 0.4, "off": 0.4, "on-dx": 0.2}, seed=1)
    kernels, truth = np.asarray(bank.kernels, dtype=np.float64).copy(), np.asarray(bank.classes)
    kernels[:5] = 2.5  # constant kernels
    a = kmeans.kmeans_3x3(kernels, n_classes=6, seed=3)
    b = kmeans.kmeans_3x3(kernels, n_classes=6, seed=3)
    for field in ("cluster", "distance", "label", "centroids", "names"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.degenerate[:5].all() and not a.degenerate[5:].any()
    assert (a.label[:5] == vocab.DEGENERATE).all() and (a.cluster[:5] == -1).all() and np.isnan(a.distance[:5]).all()
    assert (a.cluster[5:] >= 0).all() and np.isfinite(a.distance[5:]).all()
    assert sorted(a.sizes, reverse=True) == list(a.sizes) and a.sizes.sum() == len(kernels) - 5
    # clusters named after the DoG family recover the classes that drew the kernels
    for cls in ("on", "off"):
        assert np.mean(a.label[5:][truth[5:] == cls] == cls) > 0.9
    # random kernels have no DoG shape: a strict name threshold calls their clusters "other"
    noise = np.random.default_rng(2).normal(size=(500, 3, 3))
    assert set(kmeans.kmeans_3x3(noise, n_classes=5, name_min_cosine=0.999).names) == {"other"}
    with pytest.raises(ValueError, match="3×3"):
        kmeans.kmeans_3x3(np.zeros((20, 5, 5)))
