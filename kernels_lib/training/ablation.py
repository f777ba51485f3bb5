"""How much a trained network uses its depthwise kernels (issue 18's question: the i.i.d. control reaches 99.8 %
validation accuracy, perhaps from colour statistics alone, so the task may not need the kernels at all).

`depthwise_ablation` measures the validation accuracy of a trained run three ways: as trained; with every
depthwise kernel replaced by the identity (a centred delta, so each depthwise conv passes its input through,
plus its trained bias); and with every depthwise kernel reset to the run's own initialisation (the seeded
weights it started from). Everything else keeps its trained weights. A kernel swap shifts the statistics
the batch norms after it learned, which alone could cost accuracy; so each variant is also measured with
the batch norms' running statistics recomputed on training batches (`recalibration_batches`, never
validation data). Accuracy near the trained one under the identity means the net barely relies on its
spatial filtering; the majority-class share of the validation set is the floor to read them against. This
measures what a trained net relies on, not what the task needs: a net trained with fixed kernels may do
without them (issue 18, item 3).

    python -m kernels_lib.training.ablation data/training/kaiming-7x7 data/training/iid-7x7
"""
from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from . import nets
from .datasets import training_data
from .loop import TrainingError, TrainResult, build_model, evaluate, load_run

VARIANTS = ("trained", "identity", "initialisation")
#: The training stream's epoch whose batches recompute the batch-norm statistics.
RECALIBRATION_EPOCH = 1


@torch.no_grad()
def with_depthwise_kernels(model: nn.Module, variant: str, initial: nn.Module | None = None) -> nn.Module:
    """A copy of `model` whose depthwise kernels are as trained, the identity, or those of `initial`."""
    if variant not in VARIANTS:
        raise TrainingError(f"variant must be one of {VARIANTS}, got {variant!r}")
    copied = copy.deepcopy(model)
    starts = dict(nets.depthwise_convs(initial)) if initial is not None else {}
    for name, conv in nets.depthwise_convs(copied):
        if variant == "identity":
            kh, kw = conv.kernel_size
            conv.weight.zero_()
            conv.weight[:, :, kh // 2, kw // 2] = 1.0
        elif variant == "initialisation":
            conv.weight.copy_(starts[name].weight)
    return copied


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches, device) -> int:
    """Recompute every batch norm's running mean and variance as the plain average over `batches` (training
    mode, no gradient); returns how many batches were used."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                       # a cumulative average over the batches
    model.train()
    count = 0
    for x, _ in batches:
        model(x.to(device))
        count += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return count


def depthwise_ablation(run, data=None, recalibration_batches: int = 20, device: str = "cpu") -> dict:
    """Validation accuracy of a trained run (a run folder or a `TrainResult`) as trained, with identity
    depthwise kernels and with initial ones; each also after recomputing the batch-norm statistics (None
    when recalibration_batches is 0). data: the run's data, built from its config when not given."""
    result = run if isinstance(run, TrainResult) else load_run(run, device=device)
    config = result.config
    data = data if data is not None else training_data(config.data, **config.data_arguments())
    dev = torch.device(device)
    memory_format = torch.channels_last if dev.type == "cpu" else torch.contiguous_format    # as the loop evaluates
    initial = build_model(config, data.n_classes)
    counts = torch.zeros(data.n_classes)
    for _, y in data.validation_batches(256):
        counts += torch.bincount(y, minlength=data.n_classes)
    record = {"run": config.run, "n_classes": data.n_classes, "n_validation": int(counts.sum()),
              "majority_share": round(float(counts.max() / counts.sum()), 5),
              "recalibration_batches": recalibration_batches, "accuracy": {}, "accuracy_recalibrated": {}}
    for variant in VARIANTS:
        model = with_depthwise_kernels(result.model, variant, initial).to(dev, memory_format=memory_format)
        record["accuracy"][variant] = evaluate(model, data, dev, memory_format=memory_format)["val_accuracy"]
        if recalibration_batches:
            batches = itertools.islice(data.epoch_batches(RECALIBRATION_EPOCH, config.batch_size, config.seed),
                                       recalibration_batches)
            recalibrate_batch_norm(model, batches, dev)
            record["accuracy_recalibrated"][variant] = evaluate(model, data, dev,
                                                                memory_format=memory_format)["val_accuracy"]
        else:
            record["accuracy_recalibrated"][variant] = None
    return record


def main(argv=None) -> int:
    """`python -m kernels_lib.training.ablation data/training/kaiming-7x7 ...`: one JSON line per run folder."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m kernels_lib.training.ablation", description=main.__doc__)
    parser.add_argument("runs", nargs="+", help="run folders (data/training/<run>)")
    parser.add_argument("--recalibration-batches", type=int, default=20)
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(depthwise_ablation(run, recalibration_batches=args.recalibration_batches)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
