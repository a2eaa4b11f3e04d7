"""vitlab: a Vision Transformer lab for MNIST.

The few names a learner needs, importable from ``vitlab`` directly; everything else lives in its layer:
``vitlab.data``, ``vitlab.models``, ``vitlab.training``, ``vitlab.analysis``, ``vitlab.methods``, ``vitlab.viz``,
``vitlab.apps`` and ``vitlab.experiments`` (the series' runs as data; see docs/architecture.md). ``import vitlab`` itself loads nothing heavy: each name
imports its module when first used.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_WHERE = {
    # data
    "load_dataset": ".data.datasets", "ImageSet": ".data.imageset", "Augment": ".data.augment",
    "DataError": ".data.idx",
    # models
    "ViTConfig": ".models.configs", "CNNConfig": ".models.configs", "PRESETS": ".models.configs",
    "vit_micro_mnist": ".models.configs", "vit_mini_mnist": ".models.configs", "vit_tiny_mnist": ".models.configs",
    "vit_small_mnist": ".models.configs",
    "ViT": ".models.vit", "SmallCNN": ".models.cnn", "count_parameters": ".models.vit",
    # training
    "TrainConfig": ".training.config", "Trainer": ".training.trainer", "train_or_load": ".training.runs",
    "evaluate": ".training.evaluation", "predict_logits": ".training.inference",
    "save_checkpoint": ".training.checkpoints", "load_model": ".training.checkpoints",
    "CheckpointError": ".training.checkpoints",
    # a user's own images
    "read_digit": ".images", "DigitPad": ".apps.digitpad",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
