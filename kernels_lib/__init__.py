"""kernels_lib: identifiable clusters in trained depthwise convolutional kernels (ICLR 2024).

Three lines for your own model (see `kernels_lib.api`; the names do not shadow the `classify` module):

    import kernels_lib as kl
    results = kl.classify_kernels(kl.extract_kernels("my_model.onnx"))
    print(kl.clustered_fraction(results))       # 5×5/7×7; 3×3 k-means: kl.cluster_shares(results)

`kl.classify_array(kernels)` answers for a NumPy array [N, k, k].
"""
__version__ = "0.1.0"

import os as _os

# OpenMP threads that wait for work by spinning starve each other when other processes load the
# cores: autoencoder training on 2 threads ran 9× slower than with passive waiting on this 2-core
# machine at load 13 (benchmarks/README.md). Set here, before torch loads OpenMP; a value the user
# set is kept. (Imported torch first? Then it is too late for this process: set it in the shell.)
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .api import (classify_array, classify_kernels, cluster_shares, clustered_fraction,  # noqa: E402
                  extract_kernels)  # (modules read __version__)
from . import training  # noqa: E402,F401  (registers the "training" model kind with database.extract)

__all__ = ["classify_array", "classify_kernels", "cluster_shares", "clustered_fraction", "extract_kernels",
           "__version__"]
