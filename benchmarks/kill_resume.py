"""Kill and resume: SIGKILL `extract`, autoencoder `train`, `classify` and `figures` at random (seeded)
moments, resume each, check.

    .venv/bin/python benchmarks/kill_resume.py                        # 10, 8, 6 and 8 kills, seed 0
    .venv/bin/python benchmarks/kill_resume.py --kills 5 5 8 5 --seed 3

On the smoke set (data/models/smoke.yaml), in a scratch folder: first an uninterrupted run of each
command (`extract --models smoke`, `train` of a small 5×5 autoencoder on that database with a
checkpoint, `classify` of the database, `figures --only` notebooks 10 and 11 on both) gives the
reference bytes and wall time T (the autoencoder's provenance is compared without its wall times). Then each command is started as a subprocess
(`python -m kernels_lib ...`, PYTHONPATH the checkout) and its process group — papermill's kernel
included — is killed with SIGKILL after a moment drawn uniformly in [0, T], again and again, each time
resuming from what the last one left, until the wanted number of kills landed; a run that ends before
its kill is checked and its outputs wiped, so the kills keep falling on every stage. After every kill
every visible file must be whole (Parquet, JSON and notebooks parse, PNGs end in IEND); the run that
finally completes must leave the reference's bytes, every visible file, and no temporary file.
Where each kill landed (seconds, fraction of T, what was finished or being written) goes to
benchmarks/results/kill_resume.json with the load average. tests/test_resume.py runs a short version.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "kill_resume.json"
#: Notebooks the figures runs execute: plots from the database and the classification, seconds each.
NOTEBOOKS = "1[01]_*"
PNG_END = b"IEND\xaeB`\x82"


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "kernels_lib", *map(str, args)]


@dataclass
class Job:
    """One command of the drill: its argv, the folders whose bytes must equal the reference (`roots`) and
    other folders it writes (`scratch`: executed notebooks and the run manifest, which hold times)."""

    name: str
    argv: list[str]
    roots: list[Path]
    scratch: list[Path] = field(default_factory=list)
    wall_times: tuple[str, ...] = ()                 # JSON keys holding wall times, left out of the comparison
    reference: dict = field(default_factory=dict)    # relative path -> bytes of the uninterrupted run
    seconds: float = 0.0                             # wall time of the uninterrupted run

    def files(self) -> dict[str, bytes]:
        """The visible files this command wrote, by path relative to the scratch folder's parent."""
        return {str(p.relative_to(root.parent)): self._comparable(p) for root in self.roots for p in visible(root)}

    def _comparable(self, path: Path) -> bytes:
        if not (self.wall_times and path.suffix == ".json"):
            return path.read_bytes()
        record = json.loads(path.read_text(encoding="utf-8"))
        return json.dumps({k: v for k, v in record.items() if k not in self.wall_times}, sort_keys=True).encode()

    @property
    def written(self) -> list[Path]:
        return [*self.roots, *self.scratch]

    def wipe(self) -> None:
        for root in self.written:
            shutil.rmtree(root, ignore_errors=True)


#: A 5×5 autoencoder small enough to train in seconds on the smoke set's 800 trained 5×5 kernels, on one
#: thread; patience beyond the budget, so every run trains all 60 windows.
TRAIN = ("--kernel-size", 5, "--hidden", 64, 32, "--batch-size", 64, "--window", 1024, "--max-samples", 61440,
         "--patience", 100, "--num-threads", 1, "--seed", 0, "--overwrite", "--no-progress")
#: Provenance fields that are wall times (a resumed run's differ).
TRAIN_WALL_TIMES = ("train_seconds", "samples_per_second", "created")


def jobs(work: Path) -> list[Job]:
    """extract, train, classify and figures on the smoke set, each later one reading what extract wrote."""
    db, ae, cls, build, fig = work / "db", work / "ae", work / "cls", work / "build", work / "fig"
    return [
        Job("extract", _cli("extract", "--models", "smoke", "--out", db / "smoke", "--kernel-sizes", 3, 5, 7,
                            "--no-progress"), [db]),
        Job("train", _cli("train", "--db", db / "smoke", "--out", ae / "5x5", "--checkpoint", ae / ".5x5.checkpoint",
                          *TRAIN), [ae], wall_times=TRAIN_WALL_TIMES),
        Job("classify", _cli("classify", "--db", db / "smoke", "--out", cls / "smoke" / "classification.parquet",
                             "--no-progress"), [cls]),
        Job("figures", _cli("figures", "--models", "smoke", "--only", NOTEBOOKS, "--no-progress", "--no-site",
                            "--build-dir", build, "--output-dir", fig, "--db-dir", db,
                            "--classification-dir", cls), [fig], [build]),
    ]


def visible(root: Path) -> list[Path]:
    """Files under `root` a reader would take (no hidden temporaries), sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def temporaries(roots) -> list[Path]:
    return sorted(p for root in roots if root.is_dir() for p in root.rglob(".*.tmp"))


def half_written(roots) -> list[str]:
    """Visible files that are not whole: Parquet that does not read, JSON or notebooks that do not parse,
    PNGs without their end chunk."""
    import pyarrow.parquet as pq

    bad = []
    for root in roots:
        for path in visible(root):
            try:
                if path.suffix == ".parquet":
                    pq.read_table(path)
                elif path.suffix in (".json", ".ipynb"):
                    json.loads(path.read_text(encoding="utf-8"))
                elif path.suffix == ".png" and not path.read_bytes().endswith(PNG_END):
                    raise ValueError("no IEND chunk")
                elif path.suffix in (".csv", ".md"):
                    path.read_text(encoding="utf-8")
            except Exception as err:  # any failure to read is the finding
                bad.append(f"{path}: {type(err).__name__}: {err}")
    return bad


def landed(job: Job) -> str:
    """What was finished, or being written, when the kill came (read from the disk right after it)."""
    tmp = len(temporaries(job.written))
    writing = f", {tmp} temporary file(s) left" if tmp else ""
    if job.name == "extract":
        return f"{len(visible(job.roots[0]))} of 5 kernel files finished{writing}"
    if job.name == "classify":
        return ("classification written" if visible(job.roots[0]) else "before the classification was written") + writing
    if job.name == "train":
        return _training_landed(job.roots[0]) + writing
    path = job.scratch[0] / "run_manifest.json"
    if not path.is_file():
        return f"before the first notebook started{writing}"
    record = json.loads(path.read_text())["notebooks"]
    done = sorted(name for name, entry in record.items() if entry.get("completed"))
    running = sorted(name for name, entry in record.items() if not entry.get("completed"))
    return f"completed {done or 'none'}, running {running or 'none (between notebooks)'}{writing}"


def _training_landed(folder: Path) -> str:
    """How far the autoencoder's training had come: its checkpoint's windows, or saved."""
    import torch

    if visible(folder):
        return "autoencoder saved"
    checkpoint = folder / ".5x5.checkpoint"
    if not checkpoint.is_file():
        return "before the first checkpoint"
    windows = len(torch.load(checkpoint, weights_only=True)["loop"]["history"])
    return f"{windows} of 60 windows checkpointed"


def _descendants(pid: int) -> list[int]:
    """Processes started by `pid`, at any depth (papermill's kernel runs in a session of its own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a command and everything it started, as a power cut would, and reap it."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run(job: Job) -> subprocess.CompletedProcess:
    done = subprocess.run(job.argv, env=_env(), cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{job.name} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def reference(job: Job) -> None:
    """The uninterrupted run: its bytes and wall time; its outputs stay as the next command's input."""
    job.wipe()
    start = time.perf_counter()
    run(job)
    job.seconds = time.perf_counter() - start
    job.reference = job.files()


def check_complete(job: Job, problems: list[str], when: str) -> None:
    got = job.files()
    if got != job.reference:
        diff = sorted(k for k in {*got, *job.reference} if got.get(k) != job.reference.get(k))
        problems.append(f"{job.name} {when}: differs from the uninterrupted run in {diff[:5]}")
    if temporaries(job.written):
        problems.append(f"{job.name} {when}: temporaries left: {temporaries(job.written)[:3]}")
    problems.extend(f"{job.name} {when}: half-written {b}" for b in half_written(job.written))


def drill(job: Job, kills: int, rng: random.Random, problems: list[str]) -> tuple[list[dict], int]:
    """Kill `job` `kills` times at random moments, resuming each time; then let it finish and compare.
    Returns the kills and how many runs ended before their kill (each compared to the reference)."""
    job.wipe()
    events, completed = [], 0
    while len(events) < kills:
        at = rng.uniform(0.0, job.seconds)
        proc = subprocess.Popen(job.argv, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            where = landed(job)
            bad = half_written(job.written)
            problems.extend(f"{job.name} kill {len(events) + 1}: half-written {b}" for b in bad)
            events.append({"command": job.name, "after_s": round(at, 2), "fraction": round(at / job.seconds, 3),
                           "landed": where, "half_written": len(bad)})
            continue
        if code:
            problems.append(f"{job.name}: a resumed run failed with exit status {code}")
        check_complete(job, problems, f"finished before kill {len(events) + 1}")
        completed += 1
        job.wipe()     # start over, so the next kills fall on every stage again
    run(job)
    check_complete(job, problems, "resumed after the last kill")
    return events, completed


def drill_all(work: Path, kills: dict[str, int], seed: int) -> dict:
    """References, then the kills of each command; returns the record (kills, where they landed, problems)."""
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    problems, events, seconds, finished = [], [], {}, {}
    all_jobs = jobs(work)
    for job in all_jobs:
        reference(job)
        seconds[job.name] = round(job.seconds, 2)
    for job in all_jobs:
        done, finished[job.name] = drill(job, kills.get(job.name, 0), rng, problems)
        events += done
        # the next command reads this one's outputs: leave the reference bytes in place
        if job.files() != job.reference:
            reference(job)
    return {"seed": seed, "reference_seconds": seconds, "kills": len(events),
            "kills_by_command": {job.name: sum(e["command"] == job.name for e in events) for job in all_jobs},
            "runs_finished_before_their_kill": finished, "events": events, "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, nargs=4, default=[10, 8, 6, 8],
                        metavar=("EXTRACT", "TRAIN", "CLASSIFY", "FIGURES"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import tempfile

    from kernels_lib.fileio import write_json

    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kill_resume_") as scratch:
        record = drill_all(args.work or Path(scratch), dict(zip(("extract", "train", "classify", "figures"), args.kills)),
                           args.seed)
    record.update(wall_s=round(time.perf_counter() - start, 1), load_before=[round(x, 2) for x in load_before],
                  load_after=[round(x, 2) for x in os.getloadavg()], notebooks=NOTEBOOKS,
                  cpu_count=os.cpu_count())
    write_json(args.out, record)
    for event in record["events"]:
        print(f"{event['command']:8s} killed at {event['after_s']:6.2f} s ({event['fraction']:.0%}): {event['landed']}")
    print(f"{record['kills']} kills, {len(record['problems'])} problems, {record['wall_s']} s -> {args.out}")
    for problem in record["problems"]:
        print("PROBLEM", problem)
    return 1 if record["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
