"""Command line: ``python -m vitlab`` or ``vitlab``.

    vitlab train [--epochs 12 --batch_size 256 --learning_rate 2e-3 ...] [--name NAME] [--resume]
    vitlab evaluate --checkpoint runs/NAME/checkpoint.pt [--split test]
    vitlab predict --checkpoint runs/NAME/checkpoint.pt my_digit.png [...] [--explain DIR] [--no-check]
    vitlab download [--dataset mnist]
    vitlab lab [JUPYTERLAB OPTIONS ...]
    torchrun --nproc_per_node=N -m vitlab train ...   (N processes, DistributedDataParallel)

Any bad flag, missing or unreadable file prints one line, ``vitlab: error: ...``,
and exits with status 2 (no traceback). `predict` classifies every readable image,
reports each bad one in a line and exits with status 1 if any failed. Ctrl-C during
`train` keeps the last finished epoch and exits with status 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_SOME_FAILED = 1  # predict: some images could not be read
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit with status 2."""

    def error(self, message):
        raise SystemExit(_fail(f"{message} (see `vitlab {self.prog.split()[-1]} --help`)"
                               if " " in self.prog else message))


def _fail(message: str) -> int:
    print(f"vitlab: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _bounded(kind, minimum, what, maximum=None, strict=False):
    """An argparse type: `kind(s)`, finite, at least `minimum` (above it, `strict`) and below `maximum` when given,
    else a message saying `what` was expected and naming the value."""

    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        ok = math.isfinite(v) and (v > minimum if strict else v >= minimum) and (maximum is None or v < maximum)
        if not ok:  # also rejects nan and inf
            raise argparse.ArgumentTypeError(f"expected {what}, got {s}")
        return v

    return parse


_positive_int = _bounded(int, 1, "a positive integer")
_nonneg_int = _bounded(int, 0, "an integer >= 0")
_nonneg_float = _bounded(float, 0.0, "a finite number >= 0")
_positive_float = _bounded(float, 0.0, "a finite number > 0", strict=True)
_fraction = _bounded(float, 0.0, "a number in [0, 1)", maximum=1.0)


def _add(p, name: str, **kw):
    """Add --snake_case with its --dash-case twin (ViT repositories use both)."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    p.add_argument(*flags, dest=name, **kw)


def build_parser() -> argparse.ArgumentParser:
    from .data.info import DATASETS
    from .paths import CHECKPOINT

    parser = _Parser(prog="vitlab", description="vitlab: Vision Transformers on MNIST, from scratch.")
    from .cli_train import add_train_parser

    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,download,lab}", parser_class=_Parser)
    add_train_parser(sub)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint", description="Accuracy, report and figures for a checkpoint.")
    _add(e, "checkpoint", required=True, help=f"path to {CHECKPOINT}")
    _add(e, "split", default="test", choices=["test", "val"], help="which split (default: test)")
    _add(e, "out", help="also write confusion_matrix.png and misclassified.png here")
    _add(e, "device", default="auto", help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N, mps (default: auto)")

    p = sub.add_parser("predict", help="classify your own images", description="Classify PNG/JPEG images of any size.")
    _add(p, "checkpoint", required=True, help=f"path to {CHECKPOINT}")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size; dark-on-light is inverted)")
    _add(p, "top", type=_positive_int, default=1, help="show the top-k classes (default 1)")
    _add(p, "explain", metavar="DIR", help="also write DIR/<image>.explain.png: the digit the model saw, its "
                                             "attention (a transformer) and the probabilities")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the 'is this like a digit?' check (it is fitted once per checkpoint, then cached)")

    d = sub.add_parser("download", help="download a dataset into the data cache (needs internet)")
    _add(d, "dataset", default="mnist", choices=sorted(DATASETS))

    sub.add_parser("lab", help="open the notebook series in JupyterLab (what `make lab` runs)", add_help=False,
                   description="Start JupyterLab on notebooks/; any further options go to JupyterLab "
                               "(e.g. --no-browser --port 8899). As root, adds --allow-root.")
    return parser


# --------------------------------------------------------------------------- commands


def _report(out: Path, model, history, result, test_set) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from .apps.report import write_run_report

    write_run_report(out, model, history, result, test_set)


def _evaluate(a) -> int:
    from .training.checkpoints import load_classifier
    from .training.config import resolve_device
    from .training.evaluation import evaluate, evaluation_split
    from .paths import ensure_writable

    device = resolve_device(a.device)
    if a.out:
        ensure_writable(Path(a.out), "--out")
    model, ckpt = load_classifier(a.checkpoint, map_location=device)
    split, left_out = evaluation_split(ckpt, a.checkpoint, a.split)
    if left_out:
        print(f"{ckpt.get('dataset') or 'mnist'} classes {', '.join(left_out)} are not among the model's training "
              f"labels: left out")
    result = evaluate(model, split)
    print(f"{a.checkpoint} on {split.name}: {result.summary()}")
    print(result.report)
    if a.out:
        _report(Path(a.out), model, None, result, split)
        print(f"wrote {a.out}/: metrics.json, confusion_matrix.png" + (", misclassified.png" if result.errors else ""))
    return 0


def _predict(a) -> int:
    from .images import ImageError, read_picture
    from .apps.reading import DigitReader
    from .paths import ensure_writable, output_names

    out = Path(a.explain) if a.explain else None
    if out is not None:
        ensure_writable(out, "--explain")
    names = dict(zip(a.images, output_names(a.images, ".explain.png")))
    reader = DigitReader.from_checkpoint(a.checkpoint, check=False)
    k = min(a.top, len(reader.classes))
    width = max(len(str(p)) for p in a.images) + 1
    failed = 0
    for path in a.images:  # one at a time, so a bad file costs only its own line
        try:
            picture = read_picture(path)  # (H, W) grayscale, as in the file
            if a.check and reader.check is None and reader.check_error is None:  # fitted once, for a readable image
                reader.fit_check(log=lambda m: print(f"vitlab: {m}", file=sys.stderr))
                if reader.check_error:
                    print(f"vitlab: warning: no digit check: {reader.check_error}", file=sys.stderr)
            try:
                reading = reader.read(picture)
            except ImageError as e:
                raise ImageError(f"{path}: {e}") from None
        except (ImageError, OSError) as e:
            failed += 1
            print(f"vitlab: error: {str(e).splitlines()[0]}", file=sys.stderr)
            continue
        best = ", ".join(f"{c} ({v:.1%})" for c, v in reading.top(k))
        flag = ""
        if reading.digit_like is False:
            flag = f"  not like a digit? (score {reading.score:.3f} < {reading.threshold:.3f})"
        print(f"{str(path) + ':':<{width}} {best}{flag}", flush=True)
        if out is not None:
            import matplotlib.pyplot as plt

            from .viz.reading import plot_reading

            png = out / names[path]
            fig = plot_reading(reading, title=Path(path).name, picture=picture)
            fig.savefig(png, dpi=110)
            plt.close(fig)
    if out is not None and failed < len(a.images):
        print(f"wrote {out}/: one .explain.png per image", file=sys.stderr)
    if failed:
        print(f"vitlab: {failed} of {len(a.images)} images could not be read", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _download(a) -> int:
    from .data import download_dataset, read_split

    raw = download_dataset(a.dataset)
    for split in ("train", "test"):
        images, _ = read_split(raw, split)
        print(f"{a.dataset} {split}: {len(images)} images in {raw}")
    return 0


_ARGV = None  # the argv `main` was called with, for train's resume hint


def _env_rank() -> int:  # torchrun's $RANK, not dist.rank(): an early error comes before the process group is joined
    return int(os.environ.get("RANK", "0"))


def main(argv=None) -> int:
    global _ARGV
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["lab"]:  # everything after `lab` belongs to JupyterLab
        from .lab import start_lab

        return start_lab(args[1:])
    _ARGV = args
    parser = build_parser()
    try:
        a = parser.parse_args(args)
    except SystemExit as e:
        return int(e.code or 0)
    if a.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .data import DataError
    from .images import ImageError
    from .training.checkpoints import CheckpointError
    from .training import distributed as dist
    from .training.lock import RunLocked

    try:
        from .cli_train import train

        return {"train": train, "evaluate": _evaluate, "predict": _predict, "download": _download}[a.command](a)
    except (CheckpointError, DataError, ImageError, FileNotFoundError, ValueError, RunLocked) as e:
        # Under torchrun every process meets the same bad input: the first one says it.
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__) if _env_rank() == 0 else EXIT_USAGE
    except RuntimeError as e:
        if not dist.launched_distributed():
            raise
        # A collective failed: another process died, or did not answer within $VITLAB_DIST_TIMEOUT seconds.
        return _fail(f"process {_env_rank()} of {os.environ['WORLD_SIZE']} stopped: training together failed, another "
                     f"process died or timed out ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})")
    except KeyboardInterrupt:
        print("vitlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
