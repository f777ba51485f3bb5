"""Command line: ``python -m kernels_lib COMMAND ...`` (also installed as ``kernels-lib``).

Each command is a function that adds its sub-parser and sets ``func``; add one to `COMMANDS`
to extend the tool. A kernels_lib error (bad input, missing weights) ends the program with
one message on stderr and exit status 2; an extraction in which some models failed exits 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import KernelsLibError

EXIT_ERROR = 2
EXIT_PARTIAL = 1


def _pair(form: str):
    """An argparse type for KEY=VALUE arguments; `form` (e.g. "MODEL=PATH") is named in the error."""
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
        return key, value
    parse.__name__ = form      # argparse names the type in its message
    return parse


def _add_cluster(parser, what: str, needs: str) -> None:
    """--workers N | --scheduler ADDRESS: where a command's tasks run (`kernels_lib.database.cluster`)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help=f"{what} on a local Dask cluster of N worker processes (default: in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help=f"{what} on a running Dask cluster, e.g. tcp://host:8786 (started with `dask scheduler` "
                            f"and `dask worker ADDRESS`; the workers need kernels_lib and {needs})")


def add_extract(sub) -> None:
    p = sub.add_parser("extract", help="extract the depthwise kernels of a model set into a Parquet database",
                       description="Extract every model of a set into one Parquet file each (resumable: "
                                   "finished files are kept and skipped on a rerun). With --workers or "
                                   "--scheduler the models load in parallel on a Dask cluster and this "
                                   "process writes the files, the same bytes as a serial run.")
    p.add_argument("--models", required=True, metavar="SET",
                   help="model set: a name from data/models (offline, paper, smoke, timm-all) or a .yaml path")
    p.add_argument("--out", type=Path, metavar="DIR", help="output directory (default data/kernels/<SET>)")
    p.add_argument("--kernel-sizes", type=int, nargs="+", metavar="K",
                   help="keep only k×k kernels of these sizes (default: every depthwise kernel)")
    p.add_argument("--seed", type=int, help="seed of every random-init twin of the set (default: as in the file)")
    p.add_argument("--checkpoint", type=_pair("MODEL=PATH"), action="append", default=[], metavar="MODEL=PATH",
                   help="checkpoint file for a state_dict entry of the set (repeatable)")
    p.add_argument("--stop-on-error", action="store_true", help="stop at the first model that fails")
    _add_cluster(p, "load the models, one per task,", "the weights: hub access or the same cache, "
                 "checkpoints at the same paths")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_extract)


def run_extract(args) -> int:
    from .database import extract, store, zoo

    model_set = zoo.load_model_set(args.models, seed=args.seed, checkpoints=dict(args.checkpoint))
    report = extract.extract(model_set, args.out, kernel_sizes=args.kernel_sizes,
                             progress=not args.no_progress, stop_on_error=args.stop_on_error,
                             workers=args.workers, scheduler=args.scheduler)
    files = [report.out_dir / store.kernel_file_name(e.model, e.weights_tag) for e in model_set.entries]
    files = [f for f in files if f.is_file()]
    print(f"{model_set.name}: {len(report.extracted)} extracted, {len(report.skipped)} already done, "
          f"{len(report.failed)} failed -> {report.out_dir}")
    if files:
        print(store.counts(files).to_string())
    for entry_id, why in report.redone.items():
        print(f"extracted {entry_id} again: its file was {why}")
    for entry_id, notes in report.notes.items():
        for note in notes:
            print(f"note {entry_id}: {note}")
    for entry_id, message in report.failed:
        print(f"FAILED {entry_id}: {message}", file=sys.stderr)
    return EXIT_PARTIAL if report.failed else 0


def add_list(sub) -> None:
    p = sub.add_parser("list", help="kernel counts per model and kernel size, or the model sets",
                       description="Without options: the model sets. --models SET: its entries and what "
                                   "is extracted. --db DIR: counts of a kernel database.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--models", metavar="SET", help="a model set (name or .yaml path)")
    what.add_argument("--db", type=Path, metavar="PATH", help="a kernel database (directory or .parquet file)")
    p.add_argument("--out", type=Path, metavar="DIR", help="with --models: its database (default data/kernels/<SET>)")
    p.set_defaults(func=run_list)


def run_list(args) -> int:
    import pandas as pd

    from . import paths
    from .database import store, zoo

    if args.db is not None:
        table = store.counts(args.db)
        print(table.to_string() if len(table) else f"{args.db}: no kernels")
        return 0
    if args.models is None:
        for name in zoo.available_sets():
            model_set = zoo.load_model_set(name)
            print(f"{name:10s} {len(model_set.entries):4d} models  {model_set.description}")
        return 0
    model_set = zoo.load_model_set(args.models)
    out_dir = args.out or paths.kernel_db_dir(model_set.name)
    rows = []
    for entry in model_set.entries:
        path = Path(out_dir) / store.kernel_file_name(entry.model, entry.weights_tag)
        row = {"model": entry.model, "weights_tag": entry.weights_tag, "kind": entry.kind,
               "extracted": path.is_file()}
        if path.is_file():
            sizes = store.read_kernels(path, columns=["kh", "kw"])
            for (kh, kw), n in sizes.value_counts(["kh", "kw"]).sort_index().items():
                row[f"{kh}×{kw}"] = int(n)
        rows.append(row)
    table = pd.DataFrame(rows).set_index(["model", "weights_tag"])
    size_cols = sorted((c for c in table.columns if "×" in c), key=lambda c: tuple(map(int, c.split("×"))))
    table[size_cols] = table[size_cols].fillna(0).astype(int)
    print(f"{model_set.name}: {len(model_set.entries)} models, {int(table.extracted.sum())} extracted in {out_dir}")
    print(table[["kind", "extracted", *size_cols]].to_string())
    return 0


def _add_database(parser, required: bool = False) -> None:
    """--models SET | --db PATH: the kernel database a command reads."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--models", metavar="SET", help="a model set whose database is data/kernels/<SET>")
    where.add_argument("--db", type=Path, metavar="PATH", help="a kernel database (directory or .parquet file)")


def _database(args) -> Path:
    from . import paths

    return args.db or paths.kernel_db_dir(args.models)


def add_train(sub) -> None:
    from .method.autoencoder import TRAINING_DEFAULTS as D

    p = sub.add_parser("train", help="train the autoencoder of one kernel size on a kernel database",
                       description="Train the paper's autoencoder (1-D code) on the k×k kernels of a database "
                                   "(random-init twins left out) and save it, with its provenance, to --out. "
                                   "Defaults are the reference autoencoders' settings.")
    p.add_argument("--kernel-size", type=int, required=True, choices=[5, 7], help="5 or 7")
    _add_database(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the autoencoder")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="add N kernels of the synthetic DoG-family bank to the corpus (default 0)")
    p.add_argument("--snr", type=float, default=4.0, help="signal-to-noise ratio of the synthetic bank")
    p.add_argument("--max-samples", type=int, default=D["max_samples"], metavar="N",
                   help=f"most kernels seen; training stops earlier on a plateau (default {D['max_samples']:,})")
    p.add_argument("--window", type=int, default=D["window"], metavar="N",
                   help=f"kernels seen per loss evaluation of the plateau rule (default {D['window']:,})")
    p.add_argument("--epochs", type=int, default=None,
                   help="the reference autoencoders' rule instead: windows are passes over the corpus, at most this many")
    p.add_argument("--lr", type=float, default=D["lr"], help=f"Adam learning rate (default {D['lr']})")
    p.add_argument("--batch-size", type=int, default=D["batch_size"], help=f"default {D['batch_size']}")
    p.add_argument("--hidden", type=int, nargs="+", default=list(D["hidden"]), metavar="W",
                   help=f"hidden widths (default {' '.join(map(str, D['hidden']))})")
    p.add_argument("--patience", type=int, default=D["patience"],
                   help=f"windows without improvement before a learning-rate drop or the stop (default {D['patience']})")
    p.add_argument("--lr-drops", type=int, default=D["lr_drops"],
                   help=f"learning-rate drops on a plateau before stopping (default {D['lr_drops']})")
    p.add_argument("--num-threads", type=int, default=None,
                   help="torch CPU threads while training (default: every core; 1 on a machine others load)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing autoencoder in --out")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="write the training state to FILE after every window; rerun the same command after an "
                        "interruption to continue from it (removed when training completes)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from .method.corpus import train_from_db

    if not (args.models or args.db or args.synthetic):
        print("kernels_lib train: error: give the kernels to train on: --models SET, --db PATH "
              "and/or --synthetic N", file=sys.stderr)
        return EXIT_ERROR
    synthetic = {"n": args.synthetic, "snr": args.snr, "seed": args.seed} if args.synthetic else None
    db = _database(args) if (args.models or args.db) else None
    ae = train_from_db(args.kernel_size, db, args.out, synthetic=synthetic, overwrite=args.overwrite,
                       hidden=tuple(args.hidden), lr=args.lr, batch_size=args.batch_size, max_samples=args.max_samples,
                       window=args.window, max_epochs=args.epochs, patience=args.patience, lr_drops=args.lr_drops,
                       num_threads=args.num_threads, seed=args.seed, checkpoint=args.checkpoint,
                       progress=not args.no_progress)
    prov = ae.provenance
    print(f"trained {args.kernel_size}x{args.kernel_size} autoencoder: {prov.get('samples_seen'):,} kernels seen "
          f"({prov.get('epochs_run')} passes, {prov.get('torch_threads')} threads), "
          f"best loss {prov.get('best_loss'):.4f} -> {args.out}")
    return 0


def add_label(sub) -> None:
    p = sub.add_parser("label", help="propose spectrum labels for a trained autoencoder",
                       description="Decode equally spaced codes, match each decoded kernel to the DoG-family "
                                   "templates and write the labelled code intervals beside the autoencoder. "
                                   "An existing (possibly hand-edited) label file is kept unless --overwrite.")
    p.add_argument("autoencoder", type=Path, metavar="DIR")
    p.add_argument("--min-similarity", type=float, default=0.8,
                   help="decoded kernels matching no template this well are labelled 'other'")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_label)


def run_label(args) -> int:
    from .method.spectrum import label_spectrum, read_labels

    path = label_spectrum(args.autoencoder, min_similarity=args.min_similarity, overwrite=args.overwrite)
    for interval in read_labels(path):
        print(f"{interval.start:.4f}-{interval.end:.4f}  {interval.label}")
    print(f"-> {path}")
    return 0


def add_classify(sub) -> None:
    p = sub.add_parser("classify", help="classify every kernel of a database; print %% clustered per model "
                                           "(3×3: k-means cluster shares)",
                       description="5×5 and 7×7 kernels: nearest decoded code of the reference autoencoders "
                                   "(data/autoencoders) under the paper's thresholds; 3×3: k-means on min-max "
                                   "encoded kernels. Writes one Parquet row per kernel.")
    _add_database(p, required=True)
    p.add_argument("--autoencoder", type=_pair("K=DIR"), action="append", default=[], metavar="K=DIR",
                   help="autoencoder for k×k kernels, e.g. 7=my/ae7 (default: data/autoencoders/KxK)")
    p.add_argument("--threshold", type=_pair("K=T"), action="append", default=[], metavar="K=T",
                   help="threshold of 1 − cos for k×k kernels (default 5=0.2, 7=0.3)")
    p.add_argument("--method", choices=["fast", "reference"], default="fast")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="results Parquet (default data/results/<SET>/classification.parquet)")
    _add_cluster(p, "classify one kernel file per task", "the database and autoencoders at the same paths")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_classify)


def run_classify(args) -> int:
    from . import paths, vocab
    from .analysis import results, tables

    autoencoders = {**paths.REFERENCE_AUTOENCODERS, **{int(k): Path(d) for k, d in args.autoencoder}}
    thresholds = {int(k): float(t) for k, t in args.threshold} or None
    classified = results.classify_kernels(_database(args), autoencoder_dirs=autoencoders, thresholds=thresholds,
                                          method=args.method, progress=not args.no_progress,
                                          workers=args.workers, scheduler=args.scheduler)
    out = args.out or paths.results_path(args.models or Path(args.db).stem)
    results.write_results(classified, out)
    methods = set(classified["clustering"])
    if vocab.AUTOENCODER in methods:
        print(tables.clustered_fraction(classified).to_string())
    if vocab.KMEANS in methods:     # k-means assigns every kernel: cluster shares, not a % clustered
        print("3×3 kernels, share of each k-means cluster (named by its nearest template):")
        print(tables.model_proportions(classified, kernel_size=3, clustering=vocab.KMEANS).round(3).to_string())
    print(f"-> {out}")
    return 0


def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="classify the depthwise kernels of one model file, timm name or model set "
                                       "and write an HTML report",
                       description="Extract the depthwise kernels of SOURCE and of its random-init twin, classify "
                                   "them (5×5/7×7: reference autoencoders under the paper's thresholds; 3×3: "
                                   "k-means), print % clustered and class shares per kernel size, and write "
                                   "OUT/NAME.html (one self-contained page: per-layer bars, class galleries) and "
                                   "OUT/NAME.parquet (one row per kernel: weights and labels).")
    p.add_argument("source", metavar="SOURCE",
                   help="a weights file (.pth .pt .bin .ckpt .safetensors .onnx .tflite .keras .h5 .hdf5, a TF.js "
                        "model.json or its folder), a timm name (arch.tag) or a model-set .yaml")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default: here)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-init twin (default 0)")
    p.add_argument("--no-twin", action="store_true", help="no random-init twin (the report then has no control)")
    p.add_argument("--layout", choices=["torch", "tf"], help="layout of bare weights when detection guesses wrong")
    p.add_argument("--per-class", type=int, default=8, metavar="N", help="kernels per class in the galleries")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_inspect)


def run_inspect(args) -> int:
    from .publish import report

    found = report.inspect_source(args.source, args.out, seed=None if args.no_twin else args.seed,
                                  layout=args.layout, progress=not args.no_progress)
    print(report.summary_text(found))
    for what, path in report.write_report(found, args.out, args.per_class, progress=not args.no_progress).items():
        print(f"{what} -> {path}")
    return 0


def add_figures(sub) -> None:
    from .publish import notebooks

    p = sub.add_parser("figures", help="re-run every numbered notebook with papermill and regenerate figures/",
                       description="Re-execute notebooks/NN_*.ipynb in order (executed copies go to the build "
                                   "folder, never over the sources); a failing cell stops the run and names "
                                   "the notebook and the error. A rerun resumes: notebooks the run manifest "
                                   "(<build folder>/run_manifest.json) records as completed with the same notebook, "
                                   "parameters, code and inputs are skipped, and the reason is printed; --restart "
                                   "runs them all again.")
    notebooks.add_arguments(p)
    p.set_defaults(func=notebooks.run_from_args)


#: Sub-command registrars, in the order `--help` lists them; each adds a sub-parser with `func`.
COMMANDS = [add_extract, add_list, add_train, add_label, add_classify, add_inspect, add_figures]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kernels_lib",
        description="Identifiable clusters in trained depthwise convolutional kernels (ICLR 2024).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KernelsLibError as err:
        print(f"kernels_lib {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
