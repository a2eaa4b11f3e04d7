"""`vitlab train`: its flags, and the command, which turns them into a run spec for the run store.

Kept apart from cli.py (the parser of every command, evaluate, predict and download) because it is the largest
command: its flags are a table of the recipe's fields, and what they ask for is checked flag against flag.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from . import cli
from .cli import (EXIT_INTERRUPTED, _add, _fail, _fraction, _nonneg_float, _nonneg_int, _positive_float,
                  _positive_int, _report)


def add_train_parser(sub) -> None:
    from .data.info import DATASETS
    from .models.configs import PRESETS
    from .paths import CHECKPOINT
    from .training.recipes import RECIPES

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
    _add(t, "resume", action="store_true", help=f"continue runs/<name>/{CHECKPOINT} where it stopped; the model, recipe and data (dataset, subset, validation split, augmentation) must be the run's own")
    _add(t, "overwrite", action="store_true", help="replace an existing finished run of the same name")
    _add(t, "no_tensorboard", action="store_true", help="do not write TensorBoard events")
    _add(t, "no_progress", action="store_true", help="no progress bars")


def train(a) -> int:
    from .data import load_dataset
    from .paths import CHECKPOINT, ensure_writable, shown
    from .training import distributed as dist
    from .training.checkpoints import RunMismatch
    from .training.config import resolve_device
    from .training.evaluation import evaluate
    from .training.recipes import get_recipe
    from .training.callbacks import Show
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
    configs = _configs(a, get_recipe(a.recipe))
    if isinstance(configs, str):  # a flag that does not fit the others
        return _fail(configs)
    mcfg, init, tcfg = configs
    ckpt = runs_dir / name / CHECKPOINT
    if ckpt.exists() and not (a.resume or a.overwrite):
        return _fail(f"run {name!r} already exists at {ckpt}; pass --resume to continue it, "
                     f"--overwrite to replace it, or --name to start another")
    data = load_dataset(a.dataset, val_size=a.val_size, seed=0)
    spec = _spec(a, name, mcfg, tcfg)
    train_set = data.train.take(a.train_subset, seed=a.seed) if a.train_subset else data.train
    try:
        run = train_or_load(spec, train_set, data.val, init=init, runs_dir=runs_dir, retrain=a.overwrite,
                            show=Show(progress=not a.no_progress, tensorboard=not a.no_tensorboard))
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
    print(f"wrote {run.path}/: {CHECKPOINT}, metrics.json, loss_curves.png, confusion_matrix.png, misclassified.png"
          + ("" if a.no_tensorboard else ", tb/ (tensorboard --logdir " + str(run.path / "tb") + ")"))
    return 0


def _spec(a, name: str, mcfg, tcfg):
    """The run the flags describe, as a value: its images are the dataset's training split (a seeded subset of
    --train_subset), validated on the held-out split."""
    from .training.spec import DataSpec, Part, RunSpec

    subset = (Part.of("take", n=a.train_subset, seed=a.seed),) if a.train_subset else ()
    train_only = tuple(t.strip() for t in a.train_only.split(",") if t.strip()) if a.train_only else ()
    return RunSpec(name, mcfg, tcfg, DataSpec(dataset=a.dataset, train=subset), train_only=train_only)


# The ViT's architecture flags: --model cnn takes none of them, and with --init they are the checkpoint's.
_VIT_FLAGS = ("patch_size", "patch_overlap", "hidden_size", "num_layers", "num_heads", "mlp_ratio", "pos_embed", "pool")


def _configs(a, recipe):
    """What `train`'s flags ask for on top of the recipe: (model config, fine-tuning start or None, training config),
    or the message for the first flag that does not fit the others."""
    from .data import Augment
    from .models.configs import PRESETS, CNNConfig

    if a.model == "cnn":
        mcfg = CNNConfig()
        vit_flags = [f for f in _VIT_FLAGS if getattr(a, f) is not None]
        if vit_flags:
            return f"--{vit_flags[0]} applies to the ViT only, not --model cnn"
        if a.dropout is not None:
            mcfg = replace(mcfg, dropout=a.dropout)
    else:
        over = {k: v for k, v in dict(
            patch_size=a.patch_size, patch_overlap=a.patch_overlap, dim=a.hidden_size, depth=a.num_layers, heads=a.num_heads,
            mlp_ratio=a.mlp_ratio, dropout=a.dropout, pos_embed=a.pos_embed, pool=a.pool).items() if v is not None}
        mcfg = replace(PRESETS[a.preset](), **over) if a.preset else replace(recipe.model, **over)
    init = None
    if a.train_only and not a.init:
        return "--train_only needs --init (a checkpoint to fine-tune)"
    if a.init:
        from .data import DATASETS
        from .methods.pretrained import backbone_from_checkpoint

        if a.model == "cnn":
            return "--init takes a ViT checkpoint; it cannot start --model cnn"
        arch = [f for f in ("preset", *_VIT_FLAGS) if getattr(a, f) is not None]
        if arch:
            return f"--{arch[0]} cannot be combined with --init: the architecture comes from the checkpoint"
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
    return mcfg, init, replace(recipe.train, **tc, augment=augment, seed=a.seed, device=a.device)


def _resume_hint(ckpt: Path) -> str:
    """One line on how to go on after Ctrl-C: the same command with --resume (no --overwrite)."""
    import shlex

    from .training.checkpoints import CheckpointError, read_checkpoint

    try:
        epoch = read_checkpoint(ckpt)["epoch"]
    except CheckpointError:
        return "no epoch had finished, so nothing was saved; run the same command again to start over"
    args = [x for x in (cli._ARGV if cli._ARGV is not None else sys.argv[1:]) if x not in ("--resume", "--overwrite")]
    cmd = "vitlab " + " ".join(shlex.quote(x) for x in args) + " --resume"
    return f"{ckpt} keeps epoch {epoch}; continue with: {cmd}"
