"""The autoencoder's training loop, counted in kernels seen: batches drawn from a corpus reshuffled
every pass, a loss evaluated every window of samples, and the plateau rule that lowers the
learning rate and stops.

Why not epochs: a corpus of 400 kernels and one of 700,000 need the same number of optimiser
steps to learn a 1-D code, not the same number of passes. Why whole-tensor shuffles: gathering
one permuted copy of the corpus per pass and slicing it costs one copy; indexing with a slice of
the permutation in every batch costs a gather per step (`benchmarks/bench_autoencoder.py`).
The loop keeps all its state in `LoopState` between windows and the batch stream knows its place
in the current pass, so `ae_checkpoint` can write a checkpoint after every window and a resumed run
draws the very batches the uninterrupted one would have.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


def default_threads() -> int:
    """Every core this process may run on (its CPU affinity, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


@dataclass
class Plateau:
    """The stopping rule. A window's mean loss counts as progress when it beats `level` (the last
    progress) by `min_delta`; after `patience` windows without progress the learning rate drops
    (at most `lr_drops` times), after the next such run training stops. The best loss is
    tracked apart from `level`: the weights kept are those of the lowest loss, progress or not.
    """

    patience: int
    min_delta: float
    lr_drops: int
    best: float = math.inf
    best_window: int = 0
    level: float = math.inf
    wait: int = 0
    drops: list[int] = field(default_factory=list)

    def update(self, window: int, loss: float) -> str:
        """Record the loss of window `window` (1-based); returns "go", "drop" (lower the learning
        rate now) or "stop". `best_window == window` afterwards: keep these weights."""
        if loss < self.best:
            self.best, self.best_window = loss, window
        if loss < self.level - self.min_delta:
            self.level, self.wait = loss, 0
            return "go"
        self.wait += 1
        if self.wait < self.patience:
            return "go"
        if len(self.drops) == self.lr_drops:
            return "stop"
        self.drops.append(window)
        self.wait = 0
        return "drop"


class BatchStream:
    """Endless batches of exactly `batch_size` rows: the corpus shuffled (one gather) per pass,
    passes joined end to end, so no batch is short and none is dropped. `state` (the generator's
    state, the current pass's permutation and the position in it) and `load_state` let a resumed
    run continue the same sequence of batches."""

    def __init__(self, data: torch.Tensor, batch_size: int, gen: torch.Generator):
        self.data, self.batch_size, self.gen = data, int(batch_size), gen
        self.perm: torch.Tensor | None = None     # no pass drawn yet
        self.pos = len(data)
        self._shuffled = data

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        n = len(self.data)
        parts, need = [], self.batch_size
        while need:
            if self.pos == n:
                self.perm = torch.randperm(n, generator=self.gen)
                self._shuffled, self.pos = self.data[self.perm.to(self.data.device)], 0
            take = min(need, n - self.pos)
            parts.append(self._shuffled[self.pos:self.pos + take])
            self.pos, need = self.pos + take, need - take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state(self) -> dict:
        return {"generator": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        """Continue from `state()` of a stream over the same data; a permutation of other length is refused."""
        n, perm, pos = len(self.data), state["perm"], int(state["pos"])
        if perm is not None and (tuple(perm.shape) != (n,) or not 0 <= pos <= n):
            raise ValueError(f"a batch stream over {n} rows cannot continue a pass of {tuple(perm.shape)} at {pos}")
        self.gen.set_state(state["generator"])
        self.perm, self.pos = perm, pos if perm is not None else n
        self._shuffled = self.data if perm is None else self.data[perm.to(self.data.device)]


@dataclass
class LoopState:
    """Everything the loop carries from one window to the next."""

    plateau: Plateau
    history: list[float] = field(default_factory=list)
    samples_seen: int = 0
    best_state: dict | None = None
    stopped: bool = False          # the plateau rule ended training (nothing left to run)


def run(module: torch.nn.Module, opt: torch.optim.Optimizer, loss_fn, batches, state: LoopState, *,
        batch_size: int, window_batches: int, max_windows: int, lr_drop_factor: float,
        after_window=None, progress: bool = False, desc: str = "autoencoder") -> LoopState:
    """Train `module` window by window until the plateau rule stops it or `max_windows` have run;
    returns the state (loss per window, samples seen, the weights of the lowest loss). A `state`
    that already holds windows (a resumed run) continues after them. `after_window(state)` is
    called at the end of every window, once the learning rate is set for the next one."""
    module.train()
    done = len(state.history)
    windows = range(done + 1, max_windows + 1) if not state.stopped else range(0)
    bar = tqdm(windows, desc=desc, disable=not progress, unit="window", initial=done, total=max_windows)
    plateau = state.plateau
    for window in bar:
        total = torch.zeros(())
        for _ in range(window_batches):
            x = next(batches)
            loss = loss_fn(x, module(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().cpu()
        mean = float(total) / window_batches   # every batch holds batch_size samples
        state.samples_seen += window_batches * batch_size
        if not math.isfinite(mean):
            raise FloatingPointError(f"training loss became {mean} in window {window}; lower the learning rate "
                                     f"(now {opt.param_groups[0]['lr']})")
        state.history.append(mean)
        verdict = plateau.update(window, mean)
        bar.set_postfix(loss=f"{mean:.4f}", best=f"{plateau.best:.4f}")
        if plateau.best_window == window:
            state.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if verdict == "drop":
            for group in opt.param_groups:
                group["lr"] *= lr_drop_factor
        state.stopped = verdict == "stop"
        if after_window is not None:
            after_window(state)
        if state.stopped:
            break
    bar.close()
    return state
