"""Depthwise kernels frozen to a fixed bank while the rest of the network trains (issue 18, item 3).

The authors' follow-ups (arXiv 2412.16751, 2509.11711) report that depthwise-separable networks whose
depthwise kernels are frozen to a few universal filters train almost as well as learned ones, and that
filters learned on larger, more diverse data transfer better. Here the question is asked of the CPU-scale
`DepthwiseNet` of the factorial study (`study.study_config`: the default 7×7 run, 100 steps) with its
depthwise kernels

- **learned** — the baseline;
- **master-keys** — frozen to the offline set's 8 fitted "master key" prototypes of 7×7 kernels (notebook
  17: `masterkeys.fitted_prototypes` and `greedy_cover` on the trained 7×7 kernels of the set — PP-OCRv6's
  text detector from its pinned wheel, then the committed `kaiming-7x7` run — rebuilt from those committed
  inputs, no kernel database needed; `master_keys` returns the greedy gains, which equal notebook 17's);
- **scale-space** — frozen to Lindeberg's idealised discrete scale-space filters (`scale_space_bank`);
- **random** — frozen to 8 random Gaussian kernels (drawn with the run's seed), assigned and scaled
  exactly as the master keys: the control for "any 8 fixed filters";
- **from-<data>** — frozen to the depthwise kernels of this study's learned run on other data with the
  same seed, layer by layer and channel by channel (the transfer). Those sources trained only the study's
  100 steps, so their kernels are still close to their initialisation; hence also
- **from-<committed run>** — frozen to the kernels of a committed 2,500-step default run (`COMMITTED`:
  `kaiming-7x7` on photographs, `iid-7x7` on i.i.d. noise; seed 0, for every target seed), whose kernels
  are DoG-like (notebooks 18–20). On the photographs `from-kaiming-7x7` is "frozen to what a long run on
  the same data learned".

**Assignment of a bank of K filters to the C channels of a depthwise layer** (`assign`): channel c gets
filter c mod K, copy j = c // K of it rotated by 90°·(j mod 4) and negated when (j // 4) is odd. With
K = 8 and C = 48 every prototype appears six times: as drawn, rotated by 90°, 180°, 270°, then negated and
negated-rotated by 90° (notebook 17 matches a prototype up to sign, |cos|). Every layer gets the same
assignment. Transferred kernels keep their source's channel.

**Scale**: every frozen kernel is scaled to L2 norm 1/√3 (`INIT_NORM`), the expected norm of the learned
net's initial kernels: PyTorch draws each of the k² weights from U(−1/k, 1/k), so E‖w‖² = k²·(1/k)²/3 = 1/3
for any k (single initial kernels scatter about ±6 % around it). So a frozen net starts with the same
per-channel gain as the learned one and the conditions differ only in the shapes of the kernels. The
random control therefore has the master keys' norms, channel by channel.

**Frozen** means `requires_grad = False` on the depthwise weights only: their biases, the stem, the pointwise
convs, the batch norms and the head train, and AdamW's weight decay (which skips parameters without a
gradient) does not shrink the frozen kernels. Each run records the largest change of its frozen weights
(0.0 when they stayed put).

`run_frozen` trains every (seed, target, condition) not yet in its JSON file and rewrites the file
atomically after each run, so a stopped study resumes; sources train first. `frozen_frame` and
`accuracy_table` read it back for the notebook.

    python -m kernels_lib.training.frozen            # the committed default, data/training/frozen/frozen.json
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import nets
from ..analysis import masterkeys
from ..database.store import read_kernels
from ..errors import KernelsLibError, did_you_mean
from ..fileio import jsonable, write_json
from ..method.scale_space import discrete
from ..paths import TRAINING_DIR, cache_dir
from ..vocab import paper_threshold
from .datasets import training_data
from .loop import build_model, load_run, train
from .study import SETTINGS, kernel_stack, real_kernels, study_config

TARGETS = ("photos", "fashion-mnist")
SOURCES = ("photos", "fashion-mnist", "photos-iid")
SEEDS = (0, 1)
#: The default runs' AdamW weight decay (the factorial study's middle column).
WEIGHT_DECAY = 0.5
LEARNED = "learned"
BANKS = ("master-keys", "scale-space", "random")
TRANSFER = "from-"
#: Committed default runs (data/training/<run>) whose trained kernels are transfer sources too.
COMMITTED = ("kaiming-7x7", "iid-7x7")
INIT_NORM = 1.0 / math.sqrt(3.0)
N_MASTER_KEYS = 8
#: Notebook 17's fitted pool: the fitted templates of up to 3,000 kernels drawn with seed 0.
N_FITTED, FIT_SEED = 3000, 0
#: The committed run whose final kernels join PP-OCRv6's in the offline set's trained 7×7 corpus.
MASTER_KEY_RUN = TRAINING_DIR / "kaiming-7x7"
#: Variances s = σ² (px²) of the scale-space bank: a sharp and a broad scale of a 7×7 kernel.
SCALES = (0.5, 2.0)
FROZEN_DIR = TRAINING_DIR / "frozen"
RESULTS_FILE = FROZEN_DIR / "frozen.json"


class FrozenError(KernelsLibError, ValueError):
    """A bank or study file that cannot serve as asked; the message says what to do."""


def conditions(target: str, sources=SOURCES, committed=COMMITTED) -> list[str]:
    """The conditions a target data set is trained under: learned, the three banks, a transfer from every
    other source's learned run, and one from each committed run."""
    return [LEARNED, *BANKS, *(f"{TRANSFER}{s}" for s in [*(s for s in sources if s != target), *committed])]


@lru_cache(maxsize=None)
def _committed(run: str) -> tuple[dict, tuple[np.ndarray, ...]]:
    result = load_run(TRAINING_DIR / run)
    final = result.snapshots[-1].clustering if result.snapshots else {}
    k = result.config.network_options()["kernel_size"]
    record = {"data": result.config.data, "seed": result.config.seed, "epochs": result.config.epochs,
              "steps": result.history[-1]["step"], "weight_decay": result.config.weight_decay,
              "clustered": final.get(f"{k}x{k}", {}).get("clustered")}
    return record, tuple(depthwise_kernels(result.model))


def committed_source(run: str) -> tuple[dict, list[np.ndarray]]:
    """A committed run's final depthwise kernels per layer and what it was (data, seed, steps, % clustered)."""
    if not (TRAINING_DIR / run).is_dir():
        known = sorted(p.name for p in TRAINING_DIR.iterdir() if (p / "checkpoint.pt").is_file())
        raise FrozenError(f"no committed run {run!r} in {TRAINING_DIR}; {did_you_mean(run, known)}choose from {known}")
    record, kernels = _committed(run)
    return dict(record), [k.copy() for k in kernels]


def assign(bank, channels: int, norm: float = INIT_NORM) -> np.ndarray:
    """[channels, k, k]: channel c gets bank[c mod K], copy j = c // K rotated by 90°·(j mod 4) and negated
    when (j // 4) is odd, scaled to L2 norm `norm` (see the module)."""
    bank = np.asarray(bank, dtype=np.float64)
    if bank.ndim != 3 or not len(bank) or bank.shape[1] != bank.shape[2]:
        raise FrozenError(f"a bank must be [K, k, k] with K >= 1, got shape {bank.shape}")
    norms = np.sqrt((bank ** 2).sum(axis=(1, 2)))
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise FrozenError("a bank kernel is all zeros or not finite: it cannot be scaled to a norm; drop it")
    out = []
    for c in range(int(channels)):
        copy = c // len(bank)
        kernel = np.rot90(bank[c % len(bank)] / norms[c % len(bank)], k=copy % 4)
        out.append(-kernel if (copy // 4) % 2 else kernel)
    return (np.stack(out) * norm).astype(np.float32)


@lru_cache(maxsize=None)
def _master_keys(kernel_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    final = load_run(MASTER_KEY_RUN).snapshots[-1].path
    corpus = np.concatenate([real_kernels(), kernel_stack(read_kernels(final), kernel_size)])
    candidates = masterkeys.fitted_prototypes(corpus, N_FITTED, seed=FIT_SEED)
    cover = masterkeys.greedy_cover(corpus, candidates, paper_threshold(kernel_size), k_max=n)
    return candidates[cover.picks], cover.gains / cover.n_kernels


def master_keys(kernel_size: int = 7, n: int = N_MASTER_KEYS) -> tuple[np.ndarray, np.ndarray]:
    """Notebook 17's first `n` fitted prototypes of the offline set's trained 7×7 kernels [n, 7, 7] and the
    share of the corpus each newly covers. The corpus is read in the kernel database's order (PP-OCRv6's
    file sorts before the run's), which decides greedy ties, so the picks are notebook 17's."""
    if kernel_size != 7:
        raise FrozenError(f"the offline set's master keys are 7×7 (the trained corpus this module rebuilds); "
                          f"got kernel_size {kernel_size}: use the 7×7 network")
    kernels, gains = _master_keys(kernel_size, int(n))
    return kernels.copy(), gains.copy()


def scale_space_bank(k: int = 7, scales=SCALES) -> tuple[np.ndarray, list[str]]:
    """Lindeberg's discrete scale-space filters at each variance s of `scales` ([13·len(scales), k, k] and
    their names): the discrete Gaussian T, T − ½∇²T, centred first differences at 0°, 45°, 90°, 135°,
    one-sided differences δ⁺x, δ⁻x, δ⁺y, δ⁻y, and the second differences δxx, δyy, δxy."""
    kernels, names = [], []

    def add(name, kernel):
        kernels.append(np.asarray(kernel).reshape(k, k))
        names.append(f"{name} s={s:g}")

    for s in scales:
        add("T", discrete("", k, scale=s))
        add("T−½∇²T", discrete("", k, scale=s, laplacian=0.5))
        for theta in (0, 45, 90, 135):
            add(f"δ@{theta}°", discrete("d1", k, scale=s, theta=theta))
        for difference, sign in (("forward", "⁺"), ("backward", "⁻")):
            for theta, axis in ((0, "x"), (90, "y")):
                add(f"δ{sign}{axis}", discrete("d1", k, scale=s, theta=theta, difference=difference))
        add("δxx", discrete("d2", k, scale=s, theta=0))
        add("δyy", discrete("d2", k, scale=s, theta=90))
        add("δxy", discrete("saddle", k, scale=s, theta=45))
    return np.stack(kernels), names


def random_bank(n: int, k: int, seed: int) -> np.ndarray:
    """n k×k kernels of i.i.d. standard Gaussian weights, drawn with `seed` (the random control's bank)."""
    return np.random.default_rng([int(seed), 24]).standard_normal((int(n), int(k), int(k)))


def depthwise_kernels(model) -> list[np.ndarray]:
    """The depthwise kernels of each layer of `model` as [C, k, k] arrays, in order."""
    return [conv.weight.detach().cpu().numpy()[:, 0].copy() for _, conv in nets.depthwise_convs(model)]


def freezer(kernels_per_layer, description: dict):
    """A `loop.train` `prepare` that sets every depthwise layer's kernels (one [C, k, k] per layer) and freezes
    them (`requires_grad = False`, the rest trains); it returns `description` for the run's provenance."""
    def prepare(model) -> dict:
        convs = nets.depthwise_convs(model)
        if len(convs) != len(kernels_per_layer):
            raise FrozenError(f"{len(kernels_per_layer)} layers of kernels for {len(convs)} depthwise layers")
        with torch.no_grad():
            for (name, conv), kernels in zip(convs, kernels_per_layer):
                if tuple(kernels.shape) != (conv.out_channels, *conv.kernel_size):
                    raise FrozenError(f"{name} holds {conv.out_channels} kernels of {tuple(conv.kernel_size)}, the "
                                      f"bank gives {tuple(kernels.shape)}; use a network of the bank's size")
                conv.weight.copy_(torch.as_tensor(np.asarray(kernels), dtype=conv.weight.dtype).view_as(conv.weight))
                conv.weight.requires_grad_(False)
        return description
    return prepare


def bank_kernels(condition: str, seed: int, k: int) -> np.ndarray:
    """The bank of one bank condition (before `assign`): master keys, scale-space filters or random kernels."""
    if condition == "master-keys":
        return master_keys(k)[0]
    if condition == "scale-space":
        return scale_space_bank(k)[0]
    if condition == "random":
        return random_bank(N_MASTER_KEYS, k, seed)
    raise FrozenError(f"no bank {condition!r}; {did_you_mean(condition, BANKS)}the banks are {BANKS}")


def study_recipe(weight_decay: float = WEIGHT_DECAY, settings: dict | None = None, train_changes: dict | None = None,
           data_options: dict | None = None) -> dict:
    """What every run of a study shares: the AdamW weight decay, the study's steps (`settings`, default
    `study.SETTINGS`), further `TrainConfig` fields (`train_changes`, e.g. a tiny network in tests) and
    options per data set ({data: options}, over the factorial study's)."""
    return {"weight_decay": float(weight_decay), "settings": dict(settings or SETTINGS),
            "train_changes": dict(train_changes or {}), "data_options": dict(data_options or {})}


def _config(data: str, condition: str, seed: int, recipe: dict):
    config = study_config(data, recipe["weight_decay"], seed, recipe["settings"])
    options = {**config.data_options, **recipe["data_options"].get(data, {})}
    return dataclasses.replace(config, run=f"{condition}-{data}-seed{seed}", data_options=options,
                               **recipe["train_changes"])


def _run_dir(runs_dir: Path, config) -> Path:
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return runs_dir / f"{config.run}-{digest}"


def _cosine_to_start(final: list[np.ndarray], start: list[np.ndarray]) -> float:
    a, b = (np.concatenate([x.reshape(len(x), -1) for x in side]).astype(np.float64) for side in (final, start))
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return round(float(np.median(cos)), 6)


def run_one(data, target: str, condition: str, seed: int, recipe: dict, runs_dir: Path, sources: dict,
            committed=()) -> tuple[dict, list[np.ndarray]]:
    """Train one condition on one target (sources: {data or committed run: kernels per layer}, the learned
    ones of this seed) and measure it: (the run's record, its final depthwise kernels per layer)."""
    config = _config(target, condition, seed, recipe)
    probe = nets.create_model(config.model, 2, **config.network_options())
    layers = [(conv.out_channels, conv.kernel_size[0]) for _, conv in nets.depthwise_convs(probe)]
    prepare, frozen = None, None
    if condition in BANKS:
        bank = bank_kernels(condition, seed, layers[0][1])
        frozen = [assign(bank, channels) for channels, _ in layers]
        prepare = freezer(frozen, {"frozen": condition, "bank_size": len(bank), "norm": INIT_NORM})
    elif condition.startswith(TRANSFER):
        source = condition[len(TRANSFER):]
        if source not in sources:
            raise FrozenError(f"{condition}: neither a learned run on {source!r} with seed {seed} in this study nor "
                              f"a committed run given; {did_you_mean(source, sources)}or add {source!r} to the "
                              "sources or to the committed runs")
        frozen = [np.stack([assign(kernel[None], 1)[0] for kernel in layer]) for layer in sources[source]]
        origin = f"data/training/{source}" if source in committed else f"{LEARNED}-{source}-seed{seed}"
        prepare = freezer(frozen, {"frozen": condition, "source_run": origin, "norm": INIT_NORM})
    elif condition != LEARNED:
        known = [LEARNED, *BANKS, *(f"{TRANSFER}{s}" for s in sources)]
        raise FrozenError(f"unknown condition {condition!r}; {did_you_mean(condition, known)}use {LEARNED!r}, one of "
                          f"{BANKS} or '{TRANSFER}<data>'")
    result = train(config, run_dir=_run_dir(runs_dir, config), data=data, progress=False, resume=True,
                   prepare=prepare)
    final = depthwise_kernels(result.model)
    start = frozen if frozen is not None else depthwise_kernels(build_model(config, data.n_classes))
    last = result.history[-1]
    clustering = result.snapshots[-1].clustering.get(f"{layers[0][1]}x{layers[0][1]}", {})
    record = {"target": target, "condition": condition, "seed": int(seed), "run": config.run,
              "steps": config.epochs * result.provenance["steps_per_epoch"], "weight_decay": config.weight_decay,
              "val_accuracy": last["val_accuracy"], "train_accuracy": last["train_accuracy"],
              "n_validation": data.n_validation, "n_classes": data.n_classes,
              "clustered": clustering.get("clustered"), "cosine_to_start": _cosine_to_start(final, start),
              "frozen_max_change": None if frozen is None else float(max(
                  np.abs(f - s).max() for f, s in zip(final, frozen))),
              "train_seconds": round(sum(h.get("train_seconds", 0.0) for h in result.history), 1),
              "train_cpu_seconds": round(sum(h.get("train_cpu_seconds", 0.0) for h in result.history), 1),
              "load_average": round(float(np.mean([h["load_average"] for h in result.history if "load_average" in h])), 2)}
    return record, final


def _key(record: dict) -> tuple:
    return record["target"], record["condition"], int(record["seed"])


def _head(recipe: dict, committed) -> dict:
    """What every run of a study file shares; a file made with another head is refused."""
    config = _config(TARGETS[0], LEARNED, 0, recipe)
    k = config.network_options()["kernel_size"]
    keys, gains = master_keys(k)
    return {"recipe": recipe, "network": config.network_options(), "init_norm": INIT_NORM,
            "master_keys": {"kernels": keys, "gains": gains,
                            "corpus": f"PP-OCRv6 det 7×7 kernels, then {MASTER_KEY_RUN.name}'s final ones",
                            "n_fitted": N_FITTED, "seed": FIT_SEED, "threshold": paper_threshold(k)},
            "scale_space": {"names": scale_space_bank(k)[1], "scales": list(SCALES)},
            "committed_sources": {run: committed_source(run)[0] for run in committed}}


def _read(path: Path, head: dict) -> dict:
    head = jsonable(head)                   # as the file holds it (floats to 12 significant digits)
    if path.is_file():
        study = json.loads(path.read_text())
        differ = sorted(name for name in head if json.dumps(study.get(name)) != json.dumps(head[name]))
        if differ:
            raise FrozenError(f"{path} was made with other {', '.join(differ)}; pass another path, or delete the file "
                              "to start again")
        return study
    return {**head, "runs": []}


def run_frozen(path=RESULTS_FILE, targets=TARGETS, sources=SOURCES, seeds=SEEDS, committed=COMMITTED,
               recipe: dict | None = None, runs_dir=None, progress: bool = True) -> dict:
    """Train every (seed, data, condition) not yet in the JSON file at `path`: per seed the learned runs on
    the sources and targets first, then each target under every frozen condition (`conditions`, with the
    `committed` runs as further sources; their networks must be the study's); the file is
    rewritten atomically after each run. recipe: see `study_recipe` (default: the committed study's). Run folders
    go to `runs_dir` (default the cache's frozen-runs/)."""
    path = Path(path)
    recipe = study_recipe() if recipe is None else recipe
    runs_dir = Path(runs_dir) if runs_dir is not None else cache_dir("frozen-runs")
    committed = tuple(committed)
    study = _read(path, _head(recipe, committed))
    done = {_key(r) for r in study["runs"]}
    loaded: dict = {}
    common = {"recipe": recipe, "runs_dir": runs_dir, "committed": committed}

    def data_of(name: str):
        if name not in loaded:
            loaded[name] = training_data(name, **_config(name, LEARNED, 0, recipe).data_arguments())
        return loaded[name]

    plan = [(name, LEARNED) for name in dict.fromkeys([*sources, *targets])]
    plan += [(target, condition) for target in targets for condition in conditions(target, sources, committed)[1:]]
    for name in dict.fromkeys(t for seed in seeds for t, c in plan if (t, c, seed) not in done):
        data_of(name)                       # a data name that does not exist fails here, before any training
    for seed in seeds:
        learned: dict = {run: committed_source(run)[1] for run in committed}
        for target, condition in plan:
            needed = {c[len(TRANSFER):] for t, c in plan if c.startswith(TRANSFER) and (t, c, seed) not in done}
            if (target, condition, seed) in done and not (condition == LEARNED and target in needed):
                continue
            record, final = run_one(data_of(target), target, condition, seed, sources=learned, **common)
            if condition == LEARNED:
                learned[target] = final
            if (target, condition, seed) in done:
                continue
            study["runs"].append(record)
            done.add(_key(record))
            write_json(path, study, indent=1)
            if progress:
                print(f"{record['run']}: val acc {record['val_accuracy']}, frozen change {record['frozen_max_change']}, "
                      f"{record['train_seconds']} s training, load {record['load_average']}", flush=True)
    return study


def frozen_frame(path=RESULTS_FILE) -> pd.DataFrame:
    """The runs of a study file as a table (one row per run)."""
    path = Path(path)
    if not path.is_file():
        raise FrozenError(f"no study file {path}; run `python -m kernels_lib.training.frozen` (or notebook 24) first")
    return pd.DataFrame(json.loads(path.read_text())["runs"])


def condition_order(frame: pd.DataFrame) -> list[str]:
    """The conditions of `frame`: learned, the banks, then the transfers in source order."""
    transfers = [f"{TRANSFER}{s}" for s in (*SOURCES, *COMMITTED)] + sorted(c for c in frame["condition"].unique()
                                                            if c.startswith(TRANSFER))
    order = [LEARNED, *BANKS, *dict.fromkeys(transfers)]
    return [c for c in order if c in set(frame["condition"])]


def target_order(frame: pd.DataFrame) -> list[str]:
    """The data sets of `frame`: the targets first, then the sources that are only sources."""
    return [t for t in dict.fromkeys([*TARGETS, *SOURCES, *sorted(frame["target"].unique())])
            if t in set(frame["target"])]


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy (%) per data set and condition over seeds: mean, min, max, the values seed by seed;
    beside them the mean % clustered of the final kernels and the median cosine of each kernel to its start."""
    rows = []
    for target in target_order(frame):
        for condition in condition_order(frame):
            part = frame[(frame["target"] == target) & (frame["condition"] == condition)].sort_values("seed")
            if not len(part):
                continue
            accuracy = 100 * part["val_accuracy"].astype(float)
            clustered = pd.to_numeric(part["clustered"], errors="coerce") * 100
            rows.append({"data": target, "condition": condition, "n_seeds": int(part["seed"].nunique()),
                         "val_accuracy_pct": accuracy.mean(), "min_pct": accuracy.min(), "max_pct": accuracy.max(),
                         "per_seed_pct": ", ".join(f"{v:.1f}" for v in accuracy),
                         "clustered_pct": clustered.mean() if clustered.notna().any() else None,
                         "cosine_to_start": part["cosine_to_start"].mean()})
    return pd.DataFrame(rows)


def data_labels(frame: pd.DataFrame, targets=TARGETS) -> dict:
    """A panel title per data set of `frame`: its classes and validation size, and whether it is only a source."""
    labels = {}
    for name, part in frame.groupby("target"):
        role = "" if name in targets else "\n(source only)"
        labels[name] = f"{name}\n{part['n_classes'].iloc[0]} classes, {part['n_validation'].iloc[0]:,} validated{role}"
    return labels


def scale_label(recipe: dict, frame: pd.DataFrame) -> str:
    """What the runs of a study are, for a figure title: network, steps, batch, seeds and machine."""
    config = _config(frame["target"].iloc[0], LEARNED, 0, recipe)
    net, seeds = config.network_options(), frame["seed"].nunique()
    where = "one CPU thread" if config.device == "cpu" and config.num_threads == 1 else f"device {config.device}"
    return (f"DepthwiseNet {net['kernel_size']}×{net['kernel_size']} ({net['width']} channels, {net['depth']} blocks), "
            f"{int(frame['steps'].max())} steps of batch {config.batch_size} per run, {seeds} seed{'s' * (seeds != 1)}, "
            f"{where}")


def main(argv=None) -> None:
    """Run the frozen-filter study into RESULTS_FILE (or --out); it resumes a stopped study."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--committed", nargs="*", default=list(COMMITTED))
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    run_frozen(args.out, targets=tuple(args.targets), sources=tuple(args.sources), seeds=tuple(args.seeds),
               committed=tuple(args.committed))


if __name__ == "__main__":
    main()
