"""Three lines for your own model: `extract_kernels` → `classify_kernels` → `clustered_fraction`.

    import kernels_lib as kl
    kernels = kl.extract_kernels("my_model.onnx")      # nn.Module, .pth/.pt/.bin/.safetensors, .onnx, .tflite or a timm name
    results = kl.classify_kernels(kernels)             # 5×5/7×7: reference autoencoders; 3×3: k-means
    print(kl.clustered_fraction(results))              # % of 5×5/7×7 kernels clustered per model
    print(kl.cluster_shares(results))                  # 3×3: shares of the k-means clusters

`classify_array` does the same for a NumPy array of kernels. Each step is a thin door onto the
module that does the work (`sources`, `records`, `results`, `tables`), so a script can start here
and move to those modules when it needs more control.
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


def classify_kernels(kernels, **options) -> pd.DataFrame:
    """One classification row per kernel of a kernel table or database (`results.classify_kernels`)."""
    from .results import classify_kernels as classify

    return classify(kernels, **options)


def classify_array(kernels, **options) -> pd.DataFrame:
    """One row per kernel of a NumPy array [N, k, k]: label, merged class, code, dissimilarity,
    clustered (`results.classify_array`; reference autoencoders for 5×5/7×7, k-means for 3×3)."""
    from .results import classify_array as classify

    return classify(kernels, **options)


def clustered_fraction(results: pd.DataFrame) -> pd.DataFrame:
    """% of 5×5/7×7 kernels clustered per model (the paper's Tables 1, 3 and 4).

    3×3 kernels are clustered by k-means, which assigns every kernel: they have cluster shares
    (`cluster_shares`), never a % clustered, so they are not in this table.
    """
    from .tables import clustered_fraction as fraction

    return fraction(results)


def cluster_shares(results: pd.DataFrame) -> pd.DataFrame:
    """Share of each named k-means cluster among each model's 3×3 kernels (Appendix N)."""
    from .tables import model_proportions
    from .vocab import KMEANS

    return model_proportions(results, kernel_size=3, clustering=KMEANS)
