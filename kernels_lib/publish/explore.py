"""Browse the classified kernels interactively (notebook 14): choose a model, its weights (trained or
the random-init twin, the untrained control), a kernel size, a layer and a class, and see a random
page of the matching kernels and how the model's layers divide into classes.

The choices come from `selection.kernel_page`, the counts from `tables`, the pictures from `plots`;
this module only wires them to ipywidgets. `KernelExplorer.page`, `figure` and `layer_bars` give
the same views without widgets, for a headless run and the static site.
"""
from __future__ import annotations

import pandas as pd

from .. import plots
from ..analysis import selection, tables
from ..errors import AnalysisError
from ..vocab import display_name, is_random_init


def _weights_word(weights_tag: str) -> str:
    return "random init" if is_random_init(weights_tag) else "trained"


class KernelExplorer:
    """Pages of kernels from a classification (`results.read_results`) and the kernel database it
    was made from (`db`, for the weights); `per_page` kernels a page, drawn with `seed`."""

    def __init__(self, results: pd.DataFrame, db, class_col: str = "merged", per_page: int = 24, seed: int = 0):
        if class_col not in ("merged", "label"):
            raise AnalysisError(f"class_col must be 'merged' (the paper's classes) or 'label' (fine classes), "
                                f"got {class_col!r}")
        self.results, self.db, self.class_col = results, db, class_col
        self.per_page, self.seed = int(per_page), int(seed)
        self.current: selection.KernelPage | None = None    # the page the widget shows
        self.current_figure = None

    def page(self, model=None, weights_tag=None, kernel_size=None, layer=None, kernel_class=None,
             seed: int | None = None) -> selection.KernelPage:
        """The kernels matching a choice (None: the defaults of `selection.kernel_page`)."""
        return selection.kernel_page(self.results, model, weights_tag, kernel_size, layer, kernel_class,
                                     self.class_col, self.per_page, self.seed if seed is None else seed)

    def kernels(self, page: selection.KernelPage):
        """The weights [n, k, k] of a page's kernels, from the kernel database; None for an empty page."""
        return selection.kernels_of(page.rows, self.db) if len(page.rows) else None

    def class_counts(self, model: str, weights_tag: str, kernel_size: int, layer: int | None = None) -> pd.Series:
        """Kernels per class of a model's weights, size and layer (None: all layers), in display order."""
        rows = selection.kernel_page(self.results, model, weights_tag, kernel_size, layer, None, self.class_col, n=None).rows
        return tables.class_counts(rows, self.class_col)

    def figure(self, page: selection.KernelPage, kernels=None):
        """The page's kernels as a grid: layer and channel above each, class and 1 − cos below; None
        when nothing matches."""
        if page.rows.empty:
            return None
        kernels = self.kernels(page) if kernels is None else kernels
        captions = []
        for cls, d in zip(page.rows[self.class_col], page.rows["dissimilarity"]):
            captions.append(display_name(cls) + ("" if pd.isna(d) else f"\n1−cos {float(d):.2f}"))
        titles = [f"L{layer} · ch {channel}" for layer, channel in zip(page.rows["layer"], page.rows["channel"])]
        fig = plots.kernel_grid(kernels, titles=titles, captions=captions, ncols=8, cell=1.25, title=page.title)
        fig.set_figwidth(max(fig.get_figwidth(), 6.0))      # room for the title above a page of few kernels
        return fig

    def layer_bars(self, model: str, kernel_size: int, weights_tags=None):
        """Interactive per-layer class shares (plotly) of a model's k×k kernels: each of its weights
        (default: all of them, trained first, then the random-init twin) in its own panel."""
        rows = self.results[(self.results["model"] == model) & (self.results["kh"] == int(kernel_size))]
        tags = weights_tags or [tag for _, tag in selection.model_weights(rows)]
        panels = {}
        for tag in tags:
            mine = rows[rows["weights_tag"] == tag]
            if mine.empty:
                continue
            props = tables.layer_proportions(mine, model, tag, kernel_size, class_col=self.class_col,
                                             clustering=mine["clustering"].iloc[0])
            panels[f"{tag} ({_weights_word(tag)}), {len(mine)} kernels"] = (props, tables.layer_sizes(mine))
        k = int(kernel_size)
        return plots.interactive_layer_bars(panels, title=f"{model}: share of each class per depthwise layer "
                                                          f"({k}×{k} kernels; hover for numbers)",
                                            xlabel=tables.layer_axis_label(rows))

    # ---- widgets -------------------------------------------------------------------------------
    def _choices(self, model, weights_tag, kernel_size, layer):
        """Dropdown options for the widget: sizes of the weights, layers of that size, classes of that layer."""
        mine = self.results[(self.results["model"] == model) & (self.results["weights_tag"] == weights_tag)]
        sizes = sorted(int(k) for k in mine["kh"].unique())
        at_size = mine[mine["kh"] == kernel_size]
        per_layer = at_size.groupby(["layer", "module"]).size()
        layers = [(f"all layers ({len(at_size)})", None)] + [(f"layer {int(l)} · {module} ({n})", int(l))
                                                             for (l, module), n in per_layer.items()]
        counts = self.class_counts(model, weights_tag, kernel_size, layer) if len(at_size) else pd.Series(dtype=int)
        classes = [(f"every class ({int(counts.sum())})", None)] + [(f"{display_name(c)} ({n})", c)
                                                                    for c, n in counts.items()]
        return sizes, layers, classes

    def widget(self, model=None, weights_tag=None, kernel_size=None, layer=None, kernel_class=None):
        """Dropdowns for model and weights, size, layer and class, a slider for the page size and a
        button for another random page; the page and its figure below them. Needs a running
        kernel (JupyterLab) to react; `current` and `current_figure` hold what it shows."""
        import ipywidgets as w
        from IPython.display import display

        first = self.page(model, weights_tag, kernel_size, layer, kernel_class)
        models = [(f"{m} · {_weights_word(t)} ({n} kernels)", (m, t))
                  for (m, t), n in self.results.groupby(["model", "weights_tag"]).size().items()]
        models.sort(key=lambda o: (o[1][0], is_random_init(o[1][1]), o[1][1]))
        style = {"description_width": "90px"}
        layout = w.Layout(width="460px")
        pick_model = w.Dropdown(options=models, value=(first.model, first.weights_tag), description="model",
                                style=style, layout=layout)
        pick_size = w.Dropdown(description="kernel size", style=style, layout=layout)
        pick_layer = w.Dropdown(description="layer", style=style, layout=layout)
        pick_class = w.Dropdown(description="class", style=style, layout=layout)
        per_page = w.IntSlider(value=self.per_page, min=4, max=96, step=4, description="per page", style=style,
                               layout=layout)
        again = w.Button(description="another random page", icon="refresh")
        summary = w.HTML()
        out = w.Output()
        busy = {"now": False}

        def refill(size=None, layer_=None, cls=None):
            model_, tag = pick_model.value
            sizes, _, _ = self._choices(model_, tag, None, None)
            size = size if size in sizes else sizes[-1]
            _, layers, _ = self._choices(model_, tag, size, None)
            layer_ = layer_ if layer_ in [v for _, v in layers] else None
            _, _, classes = self._choices(model_, tag, size, layer_)
            cls = cls if cls in [v for _, v in classes] else None
            busy["now"] = True
            try:
                pick_size.options = [(f"{k}×{k}", k) for k in sizes]
                pick_size.value = size
                pick_layer.options, pick_layer.value = layers, layer_
                pick_class.options, pick_class.value = classes, cls
            finally:
                busy["now"] = False

        def show(seed=None):
            model_, tag = pick_model.value
            self.per_page = per_page.value
            page = self.page(model_, tag, pick_size.value, pick_layer.value, pick_class.value, seed=seed)
            self.current, self.current_figure = page, self.figure(page)
            summary.value = f"<b>{page.what}</b>"
            with out:
                out.clear_output(wait=True)
                if self.current_figure is None:
                    print("No kernel of this class in this layer: choose another class or layer.")
                else:
                    display(self.current_figure)

        def changed(change):
            if busy["now"]:
                return
            refill(pick_size.value, pick_layer.value, pick_class.value)
            show()

        def another(_):
            self.seed += 1
            show()

        refill(first.kernel_size, first.layer, first.kernel_class)
        for control in (pick_model, pick_size, pick_layer, pick_class, per_page):
            control.observe(changed, names="value")
        again.on_click(another)
        show()
        self.controls = {"model": pick_model, "kernel_size": pick_size, "layer": pick_layer, "class": pick_class,
                         "per_page": per_page, "again": again}
        return w.VBox([w.HBox([w.VBox([pick_model, pick_size, pick_layer]), w.VBox([pick_class, per_page, again])]),
                       summary, out])
