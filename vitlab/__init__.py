"""vitlab: a Vision Transformer lab for MNIST.

The small public API the notebooks and users build on.
"""

from .attention import attention_maps, attention_rollout, gradient_rollout
from .checkpoint import CheckpointError, build_model, load_checkpoint, load_model, save_checkpoint
from .cnn import CNNConfig, SmallCNN
from .data import Augment, DataError, DataSplits, ImageSet, load_dataset, read_idx
from .distill import (
    DistillConfig,
    DistilledViT,
    DistilledViTConfig,
    HardDistillation,
    SoftDistillation,
    TokenDistillation,
    make_objective,
)
from .explorer import explore_attention
from .features import compare_features, extract_features
from .images import ImageError, load_digit, to_mnist_style
from .model import (
    PRESETS,
    AttentionRecorder,
    ViT,
    ViTConfig,
    count_parameters,
    patchify,
    unpatchify,
    vit_micro_mnist,
    vit_small_mnist,
    vit_tiny_mnist,
)
from .mae import MAE, MAEConfig, MAEObjective, encoder_from_mae, random_masking
from .pretrained import PretrainedError, load_backbone, load_pretrained, vit_from_timm
from .runs import Run, default_runs_dir, train_or_load
from .train import CrossEntropy, EvalResult, History, Objective, TrainConfig, Trainer, evaluate, set_seed

__version__ = "0.1.0"

__all__ = [
    "Augment", "AttentionRecorder", "CheckpointError", "CNNConfig", "DataError", "DataSplits", "EvalResult",
    "CrossEntropy", "History", "ImageError", "Objective", "ImageSet", "PRESETS", "Run", "SmallCNN", "TrainConfig", "Trainer", "ViT", "ViTConfig",
    "build_model", "count_parameters", "default_runs_dir", "evaluate", "load_checkpoint", "load_dataset",
    "load_digit", "load_model", "patchify", "read_idx", "save_checkpoint", "set_seed", "to_mnist_style",
    "train_or_load", "unpatchify", "vit_micro_mnist", "vit_small_mnist", "vit_tiny_mnist",
    "attention_maps", "attention_rollout", "gradient_rollout", "explore_attention",
    "PretrainedError", "load_backbone", "load_pretrained", "vit_from_timm",
    "compare_features", "extract_features",
    "MAE", "MAEConfig", "MAEObjective", "encoder_from_mae", "random_masking",
    "DistillConfig", "DistilledViT", "DistilledViTConfig", "HardDistillation", "SoftDistillation", "TokenDistillation",
    "make_objective",
]
