"""timm models by name: names and tags checked, seeded random init, pretrained weights from the
hub cache through timm's own loader, and offline failures that are immediate and say what to do."""
import os
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import save_file

from kernels_lib.errors import CorruptFileError, UnknownModelError, WeightsUnavailableError
from kernels_lib.sources.module import conv_layers
from conftest import write_hub_cache
from kernels_lib.sources.timm_source import (
    create_timm_model,
    hub_cache_dir,
    pretrained_tags,
    resolve_timm_name,
    timm_weights_tag,
)

# Network use is observed, not mocked: the interpreter's audit events for every socket lookup/connect.
_NET_EVENTS = []
_RECORDING = [False]


def _audit(event, args):
    if _RECORDING[0] and event in ("socket.getaddrinfo", "socket.connect"):
        _NET_EVENTS.append((event, args[1] if event == "socket.connect" else args[:2]))


sys.addaudithook(_audit)


@contextmanager
def _network_log():
    _NET_EVENTS.clear()
    _RECORDING[0] = True
    try:
        yield _NET_EVENTS
    finally:
        _RECORDING[0] = False


@pytest.fixture
def empty_hf(tmp_path, monkeypatch):
    """An empty Hugging Face home and hub cache, offline flag cleared in env and in huggingface_hub."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # Any download attempt goes to a closed local port (refused at once), never to the internet.
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
    return tmp_path / "hub"


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as info:
        create_timm_model("convnextv2_tiyn")
    message = str(info.value)
    assert "convnextv2_tiyn" in message and "convnextv2_tiny" in message


def test_unknown_tag_lists_the_architectures_tags():
    with pytest.raises(UnknownModelError) as info:
        create_timm_model("convnextv2_tiny.fcmae_ft_in1kk", pretrained=False)
    message = str(info.value)
    assert "fcmae_ft_in1kk" in message
    for tag in pretrained_tags("convnextv2_tiny"):
        assert tag in message
    assert "convnextv2_tiny.fcmae_ft_in1k" in pretrained_tags("convnextv2_tiny")


def test_architecture_without_pretrained_weights_refuses_instead_of_random_init(empty_hf):
    with _network_log() as net:
        with pytest.raises(WeightsUnavailableError, match="no pretrained weights.*pretrained=False"):
            create_timm_model("efficientnet_b8")
    assert net == []


def test_names_resolve_to_canonical_tagged_names():
    assert resolve_timm_name("convnextv2_tiny.fcmae_ft_in1k") == "convnextv2_tiny.fcmae_ft_in1k"
    assert resolve_timm_name("convnextv2_tiny") == pretrained_tags("convnextv2_tiny")[0]  # timm's default tag
    assert resolve_timm_name("convnextv2_tiny", pretrained=False) == "convnextv2_tiny"
    assert resolve_timm_name("convnext_tiny_in22ft1k") == "convnext_tiny.fb_in22k_ft_in1k"  # renamed in timm
    assert timm_weights_tag("convnextv2_atto.fcmae_ft_in1k") == "fcmae_ft_in1k"
    assert timm_weights_tag("convnextv2_atto", pretrained=False, seed=3) == "random-init-seed3"


def test_seeded_random_init_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = create_timm_model("tf_efficientnet_lite0", pretrained=False, seed=7)
    b = create_timm_model("tf_efficientnet_lite0", pretrained=False, seed=7)
    c = create_timm_model("tf_efficientnet_lite0", pretrained=False, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same_weights(a, b) and not _same_weights(a, c)
    assert _same_weights(create_timm_model("tf_efficientnet_lite0", pretrained=False),
                         create_timm_model("tf_efficientnet_lite0", pretrained=False, seed=0))
    assert not a.training


def test_tag_shapes_the_random_init_twin():
    # the ImageNet-21k tag carries an 11,221-class head; its random twin must have it too
    assert create_timm_model("mobilenetv3_large_100.miil_in21k", pretrained=False).num_classes == 11221
    assert create_timm_model("mobilenetv3_large_100", pretrained=False).num_classes == 1000


def test_seed_with_pretrained_is_refused():
    with pytest.raises(ValueError, match="pretrained=False"):
        create_timm_model("tf_efficientnet_lite0.in1k", pretrained=True, seed=1)


def test_offline_without_cache_fails_at_once_and_says_how_to_fetch(empty_hf, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after import: must still be honoured
    with _network_log() as net:
        with pytest.raises(WeightsUnavailableError) as info:
            create_timm_model("convnextv2_tiny.fcmae_ft_in1k")
    assert net == [], "offline mode must not touch the network"
    message = str(info.value)
    assert "convnextv2_tiny.fcmae_ft_in1k" in message                  # the tag
    assert str(empty_hf) in message and hub_cache_dir() == empty_hf    # the cache dir consulted
    assert "HF_HUB_OFFLINE" in message
    assert "hf download timm/convnextv2_tiny.fcmae_ft_in1k" in message  # the hub repo and how to fetch
    assert "state_dict_layers" in message                               # the checkpoint-file route
    assert isinstance(info.value, FileNotFoundError)


def test_unreachable_hub_fails_after_one_connection_attempt(empty_hf):
    with _network_log() as net:
        with pytest.raises(WeightsUnavailableError, match="unreachable") as info:
            create_timm_model("mobilenetv2_100")
    assert "mobilenetv2_100.ra_in1k" in str(info.value) and str(empty_hf) in str(info.value)
    connects = [args for event, args in net if event == "socket.connect"]
    assert connects == [("127.0.0.1", 9)], "one probe, no retry loop of the hub client"


@pytest.mark.parametrize("filename", ["model.safetensors", "pytorch_model.bin"])
def test_pretrained_loads_from_a_populated_hub_cache_without_network(empty_hf, filename):
    """timm's pretrained=True path reads the cached file (either format timm asks for)."""
    reference = create_timm_model("tf_efficientnet_lite0.in1k", pretrained=False, seed=11)
    writer = (lambda path: save_file({k: v.contiguous() for k, v in _state(reference).items()}, path)) \
        if filename.endswith(".safetensors") else (lambda path: torch.save(_state(reference), path))
    write_hub_cache(empty_hf, "timm/tf_efficientnet_lite0.in1k", lambda folder: writer(folder / filename))
    with _network_log() as net:
        loaded = create_timm_model("tf_efficientnet_lite0")  # default tag is .in1k
    assert net == [], "a cached file is used without asking the hub"
    assert hf_constants.HF_HUB_OFFLINE is False  # restored after the load
    assert _same_weights(loaded, reference)
    assert loaded.pretrained_cfg["tag"] == "in1k"
    np.testing.assert_array_equal(conv_layers(loaded)[1].weight, conv_layers(reference)[1].weight)
    # another tag of the same architecture is not in this cache
    with pytest.raises(WeightsUnavailableError, match="tf_efficientnet_lite1.in1k.*unreachable"):
        create_timm_model("tf_efficientnet_lite1.in1k")


def test_corrupt_cached_file_names_the_file(empty_hf):
    snapshot = write_hub_cache(empty_hf, "timm/tf_efficientnet_lite0.in1k",
                               lambda folder: (folder / "model.safetensors").write_bytes(os.urandom(4096)))
    with pytest.raises(CorruptFileError) as info:
        create_timm_model("tf_efficientnet_lite0.in1k")
    assert str(snapshot / "model.safetensors") in str(info.value)
