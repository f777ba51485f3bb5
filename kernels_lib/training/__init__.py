"""The appendix experiments: depthwise CNNs trained here (`loop`), their networks (`nets`), photographs and
noise controls (`photos`, `datasets`), the default runs and the committed runs classified (`runs`), training
under torchrun (`distributed`, `launch`), how much a trained net uses its depthwise kernels (`ablation`),
Fashion-MNIST (`fashion`) and the data × weight-decay factorial study (`study`).

The training loop's API is re-exported here (`training.train`, `training.obtain_run`, ...), and importing
this package registers the "training" model kind with `database.extract`.
"""
from ..database.extract import register_kind
from .default_runs import DEFAULT_RUNS, PAPER_TABLE_2, is_committed, obtain_run, run_layers, run_summary
from .labels import clustering_summary, reference_classifier
from .loop import (CHECKPOINT, INITS, PROVENANCE, RUNS_DIR, SOURCE, KernelSnapshot, TrainConfig, TrainingError,
                   TrainResult, build_model, evaluate, load_run, overfitting, relabel_run, train, training_step)

register_kind("training", run_layers)

__all__ = ["CHECKPOINT", "DEFAULT_RUNS", "INITS", "PAPER_TABLE_2", "PROVENANCE", "RUNS_DIR", "SOURCE",
           "KernelSnapshot", "TrainConfig", "TrainResult", "TrainingError", "build_model", "clustering_summary",
           "evaluate", "is_committed", "load_run", "obtain_run", "overfitting", "reference_classifier", "relabel_run",
           "run_layers", "run_summary", "train", "training_step"]
