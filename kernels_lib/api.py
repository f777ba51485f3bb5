"""Three lines for your own model: `extract_kernels` → `classify_kernels` → `clustered_fraction`.

    import kernels_lib as kl
    kernels = kl.extract_kernels("my_model.onnx")      # nn.Module, a weights file (.pth, .safetensors, .onnx, .tflite, .keras, .h5, model.json) or a timm name
    results = kl.classify_kernels(kernels)             # 5×5/7×7: reference autoencoders; 3×3: k-means
    print(kl.clustered_fraction(results))              # % of 5×5/7×7 kernels clustered per model
    print(kl.cluster_shares(results))                  # 3×3: shares of the k-means clusters

`classify_array` does the same for a NumPy array of kernels. Each step is a thin door onto the
module that does the work (`sources`, `records`, `results`, `tables`), so a script can start here
and move to those modules when it needs more control.
"""
from __future__ import annotations

import pandas as pd

from .sources import load_kernels


def extract_kernels(source, name: str | None = None, model=None, layout: str | None = None) -> pd.DataFrame:
    """The depthwise kernels of `source` as a kernel table (one row per kernel, `records.KERNEL_COLUMNS`).

    source: a torch module, a weights file (.pth/.pt/.bin/.ckpt/.safetensors/.onnx/.tflite/.keras/.h5/
    model.json) or a timm name with an optional pretrained tag ("convnextv2_tiny.fcmae_ft_in1k").
    `model` (a module of the right architecture) makes a state-dict file load into it, which knows
    strides and dilations; `layout` ("torch"/"tf") overrides the layout detected for bare weights.
    See `sources.load_layers` for the layer order and notes of a source.
    """
    return load_kernels(source, name, model=model, layout=layout)[0]


def classify_kernels(kernels, **options) -> pd.DataFrame:
    """One classification row per kernel of a kernel table or database (`results.classify_kernels`)."""
    from .analysis.results import classify_kernels as classify

    return classify(kernels, **options)


def classify_array(kernels, **options) -> pd.DataFrame:
    """One row per kernel of a NumPy array [N, k, k]: label, merged class, code, dissimilarity,
    clustered (`results.classify_array`; reference autoencoders for 5×5/7×7, k-means for 3×3)."""
    from .analysis.results import classify_array as classify

    return classify(kernels, **options)


def clustered_fraction(results: pd.DataFrame) -> pd.DataFrame:
    """% of 5×5/7×7 kernels clustered per model (the paper's Tables 1, 3 and 4).

    3×3 kernels are clustered by k-means, which assigns every kernel: they have cluster shares
    (`cluster_shares`), never a % clustered, so they are not in this table.
    """
    from .analysis.tables import clustered_fraction as fraction

    return fraction(results)


def cluster_shares(results: pd.DataFrame) -> pd.DataFrame:
    """Share of each named k-means cluster among each model's 3×3 kernels (Appendix N)."""
    from .analysis.tables import model_proportions
    from .vocab import KMEANS

    return model_proportions(results, kernel_size=3, clustering=KMEANS)
