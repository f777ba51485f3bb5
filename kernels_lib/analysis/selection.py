"""Which kernels a figure shows, chosen from a classification or a kernel database, and said out loud.

A figure asks for "ConvNeXtV2-tiny's trained 7×7 kernels"; a model set may not have them (the
offline set has only ConvNeXtV2-tiny's random-init twin). `select_kernels` takes what the set
has instead and its `Selection` says which kernels they are, for the figure's title; `twins_of`
and `model_pairs` find each trained model's random-init twin, the untrained control every
claim stands beside. `kernels_of` fetches the weights of chosen rows from the database;
<<<<<<< HEAD
`layer_samples` draws random kernels of chosen layers of a model (Figure 2), `gallery_digest` all that
notebook 03 needs of one model, so that models are loaded one at a time. `kernel_page`
=======
`layer_samples` draws random kernels of chosen layers of a model (Figure 2); `trained_table`
finds a model's trained and twin kernels in a set's database (Figure 20). `kernel_page`
>>>>>>> inspect
picks the kernels an explorer shows: one model's weights, one kernel size, a layer and a class
(notebook 14, `kernels_lib.publish.explore`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..database import store
from ..errors import AnalysisError, did_you_mean
from ..records import depthwise_layers
from ..sources.module import regular_layers
from ..vocab import CLASS_ORDER, display_name, is_random_init, merge_class, name_list, random_init_mask


@dataclass(frozen=True)
class Selection:
    """Rows of a classification chosen for a figure, and the words its title needs.

    `what` says which kernels they are ("tf_efficientnet_lite2, trained"; "all trained 5×5
    kernels of 14 models"); `note` says why, when the asked-for model was not available.
    """

    rows: pd.DataFrame
    kernel_size: int
    models: list
    trained: bool
    what: str
    note: str = ""

    @property
    def title(self) -> str:
        return self.what + (f" ({self.note})" if self.note else "")


def _size_rows(results: pd.DataFrame, kernel_size: int) -> pd.DataFrame:
    k = int(kernel_size)
    return results[(results["kh"] == k) & (results["kw"] == k)]


def select_kernels(results: pd.DataFrame, kernel_size: int, model=None, fallback: str = "pool") -> Selection:
    """The trained k×k kernels of `model`, or what the set has instead, said out loud.

    `results`: a classification, or any table with model, weights_tag, kh, kw columns (the
    kernel database's). `model`: a name, or a list of names of which the first one present
    with trained k×k kernels is taken. If none is (e.g. the paper's ConvNeXtV2-tiny in the
    offline set, where only its random-init twin is), `fallback` decides: "pool" takes every
    trained k×k kernel of the set, "largest" the trained model with most k×k kernels. If the
    set has no trained k×k kernels at all, the random-init twins stand in and `trained` is False.
    Raises ValueError when there are no k×k kernels at all.
    """
    candidates = [model] if isinstance(model, str) else list(model or [])
    if fallback not in ("pool", "largest"):
        raise ValueError(f"fallback must be 'pool' or 'largest', got {fallback!r}")
    k = int(kernel_size)
    rows = _size_rows(results, k)
    if rows.empty:
        sizes = sorted({f"{a}×{b}" for a, b in zip(results["kh"], results["kw"])})
        raise ValueError(f"no {k}×{k} kernels in the classification (sizes present: {', '.join(sizes) or 'none'})")
    twin = random_init_mask(rows["weights_tag"])
    trained = rows[~twin]
    present = set(trained["model"])
    for name in candidates:
        if name in present:
            return Selection(trained[trained["model"] == name], k, [name], True, f"{name}, trained")
    note = ""
    if candidates:
        note = f"{' / '.join(candidates)}: no trained {k}×{k} kernels in this set"
    if trained.empty:
        pool = rows[twin]
        stand_in = [name for name in candidates if (pool["model"] == name).any()]
        if stand_in:
            pool = pool[pool["model"] == stand_in[0]]
        note = f"no trained {k}×{k} kernels in this set: random-init twins instead"
        models = sorted(pool["model"].unique())
        return Selection(pool, k, models, False, f"{name_list(models)}, random init", note)
    if fallback == "largest":
        best = trained.groupby("model").size().sort_values(ascending=False, kind="stable").index[0]
        return Selection(trained[trained["model"] == best], k, [best], True, f"{best}, trained", note)
    models = sorted(trained["model"].unique())
    what = (f"{models[0]}, trained" if len(models) == 1 else
            f"all trained {k}×{k} kernels of the set ({len(models)} models)")
    return Selection(trained, k, models, True, what, note)


def twins_of(selection: Selection, results: pd.DataFrame) -> Selection | None:
    """The random-init twins of a trained selection's models (same kernel size): the untrained
    control. None when the selection is not trained or no model has a twin."""
    if not selection.trained:
        return None
    rows = _size_rows(results, selection.kernel_size)
    rows = rows[random_init_mask(rows["weights_tag"]) & rows["model"].isin(selection.models)]
    if rows.empty:
        return None
    models = sorted(rows["model"].unique())
    what = f"{models[0]}, random init" if len(models) == 1 else f"their random-init twins ({len(models)} models)"
    return Selection(rows, selection.kernel_size, models, False, what)


def with_control(selection: Selection, results: pd.DataFrame) -> dict:
    """{"trained": selection, "random init": its twins} — or just {"random init": selection} when the
    selection is itself the random-init stand-in, and no "random init" when no model has a twin."""
    groups = {"trained" if selection.trained else "random init": selection}
    twins = twins_of(selection, results)
    if twins is not None:
        groups["random init"] = twins
    return groups


@dataclass(frozen=True)
class ModelPair:
    """One trained model's k×k classification rows and those of its random-init twin (None without one)."""

    model: str
    weights_tag: str
    kernel_size: int
    rows: pd.DataFrame
    twin_tag: str | None = None
    twin_rows: pd.DataFrame | None = None


def model_pairs(results: pd.DataFrame, kernel_size: int, models=None) -> list[ModelPair]:
    """Every trained model with k×k kernels in `results` (or only those named in `models`), with
    its random-init twin, in name order. A model present only as a twin is left out: it has no
    trained kernels to compare."""
    rows = _size_rows(results, kernel_size)
    wanted = None if not models else set([models] if isinstance(models, str) else models)
    pairs = []
    for (model, tag), sub in rows.groupby(["model", "weights_tag"], sort=True):
        if is_random_init(tag) or (wanted is not None and model not in wanted):
            continue
        twins = rows[(rows["model"] == model) & random_init_mask(rows["weights_tag"])]
        twin_tag = sorted(twins["weights_tag"].unique())[0] if len(twins) else None
        pairs.append(ModelPair(model, tag, int(kernel_size), sub, twin_tag,
                               twins[twins["weights_tag"] == twin_tag] if twin_tag else None))
    if wanted is not None and not pairs:
        raise ValueError(f"none of {sorted(wanted)} has trained {kernel_size}×{kernel_size} kernels in the "
                         f"classification; models present: {sorted(rows['model'].unique())}")
    return pairs


def weight_groups(rows: pd.DataFrame, selection: Selection) -> dict:
    """{"trained": (weights tag, rows), "random init": (twin's tag, rows)} of one model's rows of a
    classification, for the selection's (first) model; only "random init" when the selection
    is itself the random-init stand-in, and no "random init" when the model has no twin."""
    model = selection.models[0]
    mine = rows[(rows["model"] == model) & rows["kh"].isin([selection.kernel_size])]
    tags = sorted(mine["weights_tag"].unique(), key=lambda t: (is_random_init(t), t))
    trained = [t for t in tags if not is_random_init(t)] if selection.trained else []
    twin = [t for t in tags if is_random_init(t)]
    groups = {}
    if trained:
        groups["trained"] = (trained[0], mine[mine["weights_tag"] == trained[0]])
    if twin:
        groups["random init"] = (twin[0], mine[mine["weights_tag"] == twin[0]])
    if not groups:
        raise ValueError(f"no {selection.kernel_size}×{selection.kernel_size} rows of {model} in the classification")
    return groups


def kernels_of(rows: pd.DataFrame, db) -> np.ndarray:
    """The raw weights [N, k, k] of classification rows (one kernel size), read from the kernel
    database `db` (a directory or file of `kernels_lib.database.store`), matched on model, weights,
    layer and channel."""
    if rows.empty:
        raise ValueError("no rows to fetch kernels for")
    shapes = rows[["kh", "kw"]].drop_duplicates()
    if len(shapes) != 1:
        raise ValueError(f"rows hold several kernel sizes {shapes.values.tolist()}; select one size first")
    kh, kw = (int(v) for v in shapes.iloc[0])
    keys = ["model", "weights_tag", "layer", "channel"]
    meta, kernels = store.read_kernel_array(db, (kh, kw), models=sorted(rows["model"].unique()),
                                            weights_tags=sorted(rows["weights_tag"].unique()), columns=keys)
    where = pd.MultiIndex.from_frame(meta[keys]).get_indexer(pd.MultiIndex.from_frame(rows[keys]))
    if (where < 0).any():
        missing = rows[keys][where < 0].drop_duplicates(["model", "weights_tag"])
        raise ValueError(f"{int((where < 0).sum())} classified kernels are not in the database {db} "
                         f"(e.g. {missing.iloc[0].to_dict()}); the classification was made from another "
                         "database: re-run notebook 07 on this one")
    return kernels[where]


def layer_samples(layers, per_row: int = 8, max_rows: int = 6, seed: int = 0, prefix: str = "",
               first_is_stem: bool = False) -> list[tuple[str, np.ndarray]]:
    """Random kernels of up to `max_rows` layers evenly spread over `layers` (each a `records.ConvLayer`).

    Each row is (label, up to `per_row` kernels [n, kh, kw]) drawn without replacement from all
    out×in/groups kernels of one layer. Labels read "<prefix>layer i/N (k×k)"; with
    `first_is_stem` the first layer is marked as the stem (it sees the RGB image).
    """
    layers = list(layers)
    if not layers:
        return []
    rng = np.random.default_rng(seed)
    pick = np.unique(np.round(np.linspace(0, len(layers) - 1, min(max_rows, len(layers)))).astype(int))
    rows = []
    for i in pick:
        layer = layers[i]
        kh, kw = layer.kernel_size
        flat = np.asarray(layer.weight, dtype=np.float64).reshape(-1, kh, kw)
        idx = np.sort(rng.choice(len(flat), min(per_row, len(flat)), replace=False))
        stem = ", stem" if first_is_stem and i == 0 else ""
        rows.append((f"{prefix}layer {i + 1}/{len(layers)}\n({kh}×{kw}{stem})", flat[idx]))
    return rows


@dataclass(frozen=True)
class GalleryDigest:
    """What notebook 03's figures need of one model's layers (Figure 2's rows, the trained side of its
    control, Figure 27's large kernels), drawn once so that the model's weights can be dropped: a set's
    models are then loaded one at a time, and memory does not grow with the set."""

    n_regular: int          # regular (groups=1) conv layers with kernels of at least 3×3
    regular: list           # Figure 2 rows of those layers
    depthwise: list         # Figure 2 rows of the depthwise layers
    control: list           # twice as many depthwise rows, unlabelled: the trained side of the control
    largest: int            # largest depthwise kernel side (0 without depthwise layers)
    sizes: frozenset        # depthwise kernel sizes (kh, kw)
    large: list             # one row per depthwise layer of at least `min_large` (Figure 27)
    n_large: int            # kernels in those layers


def gallery_digest(layers, name: str, per_row: int, rows: int, seed: int, min_large: int = 8) -> GalleryDigest:
    """The `GalleryDigest` of one model's conv layers (`records.ConvLayer`), labelled with its `name`."""
    regular = regular_layers(layers, min_size=3)
    depthwise = depthwise_layers(layers)
    large = [layer for layer in depthwise if max(layer.kernel_size) >= min_large]
    return GalleryDigest(
        n_regular=len(regular),
        regular=layer_samples(regular, per_row, rows, seed, prefix=f"{name}\n",
                              first_is_stem=bool(regular) and regular[0] is layers[0]),
        depthwise=layer_samples(depthwise, per_row, rows, seed, prefix=f"{name}\n"),
        control=layer_samples(depthwise, per_row, 2 * rows, seed),
        largest=max((max(layer.kernel_size) for layer in depthwise), default=0),
        sizes=frozenset(layer.kernel_size for layer in depthwise),
        large=[(f"{name}\n{layer.name} ({layer.kernel_size[0]}×{layer.kernel_size[1]})", kernels)
               for layer in large for _, kernels in layer_samples([layer], per_row, 1, seed)],
        n_large=sum(layer.out_channels for layer in large))


def entry_pairs(model_set) -> list[tuple]:
    """(trained entry, its random-init twin entry or None) of every trained entry of a `zoo.ModelSet`."""
    twins = {e.model: e for e in model_set.entries if e.seed is not None}
    return [(e, twins.get(e.model)) for e in model_set.entries if e.seed is None]


def control_pair(model_set, largest_by_id: dict):
    """(trained entry, twin entry) of the model with the largest depthwise kernels among those that have a
    random-init twin and whose layers were read (`largest_by_id`: entry id → largest depthwise kernel side,
    0 without depthwise layers); None if none."""
    pairs = [(e, twin) for e, twin in entry_pairs(model_set) if twin is not None and largest_by_id.get(e.id)]
    return max(pairs, key=lambda p: largest_by_id[p[0].id]) if pairs else None


def trained_table(db, name: str | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(trained kernels, random-init twin's kernels) of model `name` in the kernel database folder `db`
    (notebook 22). name None: the set's trained model with the most depthwise kernels. The trained
    kernels are None when the folder, the model or its trained weights are absent (the caller then
    falls back to another model); the twin's when the set keeps none. A model with several trained
    weights gives the first by tag."""
    db = Path(db)
    if not db.is_dir():
        return None, None
    if name is None:
        models = store.read_kernels(db, columns=["model", "weights_tag"])
        models = models[~random_init_mask(models["weights_tag"])]
        if models.empty:
            return None, None
        name = models["model"].value_counts().idxmax()
    table = store.read_kernels(db, models=[name])
    twin = random_init_mask(table["weights_tag"])
    tags = sorted(table.loc[~twin, "weights_tag"].unique())
    if not tags:
        return None, None
    return table[table["weights_tag"] == tags[0]], (table[twin] if twin.any() else None)


def read_selection(db, kernel_size: int, weights: str = "trained") -> tuple[Selection, pd.DataFrame, np.ndarray]:
    """The k×k kernels of a database chosen by their weights: "trained" (falling back to the
    random-init twins, said in the selection's note, when the set has no trained k×k kernels),
    "random-init" or "all". Returns (selection, metadata rows, kernels [N, k, k])."""
    if weights not in ("trained", "random-init", "all"):
        raise ValueError(f"weights must be 'trained', 'random-init' or 'all', got {weights!r}")
    meta, kernels = store.read_kernel_array(db, kernel_size, columns=["model", "weights_tag", "kh", "kw", "layer",
                                                                       "channel"])
    if not len(meta):
        raise ValueError(f"the database {db} holds no {kernel_size}×{kernel_size} kernels; choose another kernel size")
    twin = random_init_mask(meta["weights_tag"])
    if weights == "trained":
        chosen = select_kernels(meta, kernel_size)
        keep = ~twin if chosen.trained else twin
    else:
        keep = twin if weights == "random-init" else np.ones(len(meta), dtype=bool)
        models = sorted(meta.loc[keep, "model"].unique())
        if not keep.any():
            raise ValueError(f"no {weights} {kernel_size}×{kernel_size} kernels in {db}")
        chosen = Selection(meta[keep], int(kernel_size), models, weights == "all",
                           f"{name_list(models)}, {weights.replace('-', ' ')}")
    return chosen, meta[keep].reset_index(drop=True), kernels[keep]


@dataclass(frozen=True)
class KernelPage:
    """The kernels an explorer shows: `rows` (at most `n` of the `n_matching` rows that match the
    choice, drawn at random, in layer and channel order) and the choice itself, said in `what`."""

    rows: pd.DataFrame
    n_matching: int
    model: str
    weights_tag: str
    kernel_size: int
    layer: int | None
    kernel_class: str | None
    class_col: str

    @property
    def title(self) -> str:
        """The choice in two lines (a figure's title): which weights, then which kernels and how many."""
        weights = "random init" if is_random_init(self.weights_tag) else "trained"
        layer = "all layers" if self.layer is None else f"layer {self.layer}"
        cls = "every class" if self.kernel_class is None else display_name(self.kernel_class)
        k = self.kernel_size
        return (f"{self.model} ({weights}), {k}×{k}\n{layer}, {cls}: "
                f"{len(self.rows)} of {self.n_matching} kernels")

    @property
    def what(self) -> str:
        return self.title.replace("\n", ", ")


def model_weights(results: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, weights_tag) of a classification in name order, each model's trained weights before its twin."""
    pairs = results[["model", "weights_tag"]].drop_duplicates()
    return sorted(zip(pairs["model"], pairs["weights_tag"]), key=lambda mt: (mt[0], is_random_init(mt[1]), mt[1]))


def _unknown(what: str, value, known) -> AnalysisError:
    known = [str(k) for k in known]
    return AnalysisError(f"no {what} {value!r} in the classification; {did_you_mean(value, known, cutoff=0.6)}choose one of: {', '.join(known)}")


def check_class(kernel_class: str, class_col: str = "merged") -> str:
    """A class name the `class_col` column can hold; an unknown or fine-for-merged name is an error that says what to pass."""
    if class_col not in ("merged", "label"):
        raise AnalysisError(f"class_col must be 'merged' (the paper's classes) or 'label' (fine classes), got {class_col!r}")
    merged = merge_class(kernel_class)        # UnknownClassError for a name the vocabulary lacks
    if class_col == "merged" and kernel_class not in CLASS_ORDER:
        raise AnalysisError(f"{kernel_class!r} is a fine class; with class_col='merged' choose its merged class "
                            f"{merged!r}, or pass class_col='label'")
    return kernel_class


def kernel_page(results: pd.DataFrame, model: str | None = None, weights_tag: str | None = None,
                kernel_size: int | None = None, layer: int | None = None, kernel_class: str | None = None,
                class_col: str = "merged", n: int | None = 24, seed: int = 0) -> KernelPage:
    """The kernels of one model's weights, of one size, in one layer (None: all) and of one class
    (None: all), at most `n` of them drawn at random with `seed` (`n=None`: every one).

    Defaults: `model`, the trained model with most kernels; `weights_tag`, the model's trained
    weights (its random-init twin when it has none); `kernel_size`, the largest the model has.
    A choice the classification does not hold is an `AnalysisError` that lists what it does
    hold; a known class absent from the layer simply matches nothing (`n_matching` 0).
    """
    if results.empty:
        raise AnalysisError("the classification is empty: nothing to browse")
    if n is not None and n < 1:
        raise AnalysisError(f"n (kernels per page) must be at least 1, got {n}")
    if kernel_class is not None:
        check_class(kernel_class, class_col)
    if model is None:
        sizes = results.groupby(["model", "weights_tag"]).size().reset_index(name="n")
        sizes["trained"] = ~random_init_mask(sizes["weights_tag"])
        model = sizes.sort_values(["trained", "n", "model"], ascending=[False, False, True], kind="stable").iloc[0]["model"]
    mine = results[results["model"] == model]
    if mine.empty:
        raise _unknown("model", model, sorted(results["model"].unique()))
    tags = [tag for m, tag in model_weights(mine)]
    if weights_tag is None:
        weights_tag = tags[0]
    elif weights_tag not in tags:
        raise _unknown(f"weights of {model}", weights_tag, tags)
    mine = mine[mine["weights_tag"] == weights_tag]
    sizes = sorted(int(k) for k in mine["kh"].unique())
    if kernel_size is None:
        kernel_size = sizes[-1]
    elif int(kernel_size) not in sizes:
        raise _unknown(f"kernel size of {model} ({weights_tag})", kernel_size, sizes)
    kernel_size = int(kernel_size)
    mine = mine[(mine["kh"] == kernel_size) & (mine["kw"] == kernel_size)]
    if layer is not None:
        layers = sorted(int(v) for v in mine["layer"].unique())
        if int(layer) not in layers:
            raise _unknown(f"layer of {model} ({weights_tag}) with {kernel_size}×{kernel_size} kernels", layer, layers)
        mine = mine[mine["layer"] == int(layer)]
        layer = int(layer)
    if kernel_class is not None:
        mine = mine[mine[class_col] == kernel_class]
    if n is not None and len(mine) > n:
        mine_shown = mine.iloc[np.sort(np.random.default_rng(seed).choice(len(mine), n, replace=False))]
    else:
        mine_shown = mine
    rows = mine_shown.sort_values(["layer", "channel"], kind="stable")
    return KernelPage(rows, len(mine), str(model), str(weights_tag), kernel_size, layer, kernel_class, class_col)
