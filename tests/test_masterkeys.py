"""Greedy coverage by prototypes (`kernels_lib.analysis.masterkeys`) on corpora whose answer is known, and
against an exhaustive search on a small one."""
import itertools

import numpy as np
import pytest

from kernels_lib.analysis import masterkeys as mk
from kernels_lib.errors import AnalysisError


def _unit(v):
    v = v - v.mean()
    return v / np.linalg.norm(v)


def corpus(seed=0, noise=0.05):
    """Kernels a·(p_i + noise) + b around three orthogonal-ish prototypes with shares 50 %, 30 %, 20 %,
    a quarter of them with a < 0; and candidates: the three prototypes among random distractors."""
    rng = np.random.default_rng(seed)
    protos = np.stack([_unit(rng.standard_normal(25)) for _ in range(3)])
    which = rng.choice(3, 1000, p=[0.5, 0.3, 0.2])
    scale = rng.uniform(0.5, 2.0, 1000) * np.where(rng.random(1000) < 0.25, -1.0, 1.0)
    kernels = scale[:, None] * (protos[which] + noise * rng.standard_normal((1000, 25))) + rng.normal(0, 1, (1000, 1))
    distractors = rng.standard_normal((40, 25))
    candidates = np.concatenate([distractors[:10], protos[[2]], distractors[10:30], protos[[0]], distractors[30:],
                                 protos[[1]]])
    return kernels.reshape(-1, 5, 5), candidates.reshape(-1, 5, 5), which, {0: 31, 1: 42, 2: 10}


def test_greedy_finds_the_prototypes_in_order_of_their_share():
    kernels, candidates, which, index = corpus()
    cov = mk.greedy_cover(kernels, candidates, threshold=0.2, k_max=10)
    assert cov.picks.tolist() == [index[0], index[1], index[2]]           # nothing else covers anything
    assert cov.gains.tolist() == [int((which == i).sum()) for i in range(3)]
    assert cov.share[-1] == pytest.approx(1.0)
    assert cov.elbow() == 3                                               # the 4th would add 0 % < 1 %
    signed = mk.greedy_cover(kernels, candidates, threshold=0.2, k_max=10, signed=True)
    assert signed.share[-1] == pytest.approx(0.75, abs=0.05)              # a < 0 is no longer covered


def test_first_pick_is_the_best_single_prototype_and_greedy_pairs_are_near_the_best_pair():
    rng = np.random.default_rng(3)
    kernels = rng.standard_normal((300, 3, 3))
    candidates = np.concatenate([kernels[:12] + 0.1 * rng.standard_normal((12, 3, 3)), rng.standard_normal((8, 3, 3))])
    cov = mk.greedy_cover(kernels, candidates, threshold=0.3, k_max=2)
    rows, cols, usable = mk.covering_pairs(kernels, candidates, 0.3)
    sets = [set(rows[cols == j]) for j in range(len(candidates))]
    assert cov.gains[0] == max(len(s) for s in sets)
    best_pair = max(len(a | b) for a, b in itertools.combinations(sets, 2))
    assert best_pair >= cov.gains.sum() >= (1 - 1 / np.e) * best_pair   # greedy's guarantee, and no better than exhaustive


def test_degenerate_kernels_cover_nothing_and_are_counted_out():
    kernels, candidates, _, _ = corpus()
    kernels[:5] = 0.0
    kernels[5] = np.nan
    cov = mk.greedy_cover(kernels, candidates, 0.2)
    assert cov.n_degenerate == 6 and cov.n_kernels == 994 and cov.share[-1] == pytest.approx(1.0)
    with pytest.raises(AnalysisError, match="candidate"):
        mk.greedy_cover(kernels, np.zeros((2, 5, 5)), 0.2)
    with pytest.raises(AnalysisError, match="differ in size"):
        mk.greedy_cover(kernels, np.ones((2, 3, 3)) * np.arange(9).reshape(3, 3), 0.2)


def test_groups_pick_their_own_prototypes_from_one_similarity_pass():
    kernels, candidates, which, index = corpus()
    groups = np.where(which == 2, "b", "a")
    per = mk.greedy_cover_groups(kernels, groups, candidates, 0.2, k_max=5)
    assert per["a"].picks.tolist() == [index[0], index[1]] and per["b"].picks.tolist() == [index[2]]
    alone = mk.greedy_cover(kernels[groups == "a"], candidates, 0.2, k_max=5)
    assert per["a"].gains.tolist() == alone.gains.tolist() and per["a"].n_kernels == alone.n_kernels


def test_elbow_counts_the_picks_worth_at_least_the_minimum_gain():
    assert mk.elbow([0.3, 0.1, 0.02, 0.009, 0.005]) == 3
    assert mk.elbow([0.005]) == 0                                         # not even the first is worth it
    assert mk.elbow([0.5, 0.3], k_max=2) is None                          # beyond k_max: unknown, not 2
    assert mk.elbow([0.5, 0.3], k_max=10) == 2                            # stopped early: nothing left to cover
    random = mk.greedy_cover(np.random.default_rng(0).standard_normal((200, 7, 7)),
                             np.random.default_rng(1).standard_normal((50, 7, 7)), 0.3)
    assert random.share.size == 0 and random.elbow() == 0                 # random kernels: no prototype helps
    assert np.isnan(mk.padded_share(mk.greedy_cover(np.zeros((3, 5, 5)), np.eye(5)[None], 0.2), 4)).all()
