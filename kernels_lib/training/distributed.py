"""Training past one process: what `loop.train` needs to run under `torchrun` with DistributedDataParallel.

With one process (no WORLD_SIZE, or WORLD_SIZE=1) nothing here changes a run: same code path, same bytes.
With N processes (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT):

* the process group is gloo on the CPU and nccl on CUDA (one GPU per process, cuda:LOCAL_RANK);
* every process builds the same seeded network and draws the same global batches of the configured
  batch size, and keeps its contiguous share of each (`shard`: the distributed sampler), so the global
  batch, and hence the optimisation, does not depend on N;
* batch norm uses the statistics of the global batch (torch's SyncBatchNorm on CUDA; `GlobalBatchNorm2d`
  on the CPU, where torch's has no kernel): with per-process statistics N processes would train another net;
* each process's loss is the sum over its share times N / global batch, so DDP's averaged gradient is the
  global batch's mean even where shares differ by one (the last batch of an epoch);
* validation is split between the processes and summed; rank 0 alone writes checkpoints, snapshots and
  provenance, and the others wait for it at the end.

So N processes reach the single-process weights to float rounding (tests/test_distributed.py). Launch a
config with `torchrun --nproc_per_node N -m kernels_lib.training.launch config.json`.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import KernelsLibError


class DistributedError(KernelsLibError, RuntimeError):
    """A distributed environment that cannot run; the message says what to set or change."""


@dataclass(frozen=True)
class Place:
    """This process's place in a run: its rank among `world_size` processes, and its GPU index on the machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def place_from_environment(environ=None) -> Place:
    """The place torchrun gives this process (WORLD_SIZE, RANK, LOCAL_RANK), or the one in the process group a
    caller started (e.g. with torch.multiprocessing); a lone process without either."""
    if environ is None and dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return Place(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))
    environ = os.environ if environ is None else environ
    values = {}
    for name, default in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", environ.get("RANK", "0"))):
        try:
            values[name] = int(environ.get(name, default))
        except ValueError:
            raise DistributedError(f"environment variable {name}={environ[name]!r} is not an integer; "
                                   "launch with torchrun, or unset it for a single process") from None
    place = Place(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if place.world_size < 1 or not 0 <= place.rank < place.world_size or place.local_rank < 0:
        raise DistributedError(f"RANK={place.rank}, LOCAL_RANK={place.local_rank} and WORLD_SIZE={place.world_size} "
                               "do not describe a process of the run (0 <= RANK < WORLD_SIZE); launch with torchrun")
    return place


def shard(n: int, place: Place) -> slice:
    """This process's contiguous part of n items (a global batch): the first n % N processes get one more."""
    base, extra = divmod(n, place.world_size)
    start = place.rank * base + min(place.rank, extra)
    return slice(start, start + base + (place.rank < extra))


def device_for(device: torch.device, place: Place) -> torch.device:
    """One GPU per process: a plain "cuda" device becomes cuda:LOCAL_RANK in a distributed run."""
    if place.distributed and device.type == "cuda":
        index = place.local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DistributedError(f"process with LOCAL_RANK {place.local_rank} needs cuda:{index}, but torch sees "
                                   f"{torch.cuda.device_count()} GPUs; start at most that many processes per machine")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


@contextlib.contextmanager
def process_group(place: Place, device: torch.device):
    """Joins the process group for the run (gloo on the CPU, nccl on CUDA) and leaves it at the end, even on an
    error. A group the caller already started (a script training several runs) is used and left running."""
    if not place.distributed or dist.is_initialized():
        yield
        return
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE={place.world_size} but {', '.join(missing)} not set; launch with torchrun")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=place.rank, world_size=place.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


class _Sum(torch.autograd.Function):
    """All-reduce sum whose gradient is the all-reduce sum of the gradients: every process's loss depends on
    every process's input through the shared statistics."""

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, summed over all processes with
    differentiable all-reduces (so the gradient flows through them too). For the CPU, where torch's
    SyncBatchNorm has no kernel; same parameters, buffers and state dict as BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        counted = torch.tensor(float(x.numel() // x.shape[1]), dtype=torch.float64)
        dist.all_reduce(counted)
        count = float(counted)
        mean = _Sum.apply(x.sum(dims)) / count
        centred = x - mean.view(1, -1, 1, 1)
        variance = _Sum.apply((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(variance + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(variance * count / max(count - 1.0, 1.0), momentum)
        return y


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> tuple[nn.Module, list[str]]:
    """The model with global-batch statistics in its batch norms, and the names of norm layers left per process
    (subclasses such as timm's BatchNormAct2d, which neither conversion keeps intact)."""
    others = [name for name, m in model.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) is not nn.BatchNorm2d]
    for name, m in list(model.named_modules()):
        if type(m) is not nn.BatchNorm2d:
            continue
        if device.type == "cuda":
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, nn.SyncBatchNorm.convert_sync_batchnorm(m))
        else:
            m.__class__ = GlobalBatchNorm2d     # no new state: parameters and buffers stay the same objects
    return model, others


def wrap(model: nn.Module, place: Place, device: torch.device) -> tuple[nn.Module, dict | None]:
    """The model to train (DDP with global batch norm in a distributed run, else the model itself) and what to
    record in the provenance about the distribution (None for one process, whose provenance stays as it was)."""
    if not place.distributed:
        return model, None
    model, per_process = synchronise_batch_norm(model, device)
    wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return wrapped, {"world_size": place.world_size, "backend": dist.get_backend(),
                     "batch_norm": "global batch statistics", "per_process_batch_norm": per_process}


def loss_scale(global_n: int, place: Place) -> float | None:
    """The factor that turns a process's summed loss into its part of the global batch's mean under DDP's
    gradient average (None for one process: the plain mean, as always)."""
    return place.world_size / global_n if place.distributed else None


def all_sum(values: list[float], place: Place) -> list[float]:
    """The sums over all processes of a few numbers (float64); the numbers themselves for one process."""
    if not place.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def from_main(value, place: Place):
    """Rank 0's value on every process (e.g. the snapshot only rank 0 wrote)."""
    if not place.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(place: Place) -> None:
    if place.distributed:
        dist.barrier()
