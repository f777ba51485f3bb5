"""timm models by name, pretrained (timm's own loader) or seeded random-init, offline-aware.

Pretrained weights always load through `timm.create_model(name, pretrained=True)`, so a user
gets exactly timm's weights, from the Hugging Face hub or its local cache. Before that we look
the file up in the cache ourselves, because the hub client, when the hub is unreachable, retries
each candidate file for about 25 s before it gives up. So:

- file in the cache: loaded from there with the hub client held offline (no network, no
  update check; delete the cached file to force a fresh download). A safetensors file whose
  tensors match the architecture one to one is read straight into a model built on the meta
  device (`load_cached_once`), so the weights are in memory once, not twice (random init plus
  the loaded copy); anything else (a key filter, a dtype change) goes through timm's loader;
- not cached and HF_HUB_OFFLINE set (read when called, not only at import): WeightsUnavailableError at once;
- not cached otherwise: one quick reachability check of the hub endpoint, then timm's download,
  or WeightsUnavailableError if the hub cannot be reached.
"""
from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import safetensors.torch
import timm
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError
from timm.models import (
    get_arch_pretrained_cfgs,
    get_deprecated_models,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    split_model_name_tag,
)
from torch import nn

from ..errors import CorruptFileError, UnknownModelError, WeightsUnavailableError, did_you_mean
from ..vocab import twin_tag

_TRUE = {"1", "on", "yes", "true"}


def _canonical(name: str) -> tuple[str, str]:
    """(architecture, tag) of a timm name; renamed (deprecated) names map to their current name."""
    name = name.strip()
    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise UnknownModelError(
            f"{name!r}: only timm registry names (e.g. 'convnextv2_tiny.fcmae_ft_in1k') are handled here; "
            "for other checkpoints build the model yourself and use sources.module.conv_layers, "
            "or read the file with sources.state_dict.state_dict_layers"
        )
    arch, tag = split_model_name_tag(name)
    current = get_deprecated_models().get(arch)
    if current:
        arch, default_tag = split_model_name_tag(current)
        tag = tag or default_tag
    if not is_model(arch):
        raise UnknownModelError(
            f"timm {timm.__version__} has no model {arch!r}; "
            f"{did_you_mean(name, list_models() + list_pretrained(), n=5, cutoff=0.6)}"
            "All names: timm.list_models(); with weights: timm.list_pretrained()"
        )
    if tag and f"{arch}.{tag}" not in get_arch_pretrained_cfgs(arch):
        tags = pretrained_tags(arch)
        raise UnknownModelError(
            f"timm model {arch!r} has no pretrained tag {tag!r}; {did_you_mean(f'{arch}.{tag}', tags, n=5, cutoff=0.6)}"
            f"its tags: {', '.join(tags) or 'none (no pretrained weights)'}"
        )
    return arch, tag


def pretrained_tags(name: str) -> list[str]:
    """Full names ("arch.tag") of the pretrained weights timm has for the architecture of `name`,
    timm's default (what an untagged name loads) first."""
    cfgs = get_arch_pretrained_cfgs(split_model_name_tag(name)[0])
    return [full for full, cfg in cfgs.items() if cfg.hf_hub_id or cfg.url]


def resolve_timm_name(name: str, pretrained: bool = True) -> str:
    """Canonical timm name: renamed names updated and, when pretrained, the default tag filled in."""
    arch, tag = _canonical(name)
    if pretrained and not tag:
        tag = get_pretrained_cfg(arch).tag
    return f"{arch}.{tag}" if tag else arch


def timm_weights_tag(name: str, pretrained: bool = True, seed: int | None = None) -> str:
    """The `weights_tag` a kernel record gets: the pretrained tag, or "random-init-seed<N>"."""
    if not pretrained:
        return twin_tag(0 if seed is None else seed)
    return split_model_name_tag(resolve_timm_name(name))[1]


@dataclass(frozen=True)
class _Weights:
    """Where timm will fetch the weights of one pretrained name from."""

    name: str
    hub_id: str | None = None      # repo id without revision
    revision: str | None = None
    files: tuple[str, ...] = ()    # candidate files in the repo, timm's order
    url: str | None = None         # used only when there is no hub id


def _hub_files(filename: str) -> tuple[str, ...]:
    """Files timm asks the hub for, safetensors alternatives first (timm.models._hub.load_state_dict_from_hf)."""
    if filename.endswith(".safetensors"):
        return (filename,)
    if filename == "pytorch_model.bin":
        return ("model.safetensors", filename)
    if filename == "open_clip_pytorch_model.bin":
        return ("open_clip_model.safetensors", filename)
    if filename.endswith(".bin"):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def _weights_of(full_name: str) -> _Weights:
    cfg = get_pretrained_cfg(full_name)
    if cfg is not None and cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        return _Weights(full_name, repo, revision or None, _hub_files(cfg.hf_hub_filename or "pytorch_model.bin"))
    if cfg is not None and cfg.url:
        return _Weights(full_name, url=cfg.url)
    raise WeightsUnavailableError(
        f"timm {timm.__version__} has no pretrained weights for {full_name!r}; "
        f"{did_you_mean(full_name, list_pretrained(), n=5, cutoff=0.6)}"
        "Use pretrained=False (with a seed) for a random-init model."
    )


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache directory, from the environment as it is now.

    Same rules as huggingface_hub (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
    XDG_CACHE_HOME/huggingface/hub), but read at call time: huggingface_hub reads them once at import.
    """
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    path = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(path)))


def _offline() -> bool:
    env = os.environ
    flag = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").strip().lower()
    return flag in _TRUE or bool(hf_constants.HF_HUB_OFFLINE)


def _cached_file(weights: _Weights, cache_dir: Path) -> Path | None:
    """The weights file already on disk, if any (hub cache or torch hub checkpoints)."""
    if weights.hub_id:
        for fn in weights.files:
            found = huggingface_hub.try_to_load_from_cache(
                weights.hub_id, fn, cache_dir=cache_dir, revision=weights.revision)
            if isinstance(found, str):
                return Path(found)
        return None
    path = _torch_hub_file(weights.url)
    return path if path.is_file() else None


def _torch_hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _unreachable(url: str) -> str | None:
    """None when `url` answers at all; otherwise why not. One request (proxy settings honoured),
    the hub client's own timeout, no retries."""
    try:
        huggingface_hub.get_session().head(url, timeout=hf_constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as exc:  # any transport failure means: cannot download from here
        return f"{url} is unreachable ({type(exc).__name__}: {exc})"
    return None


@contextmanager
def _hub_offline():
    """Hold the hub client offline: it reads HF_HUB_OFFLINE once at import, so set its flag."""
    before = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = before


def _unavailable(weights: _Weights, cache_dir: Path, why: str) -> WeightsUnavailableError:
    if weights.hub_id:
        repo = weights.hub_id + (f" (revision {weights.revision})" if weights.revision else "")
        where = (f"looked in the Hugging Face cache {cache_dir} for {repo}: "
                 f"{', '.join(weights.files)}")
        fetch = (f"run once with internet (timm downloads into that cache), or "
                 f"`HF_HUB_CACHE={cache_dir} hf download {weights.hub_id}`, or copy that cache "
                 "from a machine that has the weights")
    else:
        where = f"looked for {_torch_hub_file(weights.url)} (torch hub cache)"
        fetch = f"run once with internet, or download {weights.url} into {_torch_hub_file(weights.url).parent}"
    return WeightsUnavailableError(
        f"pretrained weights {weights.name!r} are not available: {why}; {where}. To get them: {fetch}; "
        "or read a checkpoint file you have with kernels_lib.sources.state_dict.state_dict_layers(path, "
        f"model=create_timm_model({weights.name!r}, pretrained=False))."
    )


def load_cached_once(full_name: str, path: Path) -> nn.Module | None:
    """The timm model `full_name` with the weights of the cached safetensors file `path`, held in memory once:
    built on the meta device (no random init) and given the file's tensors (`assign=True`). None when the
    file does not match the architecture one to one (same keys, shapes, dtypes, nothing left on meta): then
    timm's own loader, which may filter or adapt keys, is the right path."""
    if path.suffix != ".safetensors":
        return None
    with torch.device("meta"):
        model = timm.create_model(full_name, pretrained=False)
    expected = model.state_dict()
    state = safetensors.torch.load_file(path)
    if state.keys() != expected.keys() or any(
            state[k].shape != v.shape or state[k].dtype != v.dtype for k, v in expected.items()):
        return None
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):   # a non-persistent buffer
        return None
    return model.eval()


def create_timm_model(name: str, pretrained: bool = True, seed: int | None = None) -> nn.Module:
    """A timm model in eval mode; `name` may carry a pretrained tag ("convnextv2_tiny.fcmae_ft_in1k").

    pretrained=False gives a random-init twin (the tag still sets head size etc.), initialised
    under `torch.manual_seed(seed)` (seed None → 0) in a forked RNG: the same seed gives the
    same weights and the global RNG is left as it was. The seed has no meaning for pretrained weights.
    """
    full_name = resolve_timm_name(name, pretrained)
    if not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else seed)
            return timm.create_model(full_name, pretrained=False).eval()
    if seed is not None:
        raise ValueError(f"seed={seed} only applies to pretrained=False (random init); "
                         f"pretrained {full_name!r} weights are fixed")
    weights = _weights_of(full_name)
    cache_dir = hub_cache_dir()
    hub_kwargs = {"cache_dir": cache_dir} if weights.hub_id else {}
    cached = _cached_file(weights, cache_dir)
    if cached is not None:
        try:
            model = load_cached_once(full_name, cached)
            if model is not None:
                return model
            with _hub_offline():
                return timm.create_model(full_name, pretrained=True, **hub_kwargs).eval()
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
            raise CorruptFileError(
                f"cached weights {cached} of {full_name!r} could not be loaded ({exc}); "
                "delete the file and download it again"
            ) from exc
    if _offline():
        raise _unavailable(weights, cache_dir, "not in the local cache and HF_HUB_OFFLINE is set")
    reason = _unreachable(hf_constants.ENDPOINT if weights.hub_id else weights.url)
    if reason:
        raise _unavailable(weights, cache_dir, f"not in the local cache and {reason}")
    try:
        return timm.create_model(full_name, pretrained=True, **hub_kwargs).eval()
    except (LocalEntryNotFoundError, HfHubHTTPError) as exc:
        raise _unavailable(weights, cache_dir, f"download failed ({exc})") from exc
