"""The paper's numbers from a classification (`kernels_lib.analysis.results`), and how tables are written.

Tables 1/3/4 (`clustered_fraction`, with the paper's reported % joined from
data/models/paper.yaml), Figures 7/8 (`layer_proportions`), 11/28 (`model_proportions`,
`model_comparison`) and 10 (`activation_by_class`, `activation_table`). Proportions are
shares of *all* a model's or layer's kernels, so "unclustered" and "degenerate" have their own
columns; `paper_bars` drops them for the paper's bars, which do not reach 1.

An undefined number stays undefined: a model with no usable kernels has no % clustered (NaN,
written as an empty cell), and 3×3 k-means rows have cluster shares, never a % clustered.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..fileio import SIGNIFICANT_DIGITS, atomic_write, atomic_write_text
from ..vocab import (AUTOENCODER, DEGENERATE, UNCLUSTERED, is_random_init, model_label, order_classes,
                     random_init_mask)

#: Proportion columns that are not clusters: the paper's bars leave them out, so bars do not reach 1.
NOT_CLUSTERED = (UNCLUSTERED, DEGENERATE)


def paper_numbers(model_set: str = "paper") -> pd.DataFrame:
    """The % clustered the paper reports (Tables 1/3/4), from the model set's `paper:` fields.

    One row per paper row: model, weights_tag, table, row, clustered_pct.
    """
    from ..database import zoo

    rows = [{"model": e.model, "weights_tag": e.weights_tag, "table": r["table"], "row": r["row"],
             "clustered_pct": float(r["clustered_pct"])}
            for e in zoo.load_model_set(model_set).entries for r in e.paper]
    return pd.DataFrame(rows, columns=["model", "weights_tag", "table", "row", "clustered_pct"])


def _arch(model: str) -> str:
    """timm's "tf_" prefix marks TensorFlow-ported weights of the same architecture."""
    return model[3:] if model.startswith("tf_") else model


def _paper_columns(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Add paper_pct/paper_row (same weights) and paper_related (same architecture, other weights)."""
    pct, row, related = [], [], []
    for model, tag, k in zip(frame["model"], frame["weights_tag"], frame["kh"]):
        table_no = {5: 3, 7: 4}.get(int(k))
        cand = paper[paper["table"] == table_no] if table_no else paper.iloc[:0]
        exact = cand[(cand["model"] == model) & (cand["weights_tag"] == tag)]
        pct.append(float(exact["clustered_pct"].iloc[0]) if len(exact) else np.nan)
        row.append("; ".join(exact["row"]) if len(exact) else "")
        if is_random_init(tag) or len(exact):
            related.append("")
            continue
        same_arch = cand[cand["model"].map(_arch) == _arch(model)].drop_duplicates(["model", "weights_tag"])
        related.append("; ".join(f"{m}.{t}: {p:.2f}" for m, t, p in
                                 zip(same_arch["model"], same_arch["weights_tag"], same_arch["clustered_pct"])))
    return frame.assign(paper_pct=pct, paper_row=row, paper_related=related)


def clustered_fraction(results: pd.DataFrame, paper: pd.DataFrame | None = None,
                       classified_by: dict | None = None) -> pd.DataFrame:
    """Tables 1/3/4: per model, weights and kernel size, the % of kernels clustered by the autoencoder.

    clustered_pct = clustered / (kernels − degenerate) · 100, NaN (undefined) for a model with no
    usable kernel; degenerate kernels are counted in their own column. `paper` (default:
    `paper_numbers()`) adds the paper's % where the same weights are in the paper (paper_pct,
    paper_row) and, for other weights of the same architecture, the paper's rows as text
    (paper_related). `classified_by` ({kernel size: words}, e.g. `method.Choice.what`) adds an
    `autoencoder` column saying which autoencoder classified each row. k-means rows (3×3) are not
    counted: k-means assigns every kernel, so its "% clustered" would be 100 % by construction (see
    `model_proportions(..., clustering="kmeans")`).
    """
    sub = results[results["clustering"] == AUTOENCODER]
    if sub.empty:
        raise AnalysisError(f"no autoencoder rows (5×5, 7×7 kernels) in the results (methods present: "
                            f"{sorted(results['clustering'].unique())}); 3×3 k-means rows have cluster shares, "
                            "not a % clustered")
    g = sub.groupby(["model", "weights_tag", "kh", "kw"], sort=True)
    table = pd.DataFrame({
        "n_kernels": g.size(),
        "n_degenerate": g["degenerate"].sum(),
        "n_clustered": g["clustered"].sum(),
    }).reset_index()
    usable = table["n_kernels"] - table["n_degenerate"]
    table["clustered_pct"] = (100.0 * table["n_clustered"] / usable.where(usable > 0)).astype(float)
    table["random_init"] = random_init_mask(table["weights_tag"])
    table["threshold"] = g["threshold"].first().to_numpy(dtype=float)
    table = _paper_columns(table, paper_numbers() if paper is None else paper)
    if classified_by:
        table["autoencoder"] = table["kh"].map({int(k): v for k, v in classified_by.items()})
    return table.astype({"n_kernels": "int64", "n_degenerate": "int64", "n_clustered": "int64"})


def trained_vs_random_init(fraction: pd.DataFrame) -> pd.DataFrame:
    """Each trained model's % clustered beside its random-init twin's (the untrained control) and the paper's."""
    trained = fraction[~fraction["random_init"]]
    twins = fraction[fraction["random_init"]]
    pairs = trained.merge(twins[["model", "kh", "clustered_pct"]], on=["model", "kh"], how="left",
                          suffixes=("", "_random_init"))
    return pairs[["model", "weights_tag", "kh", "n_kernels", "clustered_pct", "clustered_pct_random_init",
                  "paper_pct"]].reset_index(drop=True)


def _select(results, clustering, kernel_size):
    sub = results[results["clustering"] == clustering]
    if kernel_size is not None:
        sub = sub[sub["kh"] == int(kernel_size)]
    return sub


def _shares(keys: pd.Series, classes: pd.Series) -> pd.DataFrame:
    counts = pd.crosstab(keys, classes)
    props = counts.div(counts.sum(axis=1), axis=0)
    return props[order_classes(props.columns)].rename_axis(columns=None)


def layer_proportions(results: pd.DataFrame, model: str, weights_tag: str | None = None,
                      kernel_size: int | None = None, class_col: str = "merged",
                      clustering: str = AUTOENCODER) -> pd.DataFrame:
    """Figures 7/8: per depthwise layer (rows), the share of each class among *all* its kernels.

    Columns are the classes in display order, then "unclustered" and "degenerate" where present,
    so each row sums to 1; `paper_bars` drops those two columns for the paper's bars.
    """
    sub = _select(results[results["model"] == model], clustering, kernel_size)
    tags = sorted(sub["weights_tag"].unique())
    if weights_tag is None:
        if len(tags) > 1:
            raise AnalysisError(f"model {model!r} has several weights in the results ({tags}); pass weights_tag=")
    else:
        sub = sub[sub["weights_tag"] == weights_tag]
    if sub.empty:
        raise AnalysisError(f"no {clustering} rows for model {model!r} (weights {weights_tag}, size {kernel_size}); "
                            f"models present: {sorted(results['model'].unique())}")
    return _shares(_layer_keys(sub), sub[class_col])


def _by_name(rows: pd.DataFrame) -> bool:
    return "layer_order" in rows and bool((rows["layer_order"] == "name").any())


def _layer_keys(rows: pd.DataFrame) -> pd.Series:
    """The depthwise layer index, or — where the file keeps no order — the layer's name, in name order."""
    if not _by_name(rows):
        return rows["layer"]
    names = rows.drop_duplicates("layer").sort_values("layer")["module"].tolist()
    return pd.Series(pd.Categorical(rows["module"], categories=names, ordered=True), index=rows.index, name="layer")


def layer_sizes(rows: pd.DataFrame) -> pd.Series:
    """Kernels per depthwise layer, keyed as `layer_proportions` keys its rows (the layer index, or the
    layer's name where the file keeps no order)."""
    return _layer_keys(rows).value_counts(sort=False).sort_index()


def layer_axis_label(rows: pd.DataFrame) -> str:
    """The x axis of a per-layer figure: a layer index, or names when the true depth cannot be known."""
    if _by_name(rows):
        return "depthwise layer, by name (the file keeps no layer order: the true depth is unknown)"
    return "depthwise layer (index among all depthwise layers of the network)"


def class_counts(rows: pd.DataFrame, class_col: str = "merged") -> pd.Series:
    """Kernels per class among `rows`, classes in display order (those with no kernel left out)."""
    counts = rows[class_col].value_counts()
    return counts[order_classes(counts.index)].rename("kernels").rename_axis(class_col)


def model_keys(rows: pd.DataFrame) -> dict:
    """{(model, weights tag): its row name}: `vocab.model_label` ("arch.tag", or a file's stem alone),
    unless two weights of the rows would share a name (mnv2.onnx and mnv2.tflite): those keep "model.tag"."""
    pairs = rows[["model", "weights_tag"]].drop_duplicates()
    short = {(m, t): model_label(m, t) for m, t in zip(pairs["model"], pairs["weights_tag"])}
    taken = pd.Series(list(short.values())).value_counts()
    return {(m, t): name if taken[name] == 1 else f"{m}.{t}" for (m, t), name in short.items()}


def model_proportions(results: pd.DataFrame, kernel_size: int | None = None, class_col: str = "merged",
                      clustering: str = AUTOENCODER) -> pd.DataFrame:
    """Figures 11/28: per model (rows named by `model_keys`), the share of each class among all its kernels.

    With clustering="kmeans" (3×3 kernels) these are the cluster shares of Appendix N's k-means.
    """
    sub = _select(results, clustering, kernel_size)
    if sub.empty:
        raise AnalysisError(f"no {clustering} rows of size {kernel_size} in the results")
    keys = model_keys(sub)
    names = pd.Series([keys[pair] for pair in zip(sub["model"], sub["weights_tag"])], index=sub.index, name="model")
    return _shares(names, sub[class_col])


def paper_bars(props: pd.DataFrame) -> pd.DataFrame:
    """Proportions without the "unclustered"/"degenerate" columns: the height of a bar is then the
    share of its kernels that were clustered, as in the paper's Figures 7/8/11."""
    return props.drop(columns=[c for c in NOT_CLUSTERED if c in props.columns])


def model_comparison(results: pd.DataFrame, kernel_size: int, class_col: str = "merged") -> pd.DataFrame:
    """Figures 11/28: `model_proportions` with rows labelled by model name, each trained model
    followed by its random-init twin ("… (random init)"); a model with several trained weights
    names them."""
    rows = results[(results["kh"] == int(kernel_size)) & (results["kw"] == int(kernel_size))]
    clustering = rows["clustering"].iloc[0] if len(rows) else AUTOENCODER
    props = model_proportions(rows, kernel_size=kernel_size, class_col=class_col, clustering=clustering)
    pairs = rows[["model", "weights_tag"]].drop_duplicates()
    tags_per_model = pairs[~random_init_mask(pairs["weights_tag"])].groupby("model").size()
    keys = model_keys(pairs)
    order, names = [], []
    for model, tag in sorted(zip(pairs["model"], pairs["weights_tag"]), key=lambda mt: (mt[0], is_random_init(mt[1]), mt[1])):
        order.append(keys[model, tag])
        if is_random_init(tag):
            names.append(f"{model} (random init)")
        else:
            names.append(model + (f" [{tag}]" if tags_per_model.get(model, 0) > 1 else ""))
    out = props.loc[order]
    out.index = pd.Index(names, name="model")
    return out


def activation_by_class(results: pd.DataFrame, class_col: str = "merged", clustering: str = AUTOENCODER,
                        include_unclustered: bool = False, value_col: str = "total_activation") -> pd.DataFrame:
    """Figure 10: total activation (sum of weights) per class: count, mean, std and quartiles.

    Degenerate kernels are left out (a NaN kernel has no sum to show); unclustered ones too
    unless asked.
    """
    sub = results[(results["clustering"] == clustering) & ~results["degenerate"].astype(bool)]
    if not include_unclustered:
        sub = sub[sub["clustered"].astype(bool)]
    if sub.empty:
        raise AnalysisError("no clustered kernels to summarise")
    g = sub.groupby(class_col)[value_col]
    stats = pd.DataFrame({
        "n": g.size(), "mean": g.mean(), "std": g.std(ddof=0),
        "q25": g.quantile(0.25), "median": g.median(), "q75": g.quantile(0.75),
    })
    return stats.loc[order_classes(stats.index)].rename_axis("class").reset_index()


def activation_table(selections: dict, normalise: bool = False, include_unclustered: bool = False) -> pd.DataFrame:
    """Figure 10's data: the clustered, non-degenerate rows of each selection ({group: selection.Selection}),
    with a `group` column and `activation`: the sum of the weights Σᵢ wᵢ, or with `normalise`
    the scale-free Σᵢ wᵢ / ‖w‖₂ (in [−k, k]), which kernels of differently scaled models share."""
    parts = []
    for group, sel in selections.items():
        rows = sel.rows[~sel.rows["degenerate"].astype(bool)]
        if not include_unclustered:
            rows = rows[rows["clustered"].astype(bool)]
        value = rows["total_activation"].to_numpy(dtype=float)
        if normalise:
            value = value / rows["norm"].to_numpy(dtype=float)
        parts.append(rows.assign(group=group, activation=value))
    if not parts:
        raise AnalysisError("no selections given")
    return pd.concat(parts, ignore_index=True)


def activation_of(results: pd.DataFrame, kernel_size: int, model=None, fallback: str = "pool",
                  normalise: bool = False):
    """Figure 10's data for one kernel size: (the `selection.Selection` shown, {group: selection} with the
    random-init twins as the control group, their `activation_table`). `model`/`fallback` as in
    `selection.select_kernels`."""
    from .selection import select_kernels, with_control

    chosen = select_kernels(results, kernel_size, model, fallback=fallback)
    groups = with_control(chosen, results)
    return chosen, groups, activation_table(groups, normalise=normalise)


def activation_stats(table: pd.DataFrame, class_col: str = "merged") -> dict:
    """{group: count, mean, std and quartiles of `activation` per class} of an `activation_table`."""
    return {str(group): activation_by_class(rows, class_col=class_col, clustering=rows["clustering"].iloc[0],
                                            include_unclustered=True, value_col="activation")
            .set_index("class").to_dict(orient="index")
            for group, rows in table.groupby("group", sort=False)}


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, missing values as None (for a notebook's results JSON)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A DataFrame as a Markdown table; missing numbers are empty cells."""
    def fmt(v):
        if v is None or v is pd.NA:
            return ""
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|")
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def save_table(df: pd.DataFrame, name: str, output_dir: Path | str, floatfmt: str = ".2f") -> dict:
    """Write a table as `<output_dir>/tables/<name>.csv` (floats to `fileio.SIGNIFICANT_DIGITS`, so float noise
    does not change the bytes) and `.md` (atomically); returns both paths."""
    tables = Path(output_dir) / "tables"
    csv = atomic_write(tables / f"{name}.csv",
                       lambda tmp: df.to_csv(tmp, index=False, float_format=f"%.{SIGNIFICANT_DIGITS}g"))
    md = atomic_write_text(tables / f"{name}.md", markdown_table(df, floatfmt))
    return {"csv": str(csv), "md": str(md)}
