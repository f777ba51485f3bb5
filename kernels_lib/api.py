"""Three lines for your own model: `extract_kernels` → `classify_kernels` → `clustered_fraction`.

    import kernels_lib as kl
    kernels = kl.extract_kernels("my_model.onnx")      # nn.Module, .pth/.pt/.bin/.safetensors, .onnx, .tflite or a timm name
    results = kl.classify_kernels(kernels)             # 5×5/7×7: reference autoencoders; 3×3: k-means
    print(kl.clustered_fraction(results))      # % of kernels clustered per model and kernel size

Each step is a thin door onto the module that does the work (`sources`, `records`,
`analysis`), so a script can start here and move to those modules when it needs more control.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .records import kernel_table

#: File suffix → (source name, reader); state dicts cover several suffixes.
_STATE_DICT_SUFFIXES = {".pth", ".pt", ".bin", ".safetensors", ".ckpt"}


def _layers_of(source, model):
    """(layers, default model name, weights tag, source name) of a module, a weights file or a timm name."""
    import torch

    from .sources.module import conv_layers

    if isinstance(source, torch.nn.Module):
        return conv_layers(source), type(source).__name__, "module", "module"
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .sources.onnx_source import onnx_layers

        return onnx_layers(path), path.stem, path.name, "onnx"
    if suffix == ".tflite":
        from .sources.tflite_source import tflite_layers

        return tflite_layers(path), path.stem, path.name, "tflite"
    if suffix in _STATE_DICT_SUFFIXES:
        from .sources.state_dict import state_dict_layers

        return state_dict_layers(path, model=model), path.stem, path.name, "state_dict"
    if path.exists():
        raise ValueError(f"{path}: unknown weights format {suffix!r}; expected .onnx, .tflite or one of "
                         f"{sorted(_STATE_DICT_SUFFIXES)}")
    from .sources.timm_source import create_timm_model, resolve_timm_name, split_model_name_tag

    arch, tag = split_model_name_tag(resolve_timm_name(str(source)))
    return conv_layers(create_timm_model(str(source))), arch, tag, "timm"


def extract_kernels(source, name: str | None = None, model=None) -> pd.DataFrame:
    """The depthwise kernels of `source` as a kernel table (one row per kernel, `records.KERNEL_COLUMNS`).

    source: a torch module, a path to a .pth/.pt/.bin/.safetensors/.onnx/.tflite file, or a timm
    name with an optional pretrained tag ("convnextv2_tiny.fcmae_ft_in1k"). `model` (a module of
    the right architecture) makes a state-dict file load into it, which knows strides and dilations.
    """
    layers, default_name, weights_tag, source_name = _layers_of(source, model)
    return kernel_table(layers, model=name or default_name, weights_tag=weights_tag, source=source_name)


def classify_kernels(kernels: pd.DataFrame, **options) -> pd.DataFrame:
    """One classification row per kernel (see `analysis.classify_database` for the options)."""
    from .analysis import classify_database

    return classify_database(kernels, **options)


def clustered_fraction(results: pd.DataFrame) -> pd.DataFrame:
    """% of kernels clustered per model and kernel size (the paper's Tables 1, 3 and 4).

    One block per clustering method present (autoencoder for 5×5/7×7, k-means for 3×3), with a
    `clustering` column, so the two methods are never mixed in one number.
    """
    from .analysis import clustered_fraction as fraction

    blocks = [fraction(results, clustering=method).assign(clustering=method)
              for method in sorted(results["clustering"].unique())]
    return pd.concat(blocks)
