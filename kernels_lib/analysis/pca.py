"""PCA of depthwise kernels (Figure 4): the first principal components of centred, unit-length
kernels, and a seeded k-means partition that finds and names the clusters visible in them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..method import dog
from ..method.kmeans import fit_kmeans
from ..preprocess import centre_normalise, degenerate_mask


@dataclass(frozen=True)
class KernelPCA:
    """PCA of centred, unit-length kernels and a k-means partition used to pick the clearest clusters.

    `index` maps rows back to the input (degenerate kernels are left out and counted);
    `cohesion[c]` is the mean cosine similarity of cluster c's kernels to its mean direction.
    """

    coords: np.ndarray            # [M, n_components]
    explained_variance_ratio: np.ndarray
    components: np.ndarray        # [n_components, kh*kw]
    index: np.ndarray             # [M] rows of the input
    n_degenerate: int
    cluster: np.ndarray           # [M] k-means cluster of each kernel
    cohesion: np.ndarray          # [n_clusters]
    sizes: np.ndarray             # [n_clusters]

    def clearest(self, n: int = 4, min_fraction: float = 0.02) -> list[int]:
        """The `n` most cohesive clusters among those holding at least `min_fraction` of the kernels."""
        big = np.flatnonzero(self.sizes >= min_fraction * self.sizes.sum())
        return big[np.argsort(-self.cohesion[big], kind="stable")][:n].tolist()


def kernel_pca(kernels, n_components: int = 3, n_clusters: int = 8, seed: int = 0) -> KernelPCA:
    """Centre each kernel and scale it to unit length (§4.1), then PCA and k-means on the result.

    Unit length makes the PCA see shapes, not magnitudes; k-means (seeded) only serves to
    name and sample the visible clusters.
    """
    from sklearn.decomposition import PCA

    arr = np.asarray(kernels, dtype=np.float64)
    flat = arr.reshape(len(arr), -1)
    bad = degenerate_mask(flat)
    keep = np.flatnonzero(~bad)
    if len(keep) < max(n_components, n_clusters):
        raise ValueError(f"only {len(keep)} usable kernels ({int(bad.sum())} degenerate); "
                         f"need at least {max(n_components, n_clusters)} for {n_components} components "
                         f"and {n_clusters} clusters")
    unit = centre_normalise(flat[keep])
    pca = PCA(n_components=n_components, random_state=seed).fit(unit)
    km = fit_kmeans(unit, n_clusters, seed, n_init=10)
    labels = km.labels_
    cohesion = np.zeros(n_clusters)
    sizes = np.bincount(labels, minlength=n_clusters)
    for c in range(n_clusters):
        members = unit[labels == c]
        mean = members.mean(axis=0)
        norm = np.linalg.norm(mean)
        cohesion[c] = float((members @ (mean / norm)).mean()) if norm > 0 else 0.0
    return KernelPCA(pca.transform(unit), pca.explained_variance_ratio_, pca.components_, keep,
                     int(bad.sum()), labels, cohesion, sizes)


def cluster_templates(result: KernelPCA, kernels, bank=None) -> dict[int, tuple[str, float]]:
    """{cluster: (merged class of the analytic template nearest to its mean direction, their cosine)},
    using `dog.template_bank` of the kernels' size."""
    arr = np.asarray(kernels, dtype=np.float64)
    unit = centre_normalise(arr[result.index].reshape(len(result.index), -1))
    bank = bank if bank is not None else dog.template_bank(arr.shape[1])
    means = np.stack([unit[result.cluster == c].mean(axis=0) for c in range(len(result.sizes))])
    match = dog.nearest_template(means.reshape(-1, *arr.shape[1:]), bank)
    return {c: (str(match.merged[c]), float(match.cosine[c])) for c in range(len(means))}
