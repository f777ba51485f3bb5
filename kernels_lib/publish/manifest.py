"""The `figures` run manifest: which notebook completed, with what, so that a rerun resumes only when it is right to.

`<build_dir>/run_manifest.json` records per notebook the fingerprint of what it ran with: the notebook
file's bytes, the parameters it received, the kernels_lib source tree, the model set file, the committed
data the notebooks read (reference autoencoders, training runs) and the outputs of every notebook before
it; whether it completed; and the files it wrote (with their sha256). A rerun skips a notebook that
completed with the same fingerprint and whose outputs are still on disk, unchanged. Because a fingerprint
holds the outputs of the notebooks before it, a notebook that runs again and writes other bytes
invalidates every notebook after it. The manifest is rewritten atomically after every change of state,
so a kill at any moment leaves the last state whole.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..fileio import jsonable, remove_stale_temp_files, sha256_file, write_json
from ..paths import AUTOENCODERS_DIR, MODELS_DIR, TRAINING_DIR

MANIFEST_NAME = "run_manifest.json"
VERSION = 1
_PACKAGE = Path(__file__).resolve().parents[1]
#: Committed data every notebook may read and no notebook writes.
EXTERNAL_DATA = (AUTOENCODERS_DIR, TRAINING_DIR)
#: What each part of a fingerprint is, for the line saying why a notebook runs again.
PART_NAMES = {"notebook": "the notebook file changed", "code": "the kernels_lib source changed",
              "model_set": "the model set file changed", "data": "the committed data changed "
              "(data/autoencoders or data/training)"}


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _files(root: Path, pattern: str = "*"):
    """The visible files under `root` (a file stands for itself), sorted; hidden temporaries left out."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob(pattern) if p.is_file()
                  and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts))


def tree_digest(root: Path, pattern: str = "*") -> str:
    """sha256 over the relative paths and bytes of the files under `root` ("missing" when there is none)."""
    files = _files(root, pattern)
    if not files:
        return "missing"
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root) if root.is_dir() else path.name}\n{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def source_digest() -> str:
    """The kernels_lib source tree's hash: a change anywhere in the package's code reruns the notebooks."""
    return tree_digest(_PACKAGE, "*.py")


def model_set_file(model_set: str) -> Path:
    """The file a model set name or path stands for (data/models/<name>.yaml)."""
    return Path(model_set) if str(model_set).endswith((".yaml", ".yml")) else MODELS_DIR / f"{model_set}.yaml"


def static_parts(model_set: str) -> dict:
    """The parts of every notebook's fingerprint that do not depend on the notebook (computed once per run)."""
    return {"code": source_digest(), "model_set": tree_digest(model_set_file(model_set)),
            "data": _digest([tree_digest(root) for root in EXTERNAL_DATA])}


def remove_temporaries(roots) -> None:
    """Clear the temporary files that killed writers left anywhere under `roots` (the next run writes anew)."""
    for root in map(Path, roots):
        if root.is_dir():
            for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
                remove_stale_temp_files(folder)


def snapshot(roots) -> dict[str, list[int]]:
    """{path: [size, mtime_ns]} of the visible files under `roots`: compared after a notebook to find what it wrote."""
    out = {}
    for root in roots:
        for path in _files(Path(root)):
            stat = path.stat()
            out[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return out


def written_since(before: dict, roots) -> dict[str, list]:
    """{path: [size, mtime_ns, sha256]} of the files under `roots` that are new or changed since `before`."""
    after = snapshot(roots)
    return {path: [*stat, sha256_file(path)] for path, stat in sorted(after.items()) if before.get(path) != stat}


def _unchanged(path: str, record: list) -> bool:
    """The file still holds what was recorded: same size and time, or else the same sha256."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    return [stat.st_size, stat.st_mtime_ns] == record[:2] or sha256_file(path) == record[2]


@dataclass
class Decision:
    """Whether a notebook runs (`run`) and why, in words for the log."""

    run: bool
    reason: str


class Manifest:
    """The run manifest of one build folder; `load` reads it (a missing or unreadable one starts empty)."""

    def __init__(self, path: Path, notebooks: dict | None = None):
        self.path = Path(path)
        self.notebooks = notebooks or {}

    @classmethod
    def load(cls, build_dir) -> "Manifest":
        path = Path(build_dir) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return cls(path)
        return cls(path, data.get("notebooks", {}) if data.get("version") == VERSION else {})

    def save(self) -> None:
        write_json(self.path, {"version": VERSION, "notebooks": self.notebooks}, indent=1, sort_keys=True)

    def forget(self, names) -> None:
        """Drop what is recorded of `names` (`figures --restart`): they run again."""
        for name in names:
            self.notebooks.pop(name, None)
        self.save()

    def outputs_digest(self, name: str) -> str | None:
        """A hash of what notebook `name` wrote, as recorded (None when it never completed here)."""
        entry = self.notebooks.get(name)
        if not entry or not entry.get("completed"):
            return None
        return _digest({path: record[2] for path, record in entry["outputs"].items()})

    def fingerprint(self, name: str, notebook: Path, parameters: dict, static: dict, upstream: list[str]) -> dict:
        """The parts of notebook `name`'s fingerprint: its bytes, parameters, `static_parts` and the recorded
        outputs of the notebooks `upstream` of it (in run order)."""
        return {"notebook": sha256_file(notebook), "parameters": jsonable(parameters), **static,
                "upstream": {up: self.outputs_digest(up) for up in upstream}}

    def decide(self, name: str, parts: dict, executed: Path, later: list[str]) -> Decision:
        """Skip notebook `name` only if it completed here with the same fingerprint `parts`, its executed copy
        exists and every file it wrote still holds what it wrote (files a `later` notebook rewrote aside)."""
        entry = self.notebooks.get(name)
        if not entry:
            return Decision(True, "never completed in this build folder")
        if not entry.get("completed"):
            return Decision(True, "did not complete last time (interrupted or failed)")
        old = entry.get("parts", {})
        changed = [PART_NAMES[key] for key in PART_NAMES if old.get(key) != parts[key]]
        params = sorted(k for k in {*old.get("parameters", {}), *parts["parameters"]}
                        if old.get("parameters", {}).get(k) != parts["parameters"].get(k))
        if params:
            changed.append(f"parameters changed ({', '.join(params)})")
        ups = [up for up in parts["upstream"] if old.get("upstream", {}).get(up) != parts["upstream"][up]]
        if ups:
            changed.append(f"the outputs of {', '.join(ups)} changed")
        if changed:
            return Decision(True, "; ".join(changed))
        if not executed.is_file():
            return Decision(True, f"its executed copy {executed.name} is missing")
        rewritten = {p for other in later for p in self.notebooks.get(other, {}).get("outputs", {})}
        gone = [Path(p).name for p, rec in entry["outputs"].items() if p not in rewritten and not _unchanged(p, rec)]
        if gone:
            return Decision(True, f"outputs missing or changed since: {', '.join(gone[:3])}"
                                  + (f" and {len(gone) - 3} more" if len(gone) > 3 else ""))
        return Decision(False, "completed with the same notebook, parameters, code, data and upstream outputs")

    def started(self, name: str, parts: dict, before: dict) -> None:
        """Record that `name` starts with `parts`; a retry of the same attempt keeps the first snapshot, so the
        files a killed attempt wrote count among its outputs."""
        entry = self.notebooks.get(name) or {}
        if entry.get("completed") or entry.get("parts") != parts:
            entry = {"parts": parts, "before": before}
        self.notebooks[name] = {**entry, "completed": False}
        self.save()

    def completed(self, name: str, roots, seconds: float) -> None:
        """Record that `name` completed and what it wrote under `roots` since its attempt began."""
        entry = self.notebooks[name]
        outputs = written_since(entry.pop("before"), roots)
        self.notebooks[name] = {**entry, "completed": True, "seconds": round(seconds, 1), "outputs": outputs}
        self.save()
