"""Layer 8, experiments: the series' runs as data, and the one runner that trains or loads them.

Each notebook's runs are `RunSpec` values in the module named after its subject (common: notebook 03's models and
the seed helpers; gradients: 04; positions: 05; finetune: 07-08; mae: 09; distillation: 10; own_digits: 11;
jepa: 12; synthetic: 13; sequences: 14; openset_protocol: benchmarks/openset.py's candidates); `catalog` lists the
notebooks' runs. `trained(spec, data)` trains, resumes or loads a
spec, applying FAST once, from the environment. Nothing below this layer imports it: the library never knows a
notebook's numbers.
"""

from .._lazy import lazy_exports

_WHERE = {
    "trained": ".runner", "seed_runs": ".runner", "for_this_mode": ".runner", "fast_mode": ".runner",
    "runs_dir": ".runner", "select": ".runner",
    "SEEDS": ".common", "VIT_DEFAULT": ".common", "CNN_BASELINE": ".common", "VIT_NO_SMOOTHING": ".common",
    "CNN_BASELINE_EPOCHS": ".common", "mean_std": ".common", "pm": ".common", "per_seed": ".common",
    "notebook_runs": ".catalog", "all_runs": ".catalog",
    "ABLATION_RUNS": ".positions", "POSITION_KINDS": ".positions", "ablation_scores": ".positions",
    "BLOCK_STOPPED_AT": ".jepa", "JEPA_PRETRAIN": ".jepa", "JEPA_PRETRAIN_EPOCHS": ".jepa",
    "cached_frozen_eval": ".jepa", "collapse_spec": ".jepa", "jepa_finetune_spec": ".jepa",
    "pretrain_step_seconds": ".jepa",
    "DEEP_RUNS": ".gradients", "HIGH_LR_RUNS": ".gradients", "SPIKE_FACTOR": ".gradients",
    "SPIKE_WINDOW": ".gradients", "clipped_share": ".gradients", "grad_spikes": ".gradients",
    "high_lr_variants": ".gradients", "per_epoch": ".gradients", "spike_summary": ".gradients",
    "LONG": ".sequences", "SequenceLab": ".sequences",
    "MAE_PRETRAIN": ".mae", "MAE_PRETRAIN_EPOCHS": ".mae", "mae_finetune_spec": ".mae",
    "STUDENT_EPOCHS": ".distillation", "STUDENT_IMAGES": ".distillation", "STUDENT_SEEDS": ".distillation",
    "STUDENT_SETUPS": ".distillation", "TRANSFER_SETUPS": ".distillation", "student_config": ".distillation",
    "student_distill_config": ".distillation", "student_spec": ".distillation",
    "VARIANTS": ".own_digits", "non_digits": ".own_digits", "photos_of_digits": ".own_digits",
    "picture_scores": ".own_digits", "preprocessing_ablation": ".own_digits", "score_comparison": ".own_digits",
    "clean_backbone_spec": ".finetune", "open_set_spec": ".finetune", "open_set_specs": ".finetune",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
