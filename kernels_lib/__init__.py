"""kernels_lib: identifiable clusters in trained depthwise convolutional kernels (ICLR 2024).

Three lines for your own model (see `kernels_lib.api`; the names do not shadow the `classify` module):

    import kernels_lib as kl
    results = kl.classify_kernels(kl.extract_kernels("my_model.onnx"))
    print(kl.clustered_fraction(results))
"""
__version__ = "0.1.0"

from .api import classify_kernels, clustered_fraction, extract_kernels  # noqa: E402  (modules read __version__)

__all__ = ["classify_kernels", "clustered_fraction", "extract_kernels", "__version__"]
