"""Spectrum decoding, label files (validation, code → label) and automatic labelling."""
import numpy as np
import pytest

from kernels_lib.method import dog, dog_bank
from kernels_lib.method.autoencoder import train
from kernels_lib.errors import CorruptFileError
from kernels_lib.method.spectrum import (
    LABEL_FILE, PROPOSAL_FILE, Interval, Spectrum, code_grid, code_labels, decode_spectrum, label_spectrum,
    propose_labels, read_labels, write_labels,
)

GOOD = """\
kernel_shape: [7, 7]
intervals:
  - {start: 0.0, end: 0.25, label: on}
  - {start: 0.25, end: 0.4, label: 1st-derivative, note: edited by hand}
  - {start: 0.6, end: 0.8, label: on}
  - {start: 0.8, end: 1.0, label: off}
"""


def test_code_grid_spans_zero_to_one_evenly():
    g = code_grid(500)
    assert len(g) == 500 and g[0] == 0.0 and g[-1] == 1.0
    np.testing.assert_allclose(np.diff(g), 1 / 499)
    with pytest.raises(ValueError):
        code_grid(1)


def test_read_labels_and_code_labels(tmp_path):
    path = tmp_path / LABEL_FILE
    path.write_text(GOOD)
    ivs = read_labels(path)
    assert [iv.label for iv in ivs] == ["on", "1st-derivative", "on", "off"]   # a class may come back
    assert ivs[1].note == "edited by hand"
    codes = [0.0, 0.2499, 0.25, 0.5, 0.6, 0.7999, 0.8, 1.0]
    assert code_labels(path, codes).tolist() == ["on", "on", "1st-derivative", "other", "on", "on", "off", "off"]
    # A bare list is accepted too, and an explicit "other" interval equals a gap.
    path.write_text("- {start: 0.0, end: 0.5, label: on}\n- {start: 0.5, end: 1.0, label: other}\n")
    assert code_labels(path, [0.1, 0.7]).tolist() == ["on", "other"]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        code_labels(path, [1.2])


@pytest.mark.parametrize("body, message", [
    ("- {start: 0.0, end: 0.5, label: on}\n- {start: 0.4, end: 0.6, label: off}\n", "must not overlap"),
    ("- {start: 0.5, end: 0.6, label: on}\n- {start: 0.1, end: 0.2, label: off}\n", "sorted by start"),
    ("- {start: -0.1, end: 0.2, label: on}\n", "0 ≤ start < end ≤ 1"),
    ("- {start: 0.3, end: 1.5, label: on}\n", "0 ≤ start < end ≤ 1"),
    ("- {start: 0.3, end: 0.3, label: on}\n", "0 ≤ start < end ≤ 1"),
    ("- {start: 0.1, end: 0.2}\n", r"missing key\(s\) \['label'\]"),
    ("- {start: 0.1, end: 0.2, lable: on}\n", r"unknown key\(s\) \['lable'\]"),
    ("- {start: 0.1, end: 0.2, label: ''}\n", "non-empty string"),
    ("- {start: a, end: 0.2, label: on}\n", "must be numbers"),
    ("intervals: {start: 0, end: 1}\n", "expected a list"),
    ("intervals: [\n", "not valid YAML"),
])
def test_bad_label_files_name_the_file_and_the_interval(tmp_path, body, message):
    path = tmp_path / "my_labels.yaml"
    path.write_text(body)
    with pytest.raises(CorruptFileError, match=message) as info:
        read_labels(path)
    assert "my_labels.yaml" in str(info.value)
    if "interval #" in str(info.value):
        assert "start" in str(info.value)      # the offending interval is quoted


def test_write_labels_round_trips_and_never_clobbers(tmp_path):
    path = tmp_path / LABEL_FILE
    ivs = [Interval(0.0, 0.123456, "on", "auto"), Interval(0.5, 1.0, "off-cross")]
    write_labels(path, ivs, header={"kernel_shape": [5, 5]})
    assert read_labels(path) == ivs
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_labels(path, ivs[:1])
    write_labels(path, ivs[:1], overwrite=True)
    assert read_labels(path) == ivs[:1]
    with pytest.raises(CorruptFileError, match="overlap"):
        write_labels(tmp_path / "x.yaml", [Interval(0.0, 0.6, "on"), Interval(0.5, 1.0, "off")])
    assert not (tmp_path / "x.yaml").exists()


def _bank_kernel(bank, fine):
    return bank.kernels[bank.classes.index(fine)]


def test_propose_labels_names_runs_and_allows_a_class_twice():
    """A hand-made spectrum: on, noise, off, on again → four intervals with the right names."""
    bank = dog.template_bank(7)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(25, 7, 7))
    kernels = np.concatenate([np.repeat(_bank_kernel(bank, "on")[None], 30, 0), noise,
                              np.repeat(_bank_kernel(bank, "off-d1@0")[None], 25, 0),
                              np.repeat(_bank_kernel(bank, "on")[None], 20, 0)])
    spectrum = Spectrum(code_grid(100), kernels)
    ivs = propose_labels(spectrum, min_similarity=0.8)
    assert [iv.label for iv in ivs] == ["on", "other", "1st-derivative", "on"]
    edges = [(iv.start, iv.end) for iv in ivs]
    assert edges[0][0] == 0.0 and edges[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))             # no gaps, no overlap
    assert code_labels(ivs, spectrum.codes).tolist() == ["on"] * 30 + ["other"] * 25 + ["1st-derivative"] * 25 + ["on"] * 20
    assert "off-d1@0 ×25" in ivs[2].note and "cosine 1.00–1.00" in ivs[2].note
    # A strict enough threshold turns everything but exact matches into "other".
    wobbly = Spectrum(spectrum.codes, kernels + 0.05 * rng.normal(size=kernels.shape))
    assert {iv.label for iv in propose_labels(wobbly, min_similarity=0.999)} == {"other"}


def test_label_spectrum_never_overwrites_a_hand_edited_file(tmp_path):
    bank = dog_bank.synthetic_bank(5, 600, snr=8.0, seed=0)
    ae = train(bank.kernels, hidden=(64, 32, 16, 8), lr=1e-3, batch_size=64, max_epochs=3,
               device="cpu", num_threads=1, progress=False)
    directory = ae.save(tmp_path / "ae")
    spectrum = decode_spectrum(ae, 500)
    assert spectrum.kernels.shape == (500, 5, 5) and np.allclose(spectrum.codes, code_grid(500))

    first = label_spectrum(directory, n=1000)
    assert first == directory / LABEL_FILE
    proposed = read_labels(first)
    assert proposed[0].start == 0.0 and proposed[-1].end == 1.0
    hand = "intervals:\n  - {start: 0.0, end: 1.0, label: on, note: a human decided}\n"
    first.write_text(hand)
    second = label_spectrum(directory, n=1000)
    assert second == directory / PROPOSAL_FILE and first.read_text() == hand
    assert read_labels(second) == proposed                       # same autoencoder, same proposal
    assert label_spectrum(directory, n=1000, overwrite=True) == first and read_labels(first) == proposed


def test_label_files_are_readable_text_and_shared(tmp_path):
    """Notes keep their characters (no \\x escapes), labels like 'on' are quoted, mode follows the umask."""
    import os
    import stat

    path = write_labels(tmp_path / LABEL_FILE, [Interval(0.0, 1.0, "on", "dx ×3; cosine 0.80–1.00")])
    text = path.read_text(encoding="utf-8")
    assert "×3; cosine 0.80–1.00" in text and "label: 'on'" in text
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
