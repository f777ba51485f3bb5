"""The paper's kernel autoencoder (§4.1, Appendix C): a 1-D code for every kernel of one size.

Input and output are kernels in hyperplane coordinates (`kernels_lib.preprocess.prepare`:
centred, unit length, orthonormal basis of 1ᵀr = 0, d = k² − 1 numbers). The encoder has
hidden layers each followed by LeakyReLU (the paper uses four) and a one-number code squashed
by a sigmoid into [0, 1]; the decoder mirrors it and ends with tanh. The loss is the paper's
mean-centred cosine dissimilarity 1 − cos(x, x̂): the basis is orthonormal and both vectors
lie in the hyperplane, so the cosine there equals the centred cosine in kernel space.

An `Autoencoder` bundles the torch module, the basis and the training provenance; `save`
writes one directory per autoencoder atomically, `Autoencoder.load` reads it back.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import AnalysisError, CorruptFileError
from ..fileio import atomic_directory, write_json
from ..preprocess import Prepared, from_hyperplane, hyperplane_basis, prepare
from . import ae_checkpoint, ae_loop

#: Bumped when the saved layout changes; `load` refuses versions it does not know.
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
BASIS_FILE = "basis.npy"
PROVENANCE_FILE = "provenance.json"

#: Hidden widths of the reference autoencoders (data/autoencoders/README.md): as good as
#: 512-256-128-64 on the synthetic ground truth at a third of the cost.
DEFAULT_HIDDEN = (256, 128, 64, 32)
#: `train`'s defaults, the command line's and notebook 05's (the one place they are written down).
#: Throughput settings measured on this 2-core machine (benchmarks/bench_autoencoder.py, README
#: there): batches of 2,048 on every core at 3e-3. The stopping rule counts kernels seen, not
#: epochs of a corpus whose size varies ×100 between model sets: the mean loss of every `window`
#: samples must beat the best so far by `min_delta` within `patience` windows, else the learning
#: rate drops (`lr_drops` times), then training stops; at most `max_samples` samples in all.
TRAINING_DEFAULTS = {
    "hidden": DEFAULT_HIDDEN,
    "lr": 3e-3,
    "batch_size": 2048,
    "window": 262_144,
    "patience": 3,
    "max_samples": 8_388_608,
    "min_delta": 1e-4,
    "lr_drops": 2,
    "lr_drop_factor": 0.3,
    "negative_slope": 0.01,
}
#: The optimisation settings an autoencoder trained with the epoch rule records (the reference
#: autoencoders of data/autoencoders: batches of 256, one thread, plateaus counted in epochs).
EPOCH_RULE_SETTINGS = ("lr", "batch_size", "max_epochs", "patience", "min_delta", "lr_drops", "lr_drop_factor")
SAMPLE_RULE_SETTINGS = ("lr", "batch_size", "window", "patience", "max_samples", "min_delta", "lr_drops",
                        "lr_drop_factor")


class KernelAutoencoder(nn.Module):
    """Encoder d → hidden… → 1 (sigmoid), decoder 1 → …hidden → d (tanh), LeakyReLU between."""

    def __init__(self, input_dim: int, hidden=DEFAULT_HIDDEN, negative_slope: float = 0.01):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if input_dim < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"need input_dim ≥ 1 and positive hidden widths, got {input_dim}, {hidden}")
        enc: list[nn.Module] = []
        width = input_dim
        for h in hidden:
            enc += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            width = h
        enc += [nn.Linear(width, 1), nn.Sigmoid()]
        dec: list[nn.Module] = []
        width = 1
        for h in reversed(hidden):
            dec += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            width = h
        dec += [nn.Linear(width, input_dim), nn.Tanh()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes [B] in [0, 1] of hyperplane coordinates [B, d]."""
        return self.encoder(x).squeeze(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Hyperplane coordinates [B, d] of codes [B]."""
        return self.decoder(z.reshape(-1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def cosine_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of 1 − cos(x_i, y_i): the paper's mean-centred cosine loss in hyperplane coordinates."""
    return (1.0 - nn.functional.cosine_similarity(x, y, dim=1, eps=1e-12)).mean()


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Deterministic kernels on CPU for the duration (CUDA would need CUBLAS_WORKSPACE_CONFIG)."""
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextlib.contextmanager
def _torch_threads(n: int):
    """Use `n` intra-op threads for the duration."""
    if n < 1:
        raise ValueError(f"num_threads must be ≥ 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Autoencoder:
    """A trained kernel autoencoder with everything needed to use and reproduce it."""

    module: KernelAutoencoder
    kernel_shape: tuple[int, int]
    hidden: tuple[int, ...]
    negative_slope: float
    basis: np.ndarray                      # [k², k²−1] orthonormal hyperplane basis
    provenance: dict = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return self.kernel_shape[0] * self.kernel_shape[1] - 1

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def encode_coords(self, coords: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Codes [N] of hyperplane coordinates [N, k²−1] (as from `prepare`)."""
        coords = np.asarray(coords)
        if coords.ndim != 2 or coords.shape[1] != self.input_dim:
            raise ValueError(f"expected hyperplane coordinates [N, {self.input_dim}], got {coords.shape}")
        out = []
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(coords), batch_size):
                x = torch.as_tensor(coords[start:start + batch_size], dtype=torch.float32, device=self.device)
                out.append(self.module.encode(x).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def encode(self, kernels: np.ndarray) -> np.ndarray:
        """Codes [N] in [0, 1] of raw kernels [N, kh, kw]. Degenerate kernels are refused.

        For a corpus that may hold constant or NaN kernels, call `prepare` first and pass its
        `coords` to `encode_coords`; `Prepared.index` maps the codes back to the rows.
        """
        arr = np.asarray(kernels)
        if arr.ndim != 3 or arr.shape[1:] != self.kernel_shape:
            raise ValueError(f"expected kernels [N, {self.kernel_shape[0]}, {self.kernel_shape[1]}], got {arr.shape}")
        prep = prepare(arr)
        if prep.n_degenerate:
            raise ValueError(
                f"{prep.n_degenerate} of {len(arr)} kernels are degenerate (constant or NaN/inf) and have no code; "
                "use kernels_lib.preprocess.prepare() and Autoencoder.encode_coords(prepared.coords)"
            )
        return self.encode_coords(prep.coords)

    def decode(self, codes) -> np.ndarray:
        """Decoded kernels [N, kh, kw] (float64, centred, unit length) of codes in [0, 1]."""
        z = np.asarray(codes, dtype=np.float64).reshape(-1)
        if not np.isfinite(z).all():
            raise ValueError("codes must be finite numbers in [0, 1]")
        self.module.eval()
        with torch.no_grad():
            y = self.module.decode(torch.as_tensor(z, dtype=torch.float32, device=self.device))
        flat = from_hyperplane(y.cpu().numpy().astype(np.float64), self.basis)
        norm = np.linalg.norm(flat, axis=1, keepdims=True)
        if (norm == 0).any():  # tanh output exactly zero: no direction to show
            raise ValueError(f"the decoder returned a zero kernel for {int((norm == 0).sum())} codes")
        return (flat / norm).reshape(len(z), *self.kernel_shape)

    def save(self, directory, overwrite: bool = False) -> Path:
        """Write weights, config, basis and provenance into `directory`, all or nothing
        (`fileio.atomic_directory`: a crash never leaves a half-written autoencoder). An existing
        directory (with any label file that belonged to the old spectrum) is replaced only with
        `overwrite=True`.
        """
        target = Path(directory)
        with atomic_directory(target, overwrite=overwrite) as tmp:
            state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE))
            np.save(tmp / BASIS_FILE, self.basis)
            config = {
                "format_version": FORMAT_VERSION,
                "kernel_shape": list(self.kernel_shape),
                "input_dim": self.input_dim,
                "hidden": list(self.hidden),
                "negative_slope": self.negative_slope,
                "code": "1-D, sigmoid",
                "output": "tanh, hyperplane coordinates",
            }
            write_json(tmp / CONFIG_FILE, config)
            write_json(tmp / PROVENANCE_FILE, self.provenance)
        return target

    @classmethod
    def load(cls, directory, device=None) -> "Autoencoder":
        """Read an autoencoder written by `save`; CorruptFileError names any bad file."""
        root = Path(directory)
        if not root.is_dir():
            raise FileNotFoundError(f"no autoencoder directory at {root}; train one (kernels_lib.method.autoencoder.train) first")
        config = _read_json(root / CONFIG_FILE)
        if config.get("format_version") != FORMAT_VERSION:
            raise CorruptFileError(
                f"{root / CONFIG_FILE}: format_version {config.get('format_version')!r}, "
                f"this kernels_lib reads {FORMAT_VERSION}; retrain or use a matching kernels_lib"
            )
        try:
            shape = tuple(int(v) for v in config["kernel_shape"])
            hidden = tuple(int(v) for v in config["hidden"])
            slope = float(config["negative_slope"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{root / CONFIG_FILE}: missing or bad field ({exc})") from exc
        d = shape[0] * shape[1] - 1
        try:
            basis = np.load(root / BASIS_FILE, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"{root / BASIS_FILE}: cannot read the hyperplane basis ({exc})") from exc
        if basis.shape != (d + 1, d) or not np.allclose(basis.T @ basis, np.eye(d), atol=1e-8):
            raise CorruptFileError(f"{root / BASIS_FILE}: not an orthonormal [{d + 1}, {d}] hyperplane basis")
        module = KernelAutoencoder(d, hidden, slope)
        try:
            module.load_state_dict(load_file(str(root / WEIGHTS_FILE)))
        except Exception as exc:  # safetensors raises several kinds; all mean the same to the user
            raise CorruptFileError(f"{root / WEIGHTS_FILE}: cannot load the weights ({exc})") from exc
        provenance = _read_json(root / PROVENANCE_FILE)
        module.to(device or default_device())
        return cls(module, shape, hidden, slope, basis, provenance)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{path} is missing; the autoencoder directory is incomplete") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from exc


def train(
    kernels,
    *,
    hidden=TRAINING_DEFAULTS["hidden"],
    lr: float = TRAINING_DEFAULTS["lr"],
    batch_size: int = TRAINING_DEFAULTS["batch_size"],
    window: int = TRAINING_DEFAULTS["window"],
    patience: int = TRAINING_DEFAULTS["patience"],
    max_samples: int = TRAINING_DEFAULTS["max_samples"],
    min_delta: float = TRAINING_DEFAULTS["min_delta"],
    lr_drops: int = TRAINING_DEFAULTS["lr_drops"],
    lr_drop_factor: float = TRAINING_DEFAULTS["lr_drop_factor"],
    seed: int = 0,
    negative_slope: float = TRAINING_DEFAULTS["negative_slope"],
    device=None,
    num_threads: int | None = None,
    progress: bool = True,
    corpus=None,
    max_epochs: int | None = None,
    init: "Autoencoder | None" = None,
    checkpoint: Path | str | None = None,
) -> Autoencoder:
    """Train an autoencoder on kernels [N, k, k] (or an already `Prepared` set).

    Degenerate kernels are excluded and counted. Adam on batches of `batch_size` (at most the
    corpus size) drawn from the corpus reshuffled every pass; every `window` samples the
    window's mean loss goes through the plateau rule (`ae_loop.Plateau`: `patience` windows
    without improving by `min_delta` lower the learning rate by `lr_drop_factor`, `lr_drops`
    times, then stop); at most `max_samples` samples. The weights of the window with the lowest
    loss are kept. `max_epochs` (the rule of the reference autoencoders, `EPOCH_RULE_SETTINGS`):
    a window is one pass over the corpus, `patience` counts passes, at most `max_epochs` of them.

    `num_threads`: torch's CPU threads while training (default: every core, `ae_loop.default_threads`).
    Same seed, data, device and thread count → same weights. `corpus` describes the training
    data for the provenance (a string or a JSON-able dict). `init`, an autoencoder of the same
    shape and widths, gives the starting weights instead of a random initialisation (continued
    training: its provenance's `init` records where they came from).

    `checkpoint`: a file where the state after every window is written (`ae_checkpoint`); a run given a
    checkpoint written for the same corpus, settings, seed, threads and code continues from it and ends
    with the same weights, loss history and provenance (wall times aside) as a run never interrupted.
    One written for another training, or unreadable, is not used (the run prints why). The file is
    removed when training completes.
    """
    if init is not None and (tuple(init.hidden) != tuple(int(h) for h in hidden)
                             or abs(init.negative_slope - float(negative_slope)) > 0):
        raise ValueError(f"init has hidden widths {init.hidden} and slope {init.negative_slope}; "
                         f"training asked for {tuple(hidden)} and {negative_slope}")
    prep = kernels if isinstance(kernels, Prepared) else prepare(np.asarray(kernels))
    kh, kw = prep.kernel_shape
    n = len(prep.coords)
    if n < 2:
        raise ValueError(f"need at least 2 non-degenerate kernels to train, got {n} ({prep.n_degenerate} degenerate)")
    if (batch_size < 1 or lr <= 0 or window < 1 or max_samples < 1 or patience < 1 or lr_drops < 0
            or not 0 < lr_drop_factor < 1 or (max_epochs is not None and max_epochs < 1)):
        raise ValueError("batch_size, lr, window, max_samples, max_epochs and patience must be positive, "
                         "lr_drops ≥ 0, 0 < lr_drop_factor < 1")
    device = torch.device(device) if device is not None else default_device()
    batch = min(int(batch_size), n)
    if max_epochs is None:
        window_batches = max(1, math.ceil(min(window, max_samples) / batch))
        max_windows = max(1, math.ceil(max_samples / (window_batches * batch)))
    else:   # the epoch rule: a window is one pass over the corpus
        window_batches, max_windows = math.ceil(n / batch), int(max_epochs)
    threads = ae_loop.default_threads() if num_threads is None else int(num_threads)
    if init is not None and tuple(init.kernel_shape) != (kh, kw):
        raise ValueError(f"init is a {init.kernel_shape} autoencoder, the kernels are {(kh, kw)}")

    with torch.random.fork_rng(devices=[]), _deterministic(device), _torch_threads(threads):
        data = torch.as_tensor(prep.coords, dtype=torch.float32, device=device)

        def fresh():
            torch.manual_seed(seed)
            module = KernelAutoencoder(len(prep.coords[0]), hidden, negative_slope).to(device)
            if init is not None:
                module.load_state_dict(init.module.state_dict())
            return (module, torch.optim.Adam(module.parameters(), lr=lr),
                    ae_loop.LoopState(ae_loop.Plateau(patience, min_delta, lr_drops)),
                    ae_loop.BatchStream(data, batch, torch.Generator().manual_seed(seed)))

        fp = None if checkpoint is None else ae_checkpoint.fingerprint(
            data, None if init is None else init.module.state_dict(), hidden=[int(h) for h in hidden],
            negative_slope=float(negative_slope), lr=float(lr), batch=batch, window_batches=window_batches,
            max_windows=max_windows, patience=int(patience), min_delta=float(min_delta), lr_drops=int(lr_drops),
            lr_drop_factor=float(lr_drop_factor), seed=int(seed), device=str(device), threads=threads)
        module, opt, state, stream, before = ae_checkpoint.resume(checkpoint, fp, fresh)
        started = time.perf_counter()
        state = ae_loop.run(module, opt, cosine_loss, stream, state, batch_size=batch, window_batches=window_batches,
                            max_windows=max_windows, lr_drop_factor=lr_drop_factor, progress=progress,
                            desc=f"autoencoder {kh}x{kw}", after_window=None if checkpoint is None else (
                                lambda st: ae_checkpoint.save(Path(checkpoint), fp, module, opt, st, stream,
                                                              before + time.perf_counter() - started)))
        elapsed = before + time.perf_counter() - started
        module.load_state_dict(state.best_state)
    plateau = state.plateau

    ae = Autoencoder(module, (kh, kw), tuple(int(h) for h in hidden), float(negative_slope), hyperplane_basis(kh * kw))
    codes = ae.encode_coords(prep.coords)
    window_samples = window_batches * batch
    history = state.history
    ae.provenance = {
        "corpus": corpus,
        "kernel_shape": [kh, kw],
        "n_kernels": n + prep.n_degenerate,
        "n_used": n,
        "n_degenerate_excluded": prep.n_degenerate,
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "batch_size_used": batch,
        "stopping_rule": "samples" if max_epochs is None else "epochs",
        "window": window if max_epochs is None else None,
        "max_samples": max_samples if max_epochs is None else None,
        "max_epochs": max_epochs,
        "patience": patience,
        "min_delta": min_delta,
        "lr_drops": lr_drops,
        "lr_drop_factor": lr_drop_factor,
        "window_samples": window_samples,
        "lr_dropped_after_windows": plateau.drops,
        "windows_run": len(history),
        "best_window": plateau.best_window,
        "samples_seen": state.samples_seen,
        "epochs_run": round(state.samples_seen / n, 3),
        "init": None if init is None else {"decision": init.provenance.get("decision"),
                                           "epochs_run": init.provenance.get("epochs_run"),
                                           "best_loss": init.provenance.get("best_loss")},
        "best_loss": plateau.best,
        "loss_history": history,
        # Codes piled at the sigmoid ends mean a collapsed code (seen with too high a learning rate).
        "code_saturated_fraction": float(np.mean((codes < 1e-3) | (codes > 1 - 1e-3))),
        "code_histogram_20_bins": np.histogram(codes, bins=20, range=(0.0, 1.0))[0].tolist(),
        "device": str(device),
        "torch_threads": threads,
        "train_seconds": round(elapsed, 2),
        "samples_per_second": round(state.samples_seen / elapsed, 1) if elapsed > 0 else None,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "kernels_lib_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return ae


def training_config(directory) -> dict:
    """The settings an autoencoder directory was trained with (its config and provenance), as
    keyword arguments of `train`, to train another one the same way.

    Only the optimisation settings are taken (hidden widths, slope, learning rate and its drops,
    batch size, the stopping rule: `SAMPLE_RULE_SETTINGS`, or `EPOCH_RULE_SETTINGS` for one
    trained with epochs, as the reference autoencoders were); data, seed, device and threads are
    the caller's choice. A setting the provenance does not record is an error, not a silent default.
    """
    root = Path(directory)
    try:
        config = json.loads((root / CONFIG_FILE).read_text())
        prov = json.loads((root / PROVENANCE_FILE).read_text())
    except (OSError, ValueError) as err:
        raise AnalysisError(f"{root} is not a readable autoencoder directory ({err})") from err
    wanted = EPOCH_RULE_SETTINGS if prov.get("max_epochs") is not None else SAMPLE_RULE_SETTINGS
    missing = [k for k in wanted if k not in prov]
    if missing:
        raise AnalysisError(f"{root / PROVENANCE_FILE} does not record {missing}; it was written by an older "
                            "kernels_lib: retrain it, or pass the settings yourself")
    return {"hidden": list(config["hidden"]), "negative_slope": config["negative_slope"],
            **{k: prov[k] for k in wanted}}
