"""The notebooks' runner: re-run the numbered notebooks headlessly with papermill, and record
what each one produced.

`run_all` executes `notebooks/NN_*.ipynb` in numeric order. Each notebook receives the
parameters it declares in its `parameters` cell (model set, output folders, …); the executed
copy goes to a build folder, never over the source. A failing cell stops the run with a
`NotebookExecutionError` naming the notebook, the cell and the error, so nothing is skipped
silently. Figures land in `figures/`, tables in `figures/tables/`, the small JSON each
notebook records in `figures/results/` (`save_results`). After the notebooks, the executed
copies and the figures become a static HTML site beside the build folder (`kernels_lib.publish.site`:
`build/site/index.html`), unless `site=False` (`figures --no-site`).

A rerun resumes: the run manifest in the build folder (`kernels_lib.publish.manifest`) says which
notebooks completed with the same notebook, parameters, code, data and upstream outputs; those are
skipped (the log says why, and why the others run), `restart=True` (`figures --restart`) runs all again.
Executed copies take their name only when papermill is done with them, so none is ever half-written.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import KernelsLibError, NotebookExecutionError, NotebookNotFoundError, ParametersCellError
from . import manifest
from . import site as static_site
from ..fileio import remove_stale_temp_files, temp_path, write_json
from ..paths import BUILD_DIR, CLASSIFICATION_DIR, GALLERY_SET, KERNELS_DIR, NOTEBOOK_DIR, figures_dir

DB_DIR = KERNELS_DIR
DEFAULT_MODEL_SET = GALLERY_SET
#: Exit status of the `figures` command when a notebook fails (the command line's convention).
EXIT_ERROR = 2
_NUMBERED = re.compile(r"^(\d+)_.*\.ipynb$")


@dataclass(frozen=True)
class NotebookRun:
    """What one notebook run produced: the executed copy and how long it took."""

    notebook: str
    executed: Path
    seconds: float


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ARROW = re.compile(r"^\s*-+>\s*\d+\s(.*)$")


def _failing_line(traceback: list[str], source: str) -> str:
    """The cell's line that raised (IPython marks it `----> n`), else the cell's first line."""
    for line in _ANSI.sub("", "\n".join(traceback or [])).splitlines():
        match = _ARROW.match(line)
        if match:
            return match.group(1).strip()
    lines = source.strip().splitlines()
    return lines[0] if lines else ""


def save_results(results_dir: Path | str, notebook: str, data: dict) -> Path:
    """Record what a notebook produced (counts, files, scores) as `<results_dir>/<notebook>.json`."""
    return write_json(Path(results_dir) / f"{notebook}.json", data, sort_keys=True)


def list_notebooks(notebook_dir: Path | str = NOTEBOOK_DIR, only: str | None = None) -> list[Path]:
    """The numbered notebooks `NN_*.ipynb` in numeric order, optionally filtered by `only`.

    `only` is a glob (`"0[23]_*"`) or a plain substring (`"pca"`, `"04"`) of the file name.
    """
    notebook_dir = Path(notebook_dir)
    found = sorted(
        (p for p in notebook_dir.glob("*.ipynb") if _NUMBERED.match(p.name)),
        key=lambda p: (int(_NUMBERED.match(p.name).group(1)), p.name),
    )
    if only is not None:
        pattern = only if any(c in only for c in "*?[") else f"*{only}*"
        found = [p for p in found if fnmatch.fnmatch(p.name, pattern) or fnmatch.fnmatch(p.stem, pattern)]
    if not found:
        what = f"matching {only!r} " if only is not None else ""
        raise NotebookNotFoundError(
            f"no numbered notebook (NN_name.ipynb) {what}in {notebook_dir}; "
            "list them with `ls notebooks/` and pass part of a name to --only"
        )
    return found


def default_parameters(model_set: str = DEFAULT_MODEL_SET, output_dir: Path | str | None = None,
                       db_dir: Path | str = DB_DIR, classification_dir: Path | str = CLASSIFICATION_DIR) -> dict:
    """Parameters every notebook may declare; absolute paths so the working directory does not matter.
    `output_dir` defaults to `paths.figures_dir(model_set)`: figures/ for the gallery set, figures/<set>/
    for any other."""
    output_dir = Path(output_dir if output_dir is not None else figures_dir(model_set)).resolve()
    if str(model_set).endswith((".yaml", ".yml")):   # a set file: the notebooks run in notebooks/, not here
        model_set = str(Path(model_set).resolve())
    return {
        "model_set": model_set,
        "output_dir": str(output_dir),
        "results_dir": str(output_dir / "results"),
        "db_dir": str(Path(db_dir).resolve()),
        "classification_dir": str(Path(classification_dir).resolve()),
    }


def declared_parameters(path: Path | str) -> set[str]:
    """Names assigned in the notebook's cell tagged `parameters`; every `name = ...` line must parse.

    papermill skips a line it cannot parse (e.g. a comment holding "="), so a parameter passed
    from the command line would be ignored without a word: refuse that instead.
    """
    import nbformat
    import papermill

    names = set(papermill.inspect_notebook(str(path)))
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if "parameters" not in cell.metadata.get("tags", []):
            continue
        for line in cell.source.splitlines():
            match = re.match(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)", line)
            if match and match.group(1) not in names:
                raise ParametersCellError(
                    f"{Path(path).name}: papermill cannot read the parameters line {line.strip()!r}; "
                    "write it as `name = literal  # comment` with no '=' inside the comment")
    return names


def passed_parameters(path: Path, parameters: dict) -> dict:
    """The `parameters` notebook `path` declares: only those are passed (papermill would inject the rest)."""
    wanted = declared_parameters(path)
    return {k: v for k, v in parameters.items() if k in wanted}


def run_notebook(path: Path | str, parameters: dict, build_dir: Path | str, cwd: Path | str | None = None,
                 progress: bool = False, kernel_name: str = "python3") -> NotebookRun:
    """Execute one notebook with papermill into `build_dir`; raise `NotebookExecutionError` on a failing cell.

    Only parameters the notebook declares are passed (papermill would otherwise inject
    unused names). `cwd` defaults to the notebook's folder, as in JupyterLab.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).resolve()
    if not path.is_file():
        raise NotebookNotFoundError(f"notebook {path} does not exist")
    build_dir = Path(build_dir).resolve()
    if build_dir == path.parent:
        raise ValueError(f"build_dir {build_dir} is the notebooks' own folder: executed copies would "
                         "overwrite the sources; choose another folder, e.g. build/notebooks")
    build_dir.mkdir(parents=True, exist_ok=True)
    executed = build_dir / path.name
    passed = passed_parameters(path, parameters)
    remove_stale_temp_files(build_dir)
    partial = temp_path(executed)   # papermill rewrites its output after every cell: named only once done
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified file .* does not end in one of")
            papermill.execute_notebook(
                str(path), str(partial), parameters=passed, kernel_name=kernel_name,
                cwd=str(Path(cwd).resolve() if cwd is not None else path.parent),
                progress_bar=progress, log_output=False,
            )
    except PapermillExecutionError as err:
        raise NotebookExecutionError(path.name, err.cell_index, err.ename, err.evalue, executed,
                                     err.exec_count, _failing_line(err.traceback, err.source)) from err
    except Exception as err:  # kernel died, timed out, could not start: still name the notebook
        raise NotebookExecutionError(path.name, None, type(err).__name__, str(err), executed) from err
    finally:
        if partial.exists():    # the executed copy, failed cells included, replaces the last one whole
            os.replace(partial, executed)
    return NotebookRun(path.name, executed, time.perf_counter() - start)


def run_all(model_set: str = DEFAULT_MODEL_SET, only: str | None = None,
            build_dir: Path | str = BUILD_DIR / "notebooks",
            notebook_dir: Path | str = NOTEBOOK_DIR, output_dir: Path | str | None = None,
            db_dir: Path | str = DB_DIR, parameters: dict | None = None,
            progress: bool = True, log=print, site: bool = True,
            site_dir: Path | str | None = None,
            classification_dir: Path | str = CLASSIFICATION_DIR, restart: bool = False) -> list[NotebookRun]:
    """Run the numbered notebooks in order with the parameters of `model_set`; stop at the first failure.

    A notebook the build folder's run manifest records as completed with the same fingerprint, its
    outputs unchanged, is skipped (`manifest.Manifest.decide`); `restart` forgets the record and runs
    every selected notebook. Returns the runs of the notebooks that ran.

    `parameters` override or extend the defaults (e.g. `{"seed": 1}`); each notebook gets the
    ones it declares. `log` receives one line per notebook (pass `None` for silence). Then, with
    `site`, every executed notebook of `build_dir` (those run earlier too) and the figures of the
    run's output folder become the static site in `site_dir` (default: `site/` beside `build_dir`).
    """
    notebooks = list_notebooks(notebook_dir, only)
    order = [p.name for p in list_notebooks(notebook_dir)]
    params = {**default_parameters(model_set, output_dir, db_dir, classification_dir), **(parameters or {})}
    say = log if log is not None else (lambda *_: None)
    build_dir = Path(build_dir).resolve()
    record = manifest.Manifest.load(build_dir)
    if restart:
        record.forget(p.name for p in notebooks)
    static = manifest.static_parts(params["model_set"])
    roots = [params["output_dir"], params["db_dir"], params["classification_dir"]]
    manifest.remove_temporaries([*roots, build_dir])
    runs = []
    for i, path in enumerate(notebooks, 1):
        at = order.index(path.name)
        parts = record.fingerprint(path.name, path, passed_parameters(path, params), static, order[:at])
        decision = record.decide(path.name, parts, build_dir / path.name, order[at + 1:])
        if not decision.run:
            say(f"[{i}/{len(notebooks)}] {path.name} skipped: {decision.reason} (recorded in {record.path})")
            continue
        say(f"[{i}/{len(notebooks)}] {path.name} runs: {'--restart' if restart else decision.reason}")
        record.started(path.name, parts, manifest.snapshot(roots))
        say(f"[{i}/{len(notebooks)}] {path.name} (model set {model_set!r}) ...")
        run = run_notebook(path, params, build_dir, cwd=path.parent, progress=progress)
        record.completed(path.name, roots, run.seconds)
        say(f"[{i}/{len(notebooks)}] {path.name} done in {run.seconds:.1f} s -> {run.executed}")
        runs.append(run)
    if site:
        executed = static_site.executed_notebooks(build_dir, [p.name for p in list_notebooks(notebook_dir)])
        built = static_site.build_site(executed, params["output_dir"],
                                       site_dir or Path(build_dir).resolve().parent / "site")
        say(f"site: {built.index} ({len(built.pages)} notebooks, {len(built.gallery)} figures and tables); "
            "open it in a browser")
    return runs


def main(argv: list[str] | None = None) -> int:
    """`figures` command: re-run the notebooks; exit status 2 and the failing cell's error on failure."""
    parser = argparse.ArgumentParser(
        prog="kernels_lib figures",
        description="Re-execute the numbered notebooks with papermill and regenerate figures/.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `figures` options, so a parent command line can mount them as a sub-command."""
    parser.add_argument("--models", default=DEFAULT_MODEL_SET,
                        help="model set (data/models/<name>.yaml): offline, smoke or paper (default: offline)")
    parser.add_argument("--only", default=None, metavar="PATTERN",
                        help="run only notebooks whose name matches this glob or substring, e.g. 04 or 'pca'")
    parser.add_argument("--notebook-dir", default=str(NOTEBOOK_DIR), help="where the numbered notebooks are")
    parser.add_argument("--build-dir", default=str(BUILD_DIR / "notebooks"),
                        help="where executed copies of the notebooks go (default: build/notebooks)")
    parser.add_argument("--output-dir", default=None,
                        help="figures folder (default: figures/ for the offline set, figures/<SET>/ for any other)")
    parser.add_argument("--db-dir", default=str(DB_DIR), help="kernel database folder (default: data/kernels/)")
    parser.add_argument("--classification-dir", default=str(CLASSIFICATION_DIR),
                        help="classifications and the set's own autoencoders (default: data/results/)")
    parser.add_argument("--restart", action="store_true",
                        help="run every notebook again, even those the run manifest records as completed with the "
                             "same notebook, parameters, code and inputs (by default a rerun skips them)")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    parser.add_argument("--no-site", action="store_true",
                        help="do not render the executed notebooks and figures to the HTML site")
    parser.add_argument("--site-dir", default=None,
                        help="where the HTML site goes (default: site/ beside the build folder, i.e. build/site)")


def run_from_args(args: argparse.Namespace) -> int:
    try:
        run_all(model_set=args.models, only=args.only, build_dir=args.build_dir, notebook_dir=args.notebook_dir,
                output_dir=args.output_dir, db_dir=args.db_dir, progress=not args.no_progress,
                site=not args.no_site, site_dir=args.site_dir, classification_dir=args.classification_dir,
                restart=args.restart)
    except KernelsLibError as err:
        print(f"kernels_lib figures: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
