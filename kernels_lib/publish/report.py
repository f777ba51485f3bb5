"""`kernels-lib inspect SOURCE`: one model file, timm name or model set, classified and written up.

`inspect_source` extracts the depthwise kernels (`sources.load_kernels`; a model-set YAML through
`database.extract`), draws the random-init twin beside a single model as model sets do
(`sources.twin_layers`: the untrained control every claim stands beside) and classifies both
(`analysis.results.classify_kernels`: the reference autoencoders under the paper's thresholds for
5×5/7×7, k-means per model for 3×3). `write_report` writes one self-contained HTML page (plotly.js
inline, images as data URIs: it opens offline) and the Parquet rows of the kernels with their labels.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import plots
from ..analysis import results as classification
from ..analysis import selection, tables
from ..errors import AnalysisError
from ..fileio import atomic_write_text
from ..paths import REFERENCE_AUTOENCODERS, file_stem, portable
from ..records import kernel_array, kernel_table
from ..vocab import AUTOENCODER, PAPER_THRESHOLDS, display_name, twin_tag
from .explore import KernelExplorer

#: Kernel sizes with a classifier: 3×3 (k-means), 5×5 and 7×7 (reference autoencoders).
CLASSIFIED_SIZES = (3, *sorted(REFERENCE_AUTOENCODERS))
_KEYS = ["model", "weights_tag", "layer", "channel"]


@dataclass(frozen=True)
class Inspection:
    """What `inspect_source` found: the kernels, their classification (with each kernel's weights in
    a `kernel` column) and what the reader and the twin's draw said."""

    name: str                     # the model's name (a file's stem, a timm architecture) or the set's
    results: pd.DataFrame         # `results.RESULT_COLUMNS` + kernel
    notes: tuple[str, ...]        # the reader's notes, how the twin was drawn, kernels left out
    provenance: dict

    def sizes(self) -> list[int]:
        return sorted(int(k) for k in self.results["kh"].unique())


def _is_model_set(source) -> bool:
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".yaml", ".yml")


def _set_kernels(source, out_dir: Path, seed: int | None, progress: bool) -> tuple[str, pd.DataFrame, list[str]]:
    """(set name, kernels, notes) of every entry of a model-set YAML, extracted (resumably) into out_dir/kernels."""
    from ..database import extract, store, zoo

    model_set = zoo.load_model_set(source, seed=seed)
    report = extract.extract(model_set, out_dir / "kernels", kernel_sizes=list(CLASSIFIED_SIZES), progress=progress)
    notes = [f"{entry}: {note}" for entry, found in report.notes.items() for note in found]
    notes += [f"{entry} failed: {message}" for entry, message in report.failed]
    files = [report.out_dir / store.kernel_file_name(e.model, e.weights_tag) for e in model_set.entries]
    files = [f for f in files if f.is_file()]
    if not files:
        raise AnalysisError(f"no model of the set {model_set.name} could be extracted: {'; '.join(notes)}")
    return model_set.name, store.read_kernels(files), notes


def _model_kernels(source, seed: int | None, layout: str | None) -> tuple[str, pd.DataFrame, list[str]]:
    """(model name, kernels of the model and of its seeded random-init twin, notes) of one model."""
    from ..sources import load_kernels, twin_layers

    trained, loaded = load_kernels(source, layout=layout)
    notes = list(loaded.notes)
    if seed is None:
        return loaded.name, trained, notes
    layers, how = twin_layers(loaded, seed)
    twin = kernel_table(layers, loaded.name, twin_tag(seed), loaded.source, loaded.order)
    notes.append(f"random-init twin ({twin_tag(seed)}): {how}, the same layers and kernel shapes")
    return loaded.name, pd.concat([trained, twin], ignore_index=True), notes


def inspect_source(source, out_dir: Path | str = ".", seed: int | None = 0, kmeans_clusters: int = 10,
                   layout: str | None = None, progress: bool = True) -> Inspection:
    """Extract and classify `source`: a weights file (any `sources.READERS` suffix), a timm name or a
    model-set YAML (extracted into out_dir/kernels, resumably). seed: the twin's seed (None: no twin;
    for a set, it replaces the seed of the set's twin entries). Kernels of sizes without a classifier
    are left out, and counted in the notes."""
    if _is_model_set(source):
        name, kernels, notes = _set_kernels(source, Path(out_dir), seed, progress)
    else:
        name, kernels, notes = _model_kernels(source, seed, layout)
    sizes = kernels["kh"].astype(str) + "×" + kernels["kw"].astype(str)
    other = ~(kernels["kh"].isin(CLASSIFIED_SIZES) & (kernels["kh"] == kernels["kw"]))
    if other.any():
        left = ", ".join(f"{n} {s}" for s, n in sizes[other].value_counts().sort_index().items())
        notes.append(f"left out: {left} kernels (classifiers exist for "
                     f"{', '.join(f'{k}×{k}' for k in CLASSIFIED_SIZES)} only)")
    if other.all():
        raise AnalysisError(f"{name}: no 3×3, 5×5 or 7×7 depthwise kernels to classify (it has "
                            f"{', '.join(sorted(set(sizes)))}); notes: {'; '.join(notes)}")
    rows = classification.classify_kernels(kernels[~other], kmeans_clusters=kmeans_clusters, progress=progress)
    rows = rows.merge(kernels[_KEYS + ["kernel"]], on=_KEYS, how="left", validate="one_to_one")
    provenance = {"inspected": name, "twin_seed": seed, "kmeans_clusters": kmeans_clusters,
                  "autoencoders": {str(k): str(portable(Path(d))) for k, d in REFERENCE_AUTOENCODERS.items()},
                  "thresholds": {str(k): t for k, t in PAPER_THRESHOLDS.items()}}
    return Inspection(name, rows, tuple(notes), provenance)


def clustered_table(inspection: Inspection) -> pd.DataFrame | None:
    """% clustered per model, weights and size (5×5/7×7; None without such kernels)."""
    if not (inspection.results["clustering"] == AUTOENCODER).any():
        return None
    table = tables.clustered_fraction(inspection.results)
    return table[["model", "weights_tag", "kh", "kw", "n_kernels", "n_degenerate", "n_clustered", "clustered_pct",
                  "threshold"]]


def class_shares(inspection: Inspection) -> dict[int, pd.DataFrame]:
    """{kernel size: share of each class per model (rows: trained, then "(random init)")}."""
    return {k: tables.model_comparison(inspection.results, k) for k in inspection.sizes()}


def summary_text(inspection: Inspection) -> str:
    """What `kernels-lib inspect` prints: % clustered per size, then the class shares of each size."""
    parts = [f"{inspection.name}: {len(inspection.results)} kernels classified"]
    parts += [f"note: {note}" for note in inspection.notes]
    clustered = clustered_table(inspection)
    if clustered is not None:
        parts += ["% of 5×5/7×7 kernels clustered (reference autoencoders, 1 − cos below the threshold):",
                  clustered.round(2).to_string(index=False)]
    for k, shares in class_shares(inspection).items():
        how = "k-means clusters named by their nearest template" if k == 3 else "classes"
        parts += [f"{k}×{k} kernels, share of each of the {how}:",
                  shares.rename(columns=display_name).round(3).to_string()]
    return "\n".join(parts)


def _png_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _gallery(pair, per_class: int, seed: int):
    """Trained kernels of each class beside the twin's (each kernel on its own scale centred at zero)."""
    panels = {f"{pair.model} · {pair.weights_tag} (trained)": (kernel_array(pair.rows), pair.rows["merged"])}
    if pair.twin_rows is not None:
        panels[f"{pair.model} · {pair.twin_tag} (random-init twin)"] = (kernel_array(pair.twin_rows),
                                                                        pair.twin_rows["merged"])
    k = pair.kernel_size
    return plots.class_galleries(panels, per_class=per_class, seed=seed,
                                 title=f"{k}×{k} kernels of each class, drawn at random")


def _size_section(inspection: Inspection, explorer: KernelExplorer, k: int, per_class: int, seed: int) -> str:
    how = (f"k-means ({inspection.provenance['kmeans_clusters']} clusters per model, each named by its nearest "
           "template; k-means assigns every kernel, so there is no % clustered)" if k == 3 else
           f"the reference {k}×{k} autoencoder, clustered where 1 − cos < {PAPER_THRESHOLDS[k]}")
    out = [f"<h2>{k}×{k} kernels</h2>", f"<p>Classified by {html.escape(how)}.</p>",
           tables.model_comparison(inspection.results, k).rename(columns=display_name).rename_axis(index=None)
           .to_html(float_format=lambda v: f"{100 * v:.1f}%", classes="shares")]
    for pair in selection.model_pairs(inspection.results, k):
        bars = explorer.layer_bars(pair.model, k, [t for t in (pair.weights_tag, pair.twin_tag) if t])
        div = f"bars-{file_stem(pair.model)}-{file_stem(pair.weights_tag)}-{k}"
        out += [f"<h3>{html.escape(pair.model)} · {html.escape(pair.weights_tag)}</h3>",
                bars.to_html(include_plotlyjs=False, full_html=False, div_id=div),
                f'<img alt="{k}×{k} class gallery of {html.escape(pair.model)}" '
                f'src="{_png_uri(_gallery(pair, per_class, seed))}">']
    return "\n".join(out)


_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
img{max-width:100%;display:block;margin:1em 0}.notes{font-size:13px;color:#555}"""


def report_html(inspection: Inspection, per_class: int = 8, seed: int = 0, progress: bool = True) -> str:
    """The report page: summary tables, then per kernel size the per-layer bars (plotly, network order)
    and the class galleries, trained beside the random-init twin."""
    import plotly.offline

    explorer = KernelExplorer(inspection.results, db=None)
    sections = [_size_section(inspection, explorer, k, per_class, seed)
                for k in tqdm(inspection.sizes(), desc="report", unit="size", disable=not progress)]
    clustered = clustered_table(inspection)
    name = html.escape(inspection.name)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Depthwise kernels of {name}</title><style>{_STYLE}</style>",
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>",
        f"<h1>Depthwise kernels of {name}</h1>",
        "<p>Classes of the paper “Unveiling the Unseen: Identifiable Clusters in Trained Depthwise Convolutional "
        "Kernels” (ICLR 2024). The random-init twin has the same layers with untrained weights: what the trained "
        "kernels show and the twin's do not was learnt.</p>",
        '<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in inspection.notes) + "</ul>",
        "<h2>% clustered</h2>" + (clustered.to_html(index=False, float_format=lambda v: f"{v:.2f}")
                                  if clustered is not None else "<p>No 5×5 or 7×7 kernels.</p>"),
        *sections, "</body></html>", ""])


def write_report(inspection: Inspection, out_dir: Path | str, per_class: int = 8, seed: int = 0,
                 progress: bool = True) -> dict[str, Path]:
    """Write out_dir/<name>.html (the report) and out_dir/<name>.parquet (one row per kernel: its
    metadata, weights and labels), atomically. Returns their paths."""
    out_dir = Path(out_dir)
    stem = file_stem(inspection.name)
    parquet = classification.write_results(inspection.results, out_dir / f"{stem}.parquet", inspection.provenance)
    page = atomic_write_text(out_dir / f"{stem}.html", report_html(inspection, per_class, seed, progress))
    return {"html": page, "parquet": parquet}
