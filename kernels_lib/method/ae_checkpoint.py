"""Autoencoder training that survives a kill: a checkpoint after every window, and a resume that gives
the same bytes as a run that was never interrupted.

One file (`torch.save`, written atomically and synced after every window) holds what the next window
needs: the module's and Adam's state, the current learning rate, the loop's state (`ae_loop.LoopState`:
plateau, loss history, samples seen, best weights, whether it stopped), the batch stream's state
(generator, the current pass's permutation, the position in it) and the wall time so far. It is used
only when its fingerprint equals the run's: the corpus bytes, the architecture, the hyper-parameters,
the seed, the device and thread count, the starting weights, torch's version and this training code.

A checkpoint that does not match is ignored and the run says why. One that cannot be read (truncated,
not a checkpoint) is ignored too, with its file and the error printed, rather than stopping the run:
it is the program's own scratch state, not input, an unattended `figures` rerun should not stop at
it, and starting afresh costs only time. Either way the fresh run overwrites it after its first window.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write, remove_stale_temp_files
from .ae_loop import BatchStream, LoopState, Plateau

FORMAT = 1
_HERE = Path(__file__).parent
#: The code a resumed run must share with the run that wrote the checkpoint.
CODE_FILES = (_HERE / "ae_loop.py", _HERE / "ae_checkpoint.py", _HERE / "autoencoder.py")


def _say(message: str) -> None:
    print(message, flush=True)     # flushed: a log cut by a kill still shows it


def _sha256_tensors(tensors: dict) -> str:
    digest = hashlib.sha256()
    for name, value in tensors.items():
        digest.update(name.encode() + b"\n" + value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fingerprint(data: torch.Tensor, init_state: dict | None = None, **settings) -> dict:
    """What is trained, as plain data: `data` (the corpus tensor) by its bytes' sha256 and shape, the
    starting weights `init_state` by theirs (None: a seeded random initialisation) and every setting
    that changes the weights (architecture, hyper-parameters, seed, device, threads)."""
    code = hashlib.sha256(b"".join(path.read_bytes() for path in CODE_FILES)).hexdigest()
    corpus = np.ascontiguousarray(data.detach().cpu().numpy())
    return {"corpus_sha256": hashlib.sha256(corpus.tobytes()).hexdigest(), "corpus_shape": list(corpus.shape),
            "init_sha256": None if init_state is None else _sha256_tensors(init_state),
            **json.loads(json.dumps(settings)), "torch_version": str(torch.__version__), "code_sha256": code}


def save(path: Path, fp: dict, module: torch.nn.Module, opt: torch.optim.Optimizer, state: LoopState,
         stream: BatchStream, seconds: float) -> None:
    """Write the checkpoint of the window just ended (atomically, synced: a kill or a reboot leaves the
    previous one or this one, whole)."""
    payload = {"format": FORMAT, "fingerprint": fp, "module": module.state_dict(), "optimiser": opt.state_dict(),
               "lr": opt.param_groups[0]["lr"], "stream": stream.state(), "seconds": float(seconds),
               "loop": {"plateau": dataclasses.asdict(state.plateau), "history": state.history,
                        "samples_seen": state.samples_seen, "best_state": state.best_state, "stopped": state.stopped}}
    atomic_write(path, lambda tmp: torch.save(payload, tmp), fsync=True)


def _differences(old: dict, new: dict) -> list[str]:
    """`key old -> new` for every part of two fingerprints that differs (hashes shortened)."""
    def short(value):
        return f"{value[:12]}…" if isinstance(value, str) and len(value) == 64 else repr(value)
    return [f"{key} {short(old.get(key))} -> {short(new.get(key))}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def load(path: Path, fp: dict, say=_say) -> dict | None:
    """The checkpoint at `path` if there is one and it was written for the training `fp` describes;
    else None, and `say` tells why it is not used."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:    # a truncated zip, a pickle error, …: all mean the same here
        say(f"{path}: cannot read the training checkpoint ({type(exc).__name__}: {exc}); training starts afresh "
            "and replaces it")
        return None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("fingerprint"), dict):
        say(f"{path}: not a training checkpoint of format {FORMAT}; training starts afresh and replaces it")
        return None
    differs = _differences(ckpt["fingerprint"], fp)
    if differs:
        say(f"{path} was written for another training ({'; '.join(differs)}); it is not used: training starts "
            "afresh and replaces it")
        return None
    return ckpt


def _restore(ckpt: dict, module, opt, state: LoopState, stream: BatchStream) -> None:
    device = next(module.parameters()).device
    module.load_state_dict(ckpt["module"])
    opt.load_state_dict(ckpt["optimiser"])
    loop = ckpt["loop"]
    state.plateau = Plateau(**loop["plateau"])
    state.history = [float(v) for v in loop["history"]]
    state.samples_seen = int(loop["samples_seen"])
    state.stopped = bool(loop["stopped"])
    state.best_state = None if loop["best_state"] is None else {k: v.to(device) for k, v in loop["best_state"].items()}
    stream.load_state(ckpt["stream"])


def resume(path: Path | None, fp: dict, fresh, say=_say):
    """(module, optimiser, loop state, batch stream, seconds already trained): `fresh()` builds the first
    four as a new run would; when the checkpoint at `path` fits `fp` they continue from it. Temporary
    files that killed writers left beside it are removed."""
    parts = fresh()
    if path is None:
        return (*parts, 0.0)
    remove_stale_temp_files(Path(path).parent)
    ckpt = load(Path(path), fp, say)
    if ckpt is None:
        return (*parts, 0.0)
    try:
        _restore(ckpt, *parts)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        say(f"{path}: the training checkpoint is damaged ({type(exc).__name__}: {exc}); training starts afresh")
        return (*fresh(), 0.0)
    state = parts[2]
    say(f"resuming from {path}: {len(state.history)} windows done, {state.samples_seen:,} kernels seen, "
        f"learning rate {ckpt['lr']:g}" + (" (the plateau rule had stopped it)" if state.stopped else ""))
    return (*parts, float(ckpt["seconds"]))
