"""Which model class a checkpoint's kind names: one explicit table, no import side effects.

A checkpoint stores its model's kind ("vit", "cnn", "mae", "deit", "jepa", "cvae") and config; `build_model` turns
the two back into a network. Every architecture a checkpoint can hold lives in `vitlab.models`, so this table can
name them all.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from .cnn import SmallCNN
from .configs import CNNConfig, ViTConfig
from .cvae import CVAE, CVAEConfig
from .deit import DeiT, DeiTConfig
from .jepa import JEPA, JEPAConfig
from .mae import MAE, MAEConfig
from .vit import ViT

# kind -> (config class, model class)
MODEL_TYPES = {
    "vit": (ViTConfig, ViT),
    "cnn": (CNNConfig, SmallCNN),
    "deit": (DeiTConfig, DeiT),
    "mae": (MAEConfig, MAE),
    "jepa": (JEPAConfig, JEPA),
    "cvae": (CVAEConfig, CVAE),
}
# what each kind is, for messages
ABOUT = {"vit": "a ViT classifier", "cnn": "a CNN classifier", "deit": "a distilled ViT classifier (DeiT)",
         "mae": "an MAE (a masked autoencoder: it reconstructs pixels and has no trained classifier)",
         "jepa": "an I-JEPA (context and target encoders + predictor: it predicts representations and has no trained "
                 "classifier)",
         "cvae": "a conditional VAE (a generator of labelled digits, not a classifier)"}
CLASSIFIERS = ("vit", "cnn", "deit")  # the kinds that map images to class logits


def model_type_of(model: nn.Module) -> str:
    """The kind of `model` (its exact class, so a DeiT is not taken for a ViT)."""
    for name, (_, cls) in MODEL_TYPES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"cannot checkpoint a {type(model).__name__}: known model types are {sorted(MODEL_TYPES)}")


def model_type_for_config(config) -> str:
    """The kind whose config class `config` is an instance of."""
    for name, (cfg_cls, _) in MODEL_TYPES.items():
        if type(config) is cfg_cls:
            return name
    raise ValueError(f"no model type takes a {type(config).__name__}; known: {sorted(MODEL_TYPES)}")


def build_model(model_type: str, config: dict | Any) -> nn.Module:
    """Build a model from its kind and its config (a dataclass or a dict)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r} (written by a newer vitlab?); known: {sorted(MODEL_TYPES)}")
    cfg_cls, model_cls = MODEL_TYPES[model_type]
    cfg = config if isinstance(config, cfg_cls) else cfg_cls.from_dict(dict(config))
    return model_cls(cfg)
