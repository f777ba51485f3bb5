"""The common currency of every source: convolution layers in, one row per kernel out.

Every source (a torch module, a timm name, a state-dict file, ONNX, TFLite, a wheel) reduces
to a list of `ConvLayer` in network order. `kernel_table` turns the depthwise ones into the
kernel database's rows (see `KERNEL_COLUMNS`, and `KERNEL_SCHEMA` for the same as Arrow types),
the schema that `store`, the clustering method and the notebooks rely on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import NoDepthwiseError
from .preprocess import degenerate_mask

#: Columns of the kernel database, in order. `kernel` holds the raw weights (row-major kh×kw).
KERNEL_COLUMNS = [
    "model",            # model name, e.g. "convnextv2_tiny"
    "weights_tag",      # pretrained tag / file / "random-init-seed0"
    "source",           # module | timm | state_dict | onnx | tflite | wheel
    "layer",            # index among the model's depthwise layers (0-based, network order)
    "module",           # module / node / tensor name
    "layer_order",      # how `layer` is known: network | file | name (LAYER_ORDERS)
    "depth",            # normalised depth: layer / (n_layers - 1), 0 for a single layer; NaN if order is "name"
    "channel",          # output channel within the layer
    "kh", "kw",         # kernel height and width
    "dilation",         # dilation (largest over the two axes)
    "stride",           # stride (largest over the two axes)
    "kernel",           # raw weights, list of kh*kw float32
    "norm",             # L2 norm of the raw weights
    "total_activation", # sum of the weights (the paper's "total activation", Figure 10)
    "degenerate",       # zero after centring, or NaN/inf: excluded from the clustering
]

#: How the order of a model's layers (the `layer` index) is known.
LAYER_ORDERS = {
    "network": "the order the network computes them, stored in the file or walked from the model",
    "file": "the order the file stores the tensors in (for torch.save state dicts the model's "
            "module registration order, which is network order for nearly every model)",
    "name": "sorted by name (natural sort): the file keeps no order, so the true depth is unknown",
}

#: Arrow schema of a kernel file (`kernels_lib.database.store`); integer widths follow `kernel_table`.
KERNEL_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("weights_tag", pa.string()),
    ("source", pa.string()),
    ("layer", pa.int32()),
    ("module", pa.string()),
    ("layer_order", pa.string()),
    ("depth", pa.float64()),
    ("channel", pa.int32()),
    ("kh", pa.int16()),
    ("kw", pa.int16()),
    ("dilation", pa.int16()),
    ("stride", pa.int16()),
    ("kernel", pa.list_(pa.float32())),
    ("norm", pa.float64()),
    ("total_activation", pa.float64()),
    ("degenerate", pa.bool_()),
])
assert KERNEL_SCHEMA.names == KERNEL_COLUMNS


@dataclass(frozen=True)
class ConvLayer:
    """One 2-D convolution as found in a model, weights in PyTorch layout [out, in/groups, kh, kw]."""

    name: str
    weight: np.ndarray
    in_channels: int
    groups: int
    dilation: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def is_depthwise(self) -> bool:
        """groups == in_channels > 1 and out_channels a multiple of it (channel multiplier)."""
        return is_depthwise_conv(self.groups, self.in_channels, self.weight.shape)


def is_depthwise_conv(groups: int, in_channels: int, weight_shape) -> bool:
    """The definition of a depthwise conv from its shape alone (weights [out, in/groups, kh, kw]):
    groups == in_channels > 1 and out_channels a multiple of it (channel multiplier)."""
    return groups > 1 and groups == in_channels and weight_shape[1] == 1 and weight_shape[0] % in_channels == 0


def depthwise_layers(layers: list[ConvLayer], kernel_sizes=None) -> list[ConvLayer]:
    """The depthwise layers, in network order, optionally only those whose (kh, kw) is listed."""
    out = [layer for layer in layers if layer.is_depthwise]
    if kernel_sizes is not None:
        wanted = {tuple(s) if not isinstance(s, int) else (s, s) for s in kernel_sizes}
        out = [layer for layer in out if layer.kernel_size in wanted]
    return out


def kernel_table(layers: list[ConvLayer], model: str, weights_tag: str, source: str,
                 layer_order: str = "network") -> pd.DataFrame:
    """One row per depthwise kernel of `layers` (non-depthwise layers are ignored).

    `layer` and `depth` count depthwise layers of every size, so a layer keeps its index
    whatever kernel sizes are selected later. `layer_order` says how that order is known
    (`LAYER_ORDERS`); when it is only by name, the depth is unknown and left NaN.
    """
    if layer_order not in LAYER_ORDERS:
        raise ValueError(f"layer_order must be one of {sorted(LAYER_ORDERS)}, got {layer_order!r}")
    dw = depthwise_layers(layers)
    if not dw:
        raise NoDepthwiseError(
            f"model {model!r} ({weights_tag}) has no depthwise convolution "
            "(groups == in_channels > 1); nothing to extract"
        )
    n = len(dw)
    frames = []
    for index, layer in enumerate(dw):
        kh, kw = layer.kernel_size
        flat = np.ascontiguousarray(layer.weight, dtype=np.float32).reshape(layer.out_channels, kh * kw)
        with np.errstate(invalid="ignore", over="ignore"):
            norm = np.linalg.norm(flat.astype(np.float64), axis=1)
            total = flat.astype(np.float64).sum(axis=1)
        frames.append(pd.DataFrame({
            "model": model,
            "weights_tag": weights_tag,
            "source": source,
            "layer": index,
            "module": layer.name,
            "layer_order": layer_order,
            "depth": np.nan if layer_order == "name" else (index / (n - 1) if n > 1 else 0.0),
            "channel": np.arange(layer.out_channels),
            "kh": kh,
            "kw": kw,
            "dilation": max(layer.dilation),
            "stride": max(layer.stride),
            "kernel": list(flat),
            "norm": norm,
            "total_activation": total,
            "degenerate": degenerate_mask(flat),
        }))
    table = pd.concat(frames, ignore_index=True)
    return table.astype({"layer": "int32", "channel": "int32", "kh": "int16", "kw": "int16",
                         "dilation": "int16", "stride": "int16"})[KERNEL_COLUMNS]


def kernel_array(table: pd.DataFrame) -> np.ndarray:
    """Stack the `kernel` column of rows that share one kernel size into an [N, kh, kw] array."""
    shapes = table[["kh", "kw"]].drop_duplicates()
    if len(shapes) != 1:
        raise ValueError(f"rows hold several kernel sizes {shapes.values.tolist()}; select one size first")
    kh, kw = (int(v) for v in shapes.iloc[0])
    if len(table) == 0:
        return np.zeros((0, kh, kw), np.float32)
    return np.stack(table["kernel"].to_numpy()).astype(np.float32).reshape(len(table), kh, kw)
