"""Tasks in which edges could carry the label (issue 18, item 2): is there a CPU-sized setting in which
first-derivative kernels emerge from photographs and not from noise?

The factorial study (`study`) trains "which photograph is this crop from", which colour and brightness
answer alone (its i.i.d.-noise control reaches 99.8 %), and none of its runs keeps a first derivative.
Here every image is made grey and normalised to zero mean and unit contrast (`grey_contrast`), so that
only spatial structure can answer, and the label comes from one of four tasks (`TASKS`):

- "photo-id": which of the 50 photographs the crop is from;
- "rotation": by how many quarter turns the crop was rotated (self-supervised: sky above, ground below);
- "halves": whether the two halves of the crop (cut along a random axis) were swapped (self-supervised
  relative position of two crops: a swap leaves a seam in the middle and joins the outer edges);
- "fashion": Fashion-MNIST's ten clothing classes (shapes on black, real photographs, not scenes).

Each task runs on its images and on two controls (`TASKS`): phase-scrambled (same power spectrum, no
edges or objects) and i.i.d. noise. The photograph tasks use the scrambled corpora of `datasets`
(whole photographs scrambled, then cropped); Fashion-MNIST's images are scrambled one by one
(`CONTROLS`). After the contrast normalisation every i.i.d. crop has the same distribution, so no task
can be learnt from it: the i.i.d. runs show what the recipe alone does to the kernels.

A `Setting` fixes the task, steps, weight decay, crop size and network (the default 7×7 `DepthwiseNet`,
one grey input channel). Every run is measured as the factorial study measures its runs
(`study.run_cell`: % clustered, class shares, first-derivative share, median template cosine, the direct
fit, validation accuracy, and the random-init twin), by how much it uses its depthwise kernels
(`ablation.depthwise_ablation`), and keeps a few of its first-derivative kernels for a gallery.

    python -m kernels_lib.training.edge_tasks triage --seeds 0     # one JSON per plan and seeds
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import photos, study
from .ablation import depthwise_ablation
from .datasets import DatasetError, training_data
from .default_runs import DEFAULT_RUNS
from .labels import reference_classifier
from .loop import TrainConfig, load_run
from ..database.store import read_kernels
from ..paths import TRAINING_DIR, cache_dir

EDGE_DIR = TRAINING_DIR / "edge_tasks"
PHOTO_DATA = ("photos", "photos-phase", "photos-iid")
FASHION_DATA = ("fashion-mnist", "fashion-mnist-phase", "fashion-mnist-iid")
#: Each task's data: its images first, then the phase-scrambled and the i.i.d.-noise control.
TASKS = {"photo-id": PHOTO_DATA, "rotation": PHOTO_DATA, "halves": PHOTO_DATA, "fashion": FASHION_DATA}
#: The data a run names: (the corpus `datasets.training_data` builds, the control applied to each image or None).
SOURCES = {**{name: (name, None) for name in PHOTO_DATA}, "fashion-mnist": ("fashion-mnist", None),
           "fashion-mnist-phase": ("fashion-mnist", "phase"), "fashion-mnist-iid": ("fashion-mnist", "iid")}
#: Per-image controls: the photographs' own, applied to one grey image at a time.
CONTROLS = {"phase": photos.phase_scrambled, "iid": photos.iid_noise}
#: Self-supervised tasks: their classes; validation shows every image in each of them (all four turns, both orders).
SELF_SUPERVISED = {"rotation": ("0°", "90°", "180°", "270°"), "halves": ("in place", "swapped")}
STEPS_PER_EPOCH = 100           # 6,400 crops of batch 64, as the default runs and the factorial study
#: The random stream of the task's own draws (turns, swaps), apart from the base data's.
TASK_STREAM = 5
VALIDATION_SEED = 7
GALLERY = 12                    # first-derivative kernels kept per run for the gallery
GREY = 1                        # input channels of the network


def grey_contrast(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """[N, C, H, W] → [N, 1, H, W]: the mean of the channels, each image shifted to zero mean and scaled to
    unit standard deviation, so no colour or brightness is left to answer with. An image flat to float
    rounding (standard deviation ≤ eps × (1 + |mean|)) becomes zero rather than its rounding noise magnified."""
    grey = x.mean(dim=1, keepdim=True)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    std = (grey - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    flat = std <= eps * (1 + mean.abs())
    return torch.where(flat, torch.zeros_like(grey), (grey - mean) / torch.where(flat, torch.ones_like(std), std))


def rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each square image of [N, C, H, H] turned anticlockwise by its `turns` quarter turns."""
    out = x.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], k, dims=(2, 3))
    return out


def swap_halves(x: torch.Tensor, swapped: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Each image of [N, C, H, W] with its two halves swapped where `swapped`: top and bottom where `axis` is 0,
    left and right where 1 (a roll by half the side, which is a swap for an even side)."""
    out = x.clone()
    for dim, size in ((0, x.shape[2]), (1, x.shape[3])):
        chosen = swapped.bool() & (axis == dim)
        if chosen.any():
            out[chosen] = torch.roll(x[chosen], size // 2, dims=2 + dim)
    return out


class TaskData:
    """A run's data seen through a task: the batch interface of `datasets.PhotoCrops`, made grey with unit
    contrast (`grey_contrast`), optionally replaced image by image by a `CONTROLS` control, then labelled by
    `task`. The same (seed, epoch) gives the same batches; validation is the base data's, every image in each
    view of a self-supervised task (halves cut across rows and columns in turn)."""

    def __init__(self, base, task: str, control: str | None = None, name: str | None = None):
        if task not in TASKS:
            raise DatasetError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        if control is not None and control not in CONTROLS:
            raise DatasetError(f"unknown control {control!r}; choose from {', '.join(CONTROLS)} (or None)")
        self.base, self.task, self.control = base, task, control
        self.name = name or base.name
        self.classes = list(SELF_SUPERVISED.get(task, base.classes))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def crops_per_epoch(self) -> int:
        return self.base.crops_per_epoch

    @property
    def views(self) -> int:
        return self.n_classes if self.task in SELF_SUPERVISED else 1

    @property
    def n_validation(self) -> int:
        return self.base.n_validation * self.views

    def _images(self, x: torch.Tensor, key: list) -> torch.Tensor:
        if self.control is not None:
            scramble = CONTROLS[self.control]
            grey = x.mean(dim=1).numpy()
            x = torch.from_numpy(np.stack([scramble(image[..., None], seed=[*key, i])[..., 0]
                                           for i, image in enumerate(grey)]))[:, None]
        return grey_contrast(x)

    def _labelled(self, images, labels, choice, axis):
        if self.task == "rotation":
            return rotate(images, choice), choice
        if self.task == "halves":
            return swap_halves(images, choice, axis), choice
        return images, labels

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, place=None):
        """The training batches of one epoch (one process only: the task's draws are per whole batch)."""
        if place is not None:
            raise DatasetError("edge-task data runs in one process; train it without torchrun")
        rng = np.random.default_rng([seed, epoch, TASK_STREAM])
        for index, (x, y) in enumerate(self.base.epoch_batches(epoch, batch_size, seed)):
            choice, axis = (torch.from_numpy(rng.integers(0, n, len(y))) for n in (self.views, 2))
            yield self._labelled(self._images(x, [seed, epoch, index]), y, choice, axis)

    def validation_batches(self, batch_size: int):
        """The base data's validation images, each in every view of the task, in a fixed order."""
        for index, (x, y) in enumerate(self.base.validation_batches(batch_size)):
            images = self._images(x, [VALIDATION_SEED, index])
            axis = torch.arange(len(y)) % 2
            for view in range(self.views):
                yield self._labelled(images, y, torch.full_like(y, view), axis)

    def provenance(self) -> dict:
        return {**self.base.provenance(), "data": self.name, "corpus": self.base.name, "task": self.task,
                "control": self.control, "grey_contrast": True, "classes": self.classes,
                "n_classes": self.n_classes, "n_validation": self.n_validation}


def task_parts(config: TrainConfig) -> tuple[str, dict, dict]:
    """An edge-task run's config split into the base corpus, its `datasets.training_data` options, and the
    `TaskData` options (task, control, name) that `Setting.config` put in data_options."""
    options = config.data_arguments()
    if "task" not in options:
        raise DatasetError(f"run {config.run!r} names no task in data_options; it is not an edge-task run")
    task = {key: options.pop(key, None) for key in ("task", "control", "name")}
    return config.data, options, task


def task_data(config: TrainConfig, base=None) -> TaskData:
    """The data of an edge-task run, rebuilt from its config (`base`: its base data, when already built)."""
    corpus, options, task = task_parts(config)
    return TaskData(base if base is not None else training_data(corpus, **options), **task)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of the table: a task trained for `steps` (a multiple of 100) at this weight decay, crop size
    and network width and depth; everything else is the default 7×7 run's (AdamW lr 1e-2, batch 64, cosine
    schedule with a 4 % warm-up, Kaiming initialisation), as in the factorial study."""

    name: str
    task: str
    steps: int = 300
    weight_decay: float = 0.05
    crop_size: int = 32
    width: int = 48
    depth: int = 4

    def __post_init__(self):
        if self.task not in TASKS:
            raise DatasetError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if self.steps < STEPS_PER_EPOCH or self.steps % STEPS_PER_EPOCH:
            raise DatasetError(f"steps must be a positive multiple of {STEPS_PER_EPOCH}, got {self.steps}")

    @property
    def data(self) -> tuple[str, ...]:
        return TASKS[self.task]

    def config(self, data: str, seed: int, changes: dict | None = None) -> TrainConfig:
        """The run of this setting on `data` with `seed`; `changes`: other TrainConfig fields (a smaller run for
        a test), their data_options added to the task's."""
        if data not in self.data:
            raise DatasetError(f"task {self.task!r} runs on {', '.join(self.data)}, not {data!r}")
        corpus, control = SOURCES[data]
        epochs = self.steps // STEPS_PER_EPOCH
        options = {**study.DATA_OPTIONS.get(corpus, {}), "task": self.task, "name": data,
                   **({"control": control} if control else {})}
        config = dataclasses.replace(
            DEFAULT_RUNS["kaiming-7x7"], run=f"{self.name}-{data}-seed{seed}", data=corpus, seed=int(seed),
            weight_decay=float(self.weight_decay), crop_size=self.crop_size, width=self.width, depth=self.depth,
            kernel_size=study.KERNEL_SIZE, model_options={"in_channels": GREY}, data_options=options, epochs=epochs,
            crops_per_epoch=STEPS_PER_EPOCH * DEFAULT_RUNS["kaiming-7x7"].batch_size,
            warmup_epochs=study.SETTINGS["warmup_epochs"] * epochs, snapshot_epochs=())
        changes = dict(changes or {})
        options.update(changes.pop("data_options", {}))
        return dataclasses.replace(config, **changes, data_options=options)


#: The plans run so far, in order. Triage: each task for 300 steps at the usual weight decay 0.05 (the
#: committed 0.5 decays every kernel towards a DoG, issue 18); then the variants the issue names of the
#: task that triage found most promising; then the long runs.
PLANS = {
    "triage": (Setting("photo-id", "photo-id"), Setting("rotation", "rotation"), Setting("halves", "halves"),
               Setting("fashion", "fashion")),
}


def first_derivative_kernels(kernels: np.ndarray, limit: int = GALLERY) -> tuple[int, list]:
    """How many of [N, 7, 7] kernels the reference autoencoder calls a (clustered) first derivative, and
    the first `limit` of them (rounded to 5 decimals) for a gallery."""
    result = reference_classifier(study.KERNEL_SIZE).predict(kernels)
    chosen = (result["merged"].to_numpy() == study.FIRST_DERIVATIVE) & result["clustered"].to_numpy(dtype=bool) \
        & ~result["degenerate"].to_numpy(dtype=bool)
    return int(chosen.sum()), np.round(kernels[chosen][:limit], 5).tolist()


def run_setting(setting: Setting, data: str, seed: int, loaded, runs_dir: Path, reference: dict,
                changes: dict | None = None) -> tuple[dict, dict]:
    """Train and measure one run (see the module docstring): its record and its random-init twin's."""
    config = setting.config(data, seed, changes)
    run, twin = study.run_cell(config, loaded, runs_dir, reference)
    result = load_run(runs_dir / config.run)
    uses = depthwise_ablation(result, data=loaded)
    count, kernels = first_derivative_kernels(study.kernel_stack(read_kernels(result.snapshots[-1].path)))
    common = {"setting": setting.name, "task": setting.task, "data": data}
    run.update(common, crop_size=setting.crop_size, width=setting.width, depth=setting.depth,
               n_first_derivatives=count, first_derivative_kernels=kernels, chance=round(1 / loaded.n_classes, 5),
               majority_share=uses["majority_share"], accuracy_identity=uses["accuracy_recalibrated"]["identity"],
               accuracy_initial_kernels=uses["accuracy_recalibrated"]["initialisation"], ablation=uses)
    twin.update(common)
    return run, twin


def _key(record: dict) -> tuple:
    return record["setting"], record["data"], int(record["seed"])


def run_plan(path, settings, seeds=(0, 1), runs_dir=None, changes: dict | None = None, progress: bool = True) -> dict:
    """Train and measure every (seed, setting, data) not yet in the JSON file at `path`, writing it atomically
    after each run, so a stopped plan resumes. Run folders go to `runs_dir` (default the cache's edge-task-runs/);
    `changes` go to every run's config (`Setting.config`; a file keeps one set of them)."""
    path = Path(path)
    runs_dir = Path(runs_dir) if runs_dir is not None else cache_dir("edge-task-runs")
    plan = _read(path, changes)
    for setting in settings:
        known = plan["settings"].setdefault(setting.name, dataclasses.asdict(setting))
        if known != dataclasses.asdict(setting):
            raise study.StudyError(f"{path} ran a setting {setting.name!r} as {known}, not {dataclasses.asdict(setting)}; "
                                   "give the new one another name")
    done = {_key(r) for r in plan["runs"]}
    loaded = {}
    for seed in seeds:
        for setting in settings:
            for data in setting.data:
                if (setting.name, data, seed) in done:
                    continue
                config = setting.config(data, seed, changes)
                corpus, options, _ = task_parts(config)
                arguments = json.dumps([corpus, options], sort_keys=True)
                if arguments not in loaded:         # the base data is built once for its three tasks
                    loaded = {arguments: training_data(corpus, **options)}
                run, twin = run_setting(setting, data, seed, task_data(config, loaded[arguments]), runs_dir,
                                        plan["reference"], changes)
                plan["runs"].append(run)
                plan["twins"].append(twin)
                done.add(_key(run))
                study.save_progress(path, plan, run, progress,
                                    f"{run['n_first_derivatives']} first derivatives, val acc {run['val_accuracy']} "
                                    f"(identity kernels {run['accuracy_identity']}, chance {run['chance']})")
    return plan


def _read(path: Path, changes: dict | None) -> dict:
    """The plan so far at `path` (made with the same `changes`), or a new one with the real bank's measures."""
    changes = json.loads(json.dumps(changes or {}))
    if path.is_file():
        plan = json.loads(path.read_text())
        if plan.get("changes", {}) != changes:
            raise study.StudyError(f"{path} was made with changes {plan.get('changes')}, not {changes}; pass another "
                                   "path, or delete the file to start again")
        return plan
    return {"network": {**DEFAULT_RUNS["kaiming-7x7"].network_options(), "in_channels": GREY}, "changes": changes,
            "reference": study.real_reference(), "settings": {}, "runs": [], "twins": []}


def edge_files(folder=EDGE_DIR) -> list[Path]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise study.StudyError(f"no edge-task JSON in {folder}; run `python -m kernels_lib.training.edge_tasks triage`")
    return files


def plan_settings(folder=EDGE_DIR) -> dict:
    """{name: the setting's fields} over the JSON files in `folder`; a name given two meanings is an error."""
    settings = {}
    for path in edge_files(folder):
        for name, setting in json.loads(path.read_text())["settings"].items():
            if settings.setdefault(name, setting) != setting:
                raise study.StudyError(f"setting {name!r} means different runs in the files of {folder}")
    return settings


def edge_frame(folder=EDGE_DIR) -> pd.DataFrame:
    """Every run and twin of the JSON files in `folder` as one table (twins: kind "random init"), with the
    setting's steps and weight decay on each row; a run held twice, or a setting name given two meanings, is an error."""
    runs, twins, settings = [], [], plan_settings(folder)
    for path in edge_files(folder):
        plan = json.loads(path.read_text())
        runs += plan["runs"]
        twins += plan["twins"]
    keys = [_key(r) for r in runs]
    if len(set(keys)) != len(keys):
        raise study.StudyError(f"the files in {folder} hold some runs twice (same setting, data and seed)")
    frame = pd.concat([pd.DataFrame(runs).assign(kind="trained"), pd.DataFrame(twins).assign(kind="random init")],
                      ignore_index=True)
    for field in ("steps", "weight_decay", "crop_size", "width", "depth"):
        frame[field] = frame["setting"].map({name: s[field] for name, s in settings.items()})
    frame["control"] = frame["data"].map(lambda d: "images" if d in (PHOTO_DATA[0], FASHION_DATA[0])
                                         else "phase-scrambled" if d.endswith("-phase") else "i.i.d. noise")
    return frame


#: Columns of `setting_table` (name: source field, scale); each the mean over seeds. "first_derivatives_fit":
#: how many of a run's kernels the direct DoG-family fit (no autoencoder) calls a clustered first derivative.
TABLE_MEASURES = {"val_accuracy_pct": ("val_accuracy", 100), "identity_accuracy_pct": ("accuracy_identity", 100),
                  "initial_kernels_accuracy_pct": ("accuracy_initial_kernels", 100), "chance_pct": ("chance", 100),
                  "clustered_pct": ("clustered", 100), "first_derivative_pct": ("first_derivative_share", 100),
                  "first_derivatives_fit": ("n_first_derivatives_fit", 1),
                  "template_cosine_median": ("template_cosine_median", 1)}


def _measures(part: pd.DataFrame) -> dict:
    """The mean over `part`'s rows of each `TABLE_MEASURES` (None where undefined), the seed count, the spread
    of % clustered and the first derivatives' count per run (the autoencoder's, the fit's)."""
    row = {"n_seeds": int(part["seed"].nunique())}
    for column, (source, scale) in TABLE_MEASURES.items():
        values = pd.to_numeric(part[source], errors="coerce") * scale if source in part else pd.Series(dtype=float)
        row[column] = values.mean() if values.notna().any() else None
    clustered = pd.to_numeric(part["clustered"], errors="coerce") * 100
    row["clustered_pct_min"], row["clustered_pct_max"] = clustered.min(), clustered.max()
    for column, source in (("first_derivatives_per_run", "n_first_derivatives"),
                           ("fit_first_derivatives_per_run", "n_first_derivatives_fit")):
        counts = pd.to_numeric(part[source], errors="coerce").dropna() if source in part else []
        row[column] = "/".join(str(int(c)) for c in counts) or None
    return row


def setting_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, data), settings in the order they ran, each followed by its random-init twins
    (one row, over all its data and seeds): the means of `_measures`."""
    rows = []
    for setting, part in frame.groupby("setting", sort=False):
        head = {"setting": setting, "task": part["task"].iloc[0], "steps": int(part["steps"].iloc[0]),
                "weight_decay": float(part["weight_decay"].iloc[0])}
        trained = part[part["kind"] == "trained"]
        rows += [{**head, "data": data, **_measures(rows_of)} for data, rows_of in trained.groupby("data", sort=False)]
        twins = part[part["kind"] == "random init"]
        if len(twins):
            rows.append({**head, "data": "random init", **_measures(twins)})
    return pd.DataFrame(rows)


def verdicts(frame: pd.DataFrame, measure: str = "first_derivative_share") -> pd.DataFrame:
    """Per setting: whether its first derivatives (by `measure`: the autoencoder's share, or the fit's count
    "n_first_derivatives_fit") come from the images and not from the noise: the smallest value over the seeds
    trained on the images, against the largest over the seeds of both controls and of the random-init twins.
    `separates` only when the former is above zero and above the latter."""
    rows = []
    for setting, part in frame.groupby("setting", sort=False):
        value = pd.to_numeric(part[measure], errors="coerce")
        images = value[(part["kind"] == "trained") & (part["control"] == "images")]
        others = value[(part["kind"] != "trained") | (part["control"] != "images")]
        low, high = images.min(), others.max()
        rows.append({"setting": setting, "measure": measure, "images_min": low, "controls_and_twins_max": high,
                     "separates": bool(low > 0 and low > high)})
    return pd.DataFrame(rows)


def scale_label(frame: pd.DataFrame) -> str:
    """The runs' scale for a figure title, from the settings in `frame` (several values joined by "/")."""
    def values(field):
        return "/".join(f"{v:g}" for v in dict.fromkeys(frame[field].dropna()))
    return (f"DepthwiseNet {values('width')}×{values('depth')}, {study.KERNEL_SIZE}×{study.KERNEL_SIZE}, "
            f"{values('steps')} steps, wd {values('weight_decay')}, CPU; grey unit-contrast "
            f"{values('crop_size')}×{values('crop_size')} crops")


#: The groups of `points_frame`, in the order the figure draws them.
GROUPS = ("images", "phase-scrambled", "i.i.d. noise", "random init")


def points_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run and twin for a figure of seeds as points: its setting (named with its steps), its group
    (`GROUPS`: the images, a control, or the untrained twin) and its measures in %."""
    return pd.DataFrame({
        "setting": frame["setting"] + "\n" + frame["steps"].astype(int).astype(str) + " steps",
        "group": frame["control"].where(frame["kind"] == "trained", GROUPS[-1]), "seed": frame["seed"],
        **{column: pd.to_numeric(frame[source], errors="coerce") * scale for column, (source, scale)
           in TABLE_MEASURES.items() if source in frame}})


def gallery(frame: pd.DataFrame, limit: int = 48) -> tuple[np.ndarray, list[str]]:
    """The first-derivative kernels the runs kept ([N, 7, 7], at most `limit`, taken in turn from each run so
    that every run that has some shows some) and a caption for each: setting, data and seed."""
    trained = frame[frame["kind"] == "trained"]
    queues = [(f"{r.setting} {r.data} s{r.seed}", list(r.first_derivative_kernels))
              for r in trained.itertuples() if isinstance(r.first_derivative_kernels, list) and r.first_derivative_kernels]
    kernels, captions = [], []
    while queues and len(kernels) < limit:
        for caption, queue in queues:
            if queue and len(kernels) < limit:
                kernels.append(queue.pop(0))
                captions.append(caption)
        queues = [q for q in queues if q[1]]
    return np.asarray(kernels, dtype=np.float64).reshape(-1, study.KERNEL_SIZE, study.KERNEL_SIZE), captions


def rerun(setting: str, seed: int, folder, committed=EDGE_DIR, changes: dict | None = None) -> pd.DataFrame:
    """Train a committed setting's runs of one seed again, from scratch, into `folder` (its JSON and run folders
    are replaced), and set each measure beside the committed run's: one row per data and measure. Without
    `changes` the two must agree to the byte (one CPU thread, the same library versions)."""
    import shutil

    frame, known = edge_frame(committed), plan_settings(committed)
    if setting not in known:
        raise study.StudyError(f"no committed setting {setting!r}; the committed ones are {', '.join(known)}")
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    plan = run_plan(folder / "rerun.json", [Setting(**known[setting])], seeds=(seed,), runs_dir=folder / "runs",
                    changes=changes, progress=False)
    old = frame[(frame["kind"] == "trained") & (frame["setting"] == setting) & (frame["seed"] == seed)]
    rows = []
    for run in plan["runs"]:
        before = old[old["data"] == run["data"]]
        for measure in ("clustered", "first_derivative_share", "template_cosine_median", "val_accuracy",
                        "accuracy_identity"):
            rows.append({"data": run["data"], "measure": measure, "rerun": run[measure],
                         "committed": before[measure].iloc[0] if len(before) else None})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    """Run a plan's settings with some seeds into EDGE_DIR/<plan>-seed<...>.json (two seeds can run side by side)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kernels_lib.training.edge_tasks", description=main.__doc__)
    parser.add_argument("plan", choices=list(PLANS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", default=None, help="only these settings of the plan")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default EDGE_DIR/<plan>-seed<N>.json)")
    args = parser.parse_args(argv)
    settings = [s for s in PLANS[args.plan] if args.settings is None or s.name in args.settings]
    out = args.out or EDGE_DIR / f"{args.plan}-seed{'-'.join(str(s) for s in args.seeds)}.json"
    run_plan(out, settings, seeds=tuple(args.seeds))


if __name__ == "__main__":
    main()
