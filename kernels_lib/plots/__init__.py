"""Every figure of the paper, as functions the notebooks call (the notebooks hold no plotting code).

One module per figure family — `style` (palette, colour scales, saving), `kernels` (kernel
grids, galleries, centroids), `dog` (Figure 1), `pca` (Figure 4), `spectrum` (Figures 3/31/32),
`bars` (proportions, % clustered, total activation), `autoencoder` (Figure 16, loss, method
comparison), `fit` (the autoencoder-free cross-check: agreement, σ/θ per layer, coverage),
`training` (% clustered over epochs, runs side by side, the data × weight-decay heatmaps, accuracy
with frozen depthwise kernels) — and the
public functions gathered here. Figures take data (arrays, tables) and return `matplotlib.figure.Figure` or plotly objects; nothing here reads a database or a file.
"""
from .autoencoder import architecture_figure, confusion_heatmap, loss_curve, method_comparison, recall_heatmap
from .bars import (clustered_bars, interactive_layer_bars, proportion_panels, stacked_proportions,
                   total_activation_boxes)
from .dog import dog_family_figure
from .fit import agreement_heatmaps, axis_distance, coverage_curves, sigma_by_layer, theta_by_layer
from .kernels import (SPACER, centroid_figure, class_galleries, class_gallery, class_rows, cluster_legend,
                      cluster_titles, kernel_grid, kernel_rows, regular_vs_depthwise)
from .pca import pca_figure, pca_scatter_html, template_names
from .spectrum import spectrum_strip
from .style import (DIVERGING, PALETTE, class_color, cluster_colour, save_figure, save_html,
                    show_figures_in_notebooks, symmetric_limit)
from .training import (clustered_over_epochs, comparison_table_figure, factorial_heatmap, frozen_accuracy_bars,
                       seed_points)

show_figures_in_notebooks()

__all__ = [
    "DIVERGING", "PALETTE", "SPACER", "architecture_figure", "centroid_figure", "class_color", "class_galleries",
    "class_gallery", "class_rows", "cluster_colour", "cluster_legend", "cluster_titles", "clustered_bars",
    "confusion_heatmap", "dog_family_figure", "interactive_layer_bars", "kernel_grid", "kernel_rows", "loss_curve",
    "method_comparison", "pca_figure",
    "pca_scatter_html", "proportion_panels", "recall_heatmap", "regular_vs_depthwise", "save_figure",
    "save_html", "show_figures_in_notebooks", "spectrum_strip", "stacked_proportions", "symmetric_limit", "template_names",
    "total_activation_boxes", "clustered_over_epochs", "comparison_table_figure",
]
__all__ += ["factorial_heatmap", "frozen_accuracy_bars", "seed_points"]
__all__ += ["agreement_heatmaps", "axis_distance", "coverage_curves", "sigma_by_layer", "theta_by_layer"]
