"""Three lines for your own model: `extract_kernels` → `classify_kernels` → `clustered_fraction`.

    import kernels_lib as kl
    kernels = kl.extract_kernels("my_model.onnx")      # nn.Module, a weights file (.pth, .safetensors, .onnx, .tflite, .keras, .h5, model.json) or a timm name
    results = kl.classify_kernels(kernels)             # 5×5/7×7: reference autoencoders; 3×3: k-means
    print(kl.clustered_fraction(results))      # % of kernels clustered per model and kernel size

Each step is a thin door onto the module that does the work (`sources`, `records`,
`analysis`), so a script can start here and move to those modules when it needs more control.
"""
from __future__ import annotations

import pandas as pd

from .errors import NoDepthwiseError
from .records import kernel_table
from .sources import load_layers


def extract_kernels(source, name: str | None = None, model=None, layout: str | None = None) -> pd.DataFrame:
    """The depthwise kernels of `source` as a kernel table (one row per kernel, `records.KERNEL_COLUMNS`).

    source: a torch module, a weights file (.pth/.pt/.bin/.ckpt/.safetensors/.onnx/.tflite/.keras/.h5/
    model.json) or a timm name with an optional pretrained tag ("convnextv2_tiny.fcmae_ft_in1k").
    `model` (a module of the right architecture) makes a state-dict file load into it, which knows
    strides and dilations; `layout` ("torch"/"tf") overrides the layout detected for bare weights.
    See `sources.load_layers` for the layer order and notes of a source.
    """
    loaded = load_layers(source, model=model, layout=layout)
    try:
        return kernel_table(list(loaded.layers), model=name or loaded.name, weights_tag=loaded.weights_tag,
                            source=loaded.source)
    except NoDepthwiseError as exc:
        where = "" if loaded.source in ("module", "timm") else f"{source}: "
        seen = f". What the reader saw: {'; '.join(loaded.notes)}" if loaded.notes else ""
        raise NoDepthwiseError(f"{where}{exc}{seen}") from exc


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
