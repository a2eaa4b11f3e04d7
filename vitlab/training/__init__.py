"""Layer 3, training: the model-agnostic trainer and its callbacks, objectives, inference and evaluation,
checkpoints, named runs and recipes. Imports from vitlab.models, vitlab.data and the core modules."""

from .._lazy import lazy_exports

_WHERE = {
    "TrainConfig": ".config", "resolve_device": ".config", "set_seed": ".config",
    "History": ".history",
    "Objective": ".objectives", "CrossEntropy": ".objectives", "labelled_cross_entropy": ".objectives",
    "map_batches": ".inference", "predict_logits": ".inference", "NonFiniteOutput": ".inference",
    "EvalResult": ".evaluation", "evaluate": ".evaluation",
    "Trainer": ".trainer", "TrainingDiverged": ".trainer",
    "RunLocked": ".lock",
    "Show": ".callbacks", "QUIET": ".callbacks", "run_callbacks": ".callbacks", "Checkpoint": ".callbacks",
    "WeightAverage": ".callbacks", "TensorBoard": ".callbacks", "ProgressBar": ".callbacks", "EpochLog": ".callbacks",
    "GradStats": ".callbacks",
    "CheckpointError": ".checkpoints", "RunMismatch": ".checkpoints", "save_checkpoint": ".checkpoints",
    "read_checkpoint": ".checkpoints", "load_model": ".checkpoints", "load_classifier": ".checkpoints",
    "Run": ".runs", "train_or_load": ".runs", "default_runs_dir": ".runs",
    "RunSpec": ".spec", "DataSpec": ".spec", "Part": ".spec", "Init": ".spec", "Fast": ".spec",
    "Recipe": ".recipes", "RECIPES": ".recipes", "get_recipe": ".recipes",
    "lr_at": ".optim",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
