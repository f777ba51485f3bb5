"""kernels_lib.training.runs on kernels whose answer is known by construction."""
import numpy as np
import pandas as pd
import pytest

from kernels_lib.method import dog_bank
from kernels_lib import records, training
from kernels_lib.training import runs
from kernels_lib.errors import AnalysisError


def test_epoch_of_reads_snapshot_names_and_refuses_others():
    assert runs.epoch_of("kaiming-7x7@epoch25") == 25
    with pytest.raises(AnalysisError, match="<run>@epoch<N>"):
        runs.epoch_of("convnextv2_tiny")


def test_central_energy_share_of_a_centred_pattern_and_of_noise():
    k = 31
    centred = np.zeros((1, k, k))
    centred[0, 14:17, 14:17] = [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]
    noise = dog_bank.random_kernels(k, 4000, seed=0)
    assert runs.central_energy_share(centred, 7)[0] > 0.99
    assert np.median(runs.central_energy_share(noise, 7)) == pytest.approx((7 / k) ** 2, rel=0.15)
    assert np.isnan(runs.central_energy_share(np.ones((1, k, k)), 7)[0])          # constant: no energy to share


def test_central_crop_takes_the_middle_window():
    kernels = np.arange(2 * 9 * 9, dtype=float).reshape(2, 9, 9)
    np.testing.assert_array_equal(runs.central_crop(kernels, 7), kernels[:, 1:8, 1:8])
    with pytest.raises(AnalysisError):
        runs.central_crop(np.zeros((1, 8, 8)), 7)


def test_chosen_layer_rows_name_missing_layers():
    layers = [records.ConvLayer(name=f"b{i}", weight=np.random.default_rng(i).normal(size=(4, 1, 7, 7)).astype(np.float32),
                                in_channels=4, groups=4) for i in range(3)]
    table = records.kernel_table(layers, "m", "w", "module")
    rows = runs.chosen_layer_rows(table, [0, 2], per_row=3)
    assert [label for label, _ in rows] == ["layer 0 (7×7, 4 kernels)", "layer 2 (7×7, 4 kernels)"]
    assert all(k.shape == (3, 7, 7) for _, k in rows)
    with pytest.raises(AnalysisError, match="layers are 0–2"):
        runs.chosen_layer_rows(table, [5])


def test_clustered_pct_is_undefined_without_usable_kernels():
    rows = pd.DataFrame({"degenerate": [True, True], "clustered": pd.array([pd.NA, pd.NA], dtype="boolean")})
    assert np.isnan(runs.clustered_pct(rows))


def test_snapshot_layer_proportions_are_those_of_the_snapshot_alone():
    """Per-layer shares of one epoch of a committed run: the other epochs' rows never mix in."""
    run = training.load_run(training.RUNS_DIR / "kaiming-7x7")
    classified = runs.classify_run(run, epochs=[0, 25])
    final = runs.snapshot_layer_proportions(classified, 25, 7)
    at_start = runs.snapshot_layer_proportions(classified, 0, 7)
    assert list(final.index) == [0, 1, 2, 3] and final.sum(axis=1).round(9).eq(1).all()
    assert final.drop(columns="unclustered").to_numpy().sum() > 0          # trained: some kernels clustered
    assert list(at_start.columns) == ["unclustered"]                        # Kaiming init: none clustered
    with pytest.raises(AnalysisError, match="no classified snapshot at epoch 7"):
        runs.snapshot_layer_proportions(classified, 7, 7)
