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
from dataclasses import replace
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
    from .models.configs import PRESETS
    from .training.recipes import RECIPES

    parser = _Parser(prog="vitlab", description="vitlab: Vision Transformers on MNIST, from scratch.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,download,lab}", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and write runs/<name>/", description="Train a ViT (or the CNN baseline).")
    _add(t, "recipe", default="default", choices=sorted(RECIPES),
         help="training recipe: model preset + settings; flags below override it (default: %(default)s). "
              + "; ".join(f"{r.name}: {r.about}" for r in RECIPES.values()))
    _add(t, "preset", choices=sorted(PRESETS), help="model preset (default: the recipe's)")
    _add(t, "model", default="vit", choices=["vit", "cnn"], help="vit, or the small CNN baseline")
    _add(t, "epochs", type=_positive_int, help="passes over the training set (default: the recipe's)")
    _add(t, "batch_size", type=_positive_int, help="images per step (default 256)")
    _add(t, "learning_rate", type=_positive_float, help="peak learning rate (default 2e-3)")
    _add(t, "weight_decay", type=_nonneg_float, help="AdamW weight decay (default 0.05)")
    _add(t, "warmup_epochs", type=_nonneg_float, help="linear warm-up length (default 1)")
    _add(t, "schedule", choices=["cosine", "onecycle", "constant"], help="learning-rate schedule (default cosine)")
    _add(t, "label_smoothing", type=_fraction, help="label smoothing (default 0.1)")
    _add(t, "seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    _add(t, "grad_clip", type=_nonneg_float, help="max gradient norm, 0 = off (default 1.0)")
    _add(t, "ema_decay", type=_fraction,
         help="average the weights with this per-step decay, e.g. 0.999; the saved model is the average (0 = off)")
    _add(t, "patch_size", type=_positive_int, help="patch side in pixels; must divide 28")
    _add(t, "patch_overlap", type=_nonneg_int,
         help="pixels of its neighbours each patch embedding also sees, on every side (0 = none; less than the patch)")
    _add(t, "hidden_size", type=_positive_int, help="token width D")
    _add(t, "num_layers", type=_positive_int, help="Transformer blocks")
    _add(t, "num_heads", type=_positive_int, help="attention heads; must divide hidden_size")
    _add(t, "mlp_ratio", type=_positive_float, help="MLP width as a multiple of hidden_size")
    _add(t, "dropout", type=_fraction, help="dropout rate")
    _add(t, "pos_embed", choices=["learned", "sincos", "none"], help="positional embedding")
    _add(t, "pool", choices=["cls", "mean"], help="read the CLS token or average patch tokens")
    _add(t, "no_augment", action="store_true", help="turn off rotation/scale/shift augmentation")
    _add(t, "elastic", type=_nonneg_float, help="elastic distortion strength in pixels (default 0 = off)")
    _add(t, "dataset", default="mnist", choices=sorted(DATASETS), help="dataset (default: %(default)s)")
    _add(t, "train_subset", type=_positive_int, help="train on this many images only (quick runs)")
    _add(t, "val_size", type=_nonneg_int,
         help="validation images held out of the training images (default: 5000 of the 60k; a tenth of the "
              "offline 4k fallback)")
    _add(t, "max_steps_per_epoch", type=_positive_int, help="cut each epoch to this many steps")
    _add(t, "init", metavar="CHECKPOINT",
         help="fine-tune: start from this ViT checkpoint (any vitlab run); the architecture is the checkpoint's, "
              "with a new head when the number of classes differs")
    _add(t, "train_only", metavar="PREFIXES",
         help="with --init: train only the parameters whose names start with these comma-separated prefixes "
              "(e.g. head = a linear probe); the rest stay frozen")
    _add(t, "name", help="run name (default: the preset, or 'cnn')")
    _add(t, "runs_dir", help="where runs are written (default: runs/)")
    _add(t, "device", default="auto", help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N, mps (default: auto)")
    _add(t, "resume", action="store_true", help="continue runs/<name>/checkpoint.pt where it stopped; the model, recipe and data (dataset, subset, validation split, augmentation) must be the run's own")
    _add(t, "overwrite", action="store_true", help="replace an existing finished run of the same name")
    _add(t, "no_tensorboard", action="store_true", help="do not write TensorBoard events")
    _add(t, "no_progress", action="store_true", help="no progress bars")

    e = sub.add_parser("evaluate", help="evaluate a checkpoint", description="Accuracy, report and figures for a checkpoint.")
    _add(e, "checkpoint", required=True, help="path to checkpoint.pt")
    _add(e, "split", default="test", choices=["test", "val"], help="which split (default: test)")
    _add(e, "out", help="also write confusion_matrix.png and misclassified.png here")
    _add(e, "device", default="auto", help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N, mps (default: auto)")

    p = sub.add_parser("predict", help="classify your own images", description="Classify PNG/JPEG images of any size.")
    _add(p, "checkpoint", required=True, help="path to checkpoint.pt")
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


def _train(a) -> int:
    from .data import Augment, load_dataset
    from .models.configs import PRESETS, CNNConfig
    from .training import distributed as dist
    from .training.config import resolve_device
    from .paths import ensure_writable, shown
    from .training.checkpoints import RunMismatch
    from .training.evaluation import evaluate
    from .training.recipes import get_recipe
    from .training.runs import check_run_name, default_runs_dir, train_or_load

    if a.resume and a.overwrite:
        return _fail("--resume continues a run and --overwrite replaces it: pass one of them, not both")
    name = a.name if a.name is not None else ("cnn" if a.model == "cnn" else a.preset or f"vit_{a.recipe}")
    check_run_name(name)
    runs_dir = Path(a.runs_dir) if a.runs_dir else default_runs_dir()
    if dist.is_main():  # before any work: a place that cannot be written is found now, not after an epoch
        ensure_writable(runs_dir / name, "run folder")
    # Fail early on an unavailable device; under torchrun, join the other processes before anything is written.
    dist.init_from_env(dist.local_device(resolve_device(a.device)))
    recipe = get_recipe(a.recipe)
    if a.model == "cnn":
        mcfg = CNNConfig()
        vit_flags = [f for f in ("patch_size", "patch_overlap", "hidden_size", "num_layers", "num_heads", "mlp_ratio", "pos_embed", "pool")
                     if getattr(a, f) is not None]
        if vit_flags:
            return _fail(f"--{vit_flags[0]} applies to the ViT only, not --model cnn")
        if a.dropout is not None:
            mcfg = replace(mcfg, dropout=a.dropout)
    else:
        over = {k: v for k, v in dict(
            patch_size=a.patch_size, patch_overlap=a.patch_overlap, dim=a.hidden_size, depth=a.num_layers, heads=a.num_heads,
            mlp_ratio=a.mlp_ratio, dropout=a.dropout, pos_embed=a.pos_embed, pool=a.pool).items() if v is not None}
        mcfg = replace(PRESETS[a.preset](), **over) if a.preset else replace(recipe.model, **over)
    init = None
    if a.train_only and not a.init:
        return _fail("--train_only needs --init (a checkpoint to fine-tune)")
    if a.init:
        from .data import DATASETS
        from .methods.pretrained import backbone_from_checkpoint

        if a.model == "cnn":
            return _fail("--init takes a ViT checkpoint; it cannot start --model cnn")
        arch = [f for f in ("preset", "patch_size", "patch_overlap", "hidden_size", "num_layers", "num_heads", "mlp_ratio", "pos_embed",
                            "pool") if getattr(a, f) is not None]
        if arch:
            return _fail(f"--{arch[0]} cannot be combined with --init: the architecture comes from the checkpoint")
        init = backbone_from_checkpoint(a.init, num_classes=len(DATASETS[a.dataset].classes))
        mcfg = replace(init.cfg, **({"dropout": a.dropout} if a.dropout is not None else {}))
    tc = {k: v for k, v in dict(
        epochs=a.epochs, batch_size=a.batch_size, lr=a.learning_rate, weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs, schedule=a.schedule, label_smoothing=a.label_smoothing,
        grad_clip=a.grad_clip, ema_decay=a.ema_decay, max_steps_per_epoch=a.max_steps_per_epoch).items() if v is not None}
    augment = recipe.train.augment
    if a.no_augment:
        augment = None
    elif a.elastic is not None:
        augment = replace(augment or Augment(), elastic_alpha=a.elastic)
    tcfg = replace(recipe.train, **tc, augment=augment, seed=a.seed, device=a.device)
    ckpt = runs_dir / name / "checkpoint.pt"
    if ckpt.exists() and not (a.resume or a.overwrite):
        return _fail(f"run {name!r} already exists at {ckpt}; pass --resume to continue it, "
                     f"--overwrite to replace it, or --name to start another")
    data = load_dataset(a.dataset, val_size=a.val_size, seed=0)
    train_set = data.train.take(a.train_subset, seed=a.seed) if a.train_subset else data.train
    train_only = [t.strip() for t in a.train_only.split(",") if t.strip()] if a.train_only else None
    try:
        run = train_or_load(name, mcfg, train_set, data.val, tcfg, runs_dir=runs_dir, retrain=a.overwrite,
                            tensorboard=not a.no_tensorboard, progress=not a.no_progress, init=init,
                            train_only=train_only)
    except KeyboardInterrupt:
        if dist.is_main():
            print(f"vitlab: interrupted; {_resume_hint(ckpt)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunMismatch as e:  # the library's hint names its argument (retrain=True); say the flags instead
        verb = "resume" if a.resume else "reuse"
        return _fail(f"cannot {verb} run {name!r} ({shown(e.path)}): it was trained with a different setup "
                     f"({e.what}); --overwrite starts it afresh, --name starts another run")
    main_process = dist.is_main()
    dist.finish()
    if not main_process:  # every process holds the same model: the main one evaluates and writes, once
        return 0
    result = evaluate(run.model, data.test)
    print(f"test {result.summary()}")
    _report(run.path, run.model, run.history, result, data.test)
    print(f"wrote {run.path}/: checkpoint.pt, metrics.json, loss_curves.png, confusion_matrix.png, misclassified.png"
          + ("" if a.no_tensorboard else ", tb/ (tensorboard --logdir " + str(run.path / "tb") + ")"))
    return 0


def _report(out: Path, model, history, result, test_set) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from .viz.report import write_run_report

    write_run_report(out, model, history, result, test_set)


def _resume_hint(ckpt: Path) -> str:
    """One line on how to go on after Ctrl-C: the same command with --resume (no --overwrite)."""
    import shlex

    from .training.checkpoints import CheckpointError, read_checkpoint

    try:
        epoch = read_checkpoint(ckpt)["epoch"]
    except CheckpointError:
        return "no epoch had finished, so nothing was saved; run the same command again to start over"
    args = [x for x in (_ARGV if _ARGV is not None else sys.argv[1:]) if x not in ("--resume", "--overwrite")]
    cmd = "vitlab " + " ".join(shlex.quote(x) for x in args) + " --resume"
    return f"{ckpt} keeps epoch {epoch}; continue with: {cmd}"


_ARGV = None  # the argv `main` was called with, for the resume hint


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
    from .methods.reading import DigitReader
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


def _env_rank() -> int:
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
    from .training.lock import RunLocked

    try:
        return {"train": _train, "evaluate": _evaluate, "predict": _predict, "download": _download}[a.command](a)
    except (CheckpointError, DataError, ImageError, FileNotFoundError, ValueError, RunLocked) as e:
        # Under torchrun every process meets the same bad input: the first one says it.
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__) if _env_rank() == 0 else EXIT_USAGE
    except RuntimeError as e:
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            raise
        # A collective failed: another process died, or did not answer within $VITLAB_DIST_TIMEOUT seconds.
        return _fail(f"process {_env_rank()} of {os.environ['WORLD_SIZE']} stopped: training together failed, another "
                     f"process died or timed out ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})")
    except KeyboardInterrupt:
        print("vitlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
