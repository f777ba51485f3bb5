"""kernels_lib: identifiable clusters in trained depthwise convolutional kernels (ICLR 2024)."""
__version__ = "0.1.0"
