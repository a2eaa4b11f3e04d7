"""Which model class a checkpoint's kind names: one explicit table, no import side effects.

A checkpoint stores its model's kind ("vit", "cnn", "mae", "deit", "jepa", "cvae", "set_sum", "set_anchor") and
config; `build_model` turns the two back into a network. Every architecture a checkpoint can hold lives in
`vitlab.models`, so this table can name them all.

The two set models share one config class (`SetConfig`); its `kind` field says which of them a config is for,
except "fc", the fully connected baseline both have, which only the caller can settle (`model_type_of` a built
model always can).
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
from .sets import AnchorSetModel, SetConfig, SumSetModel
from .vit import ViT

# kind -> (config class, model class)
MODEL_TYPES = {
    "vit": (ViTConfig, ViT),
    "cnn": (CNNConfig, SmallCNN),
    "deit": (DeiTConfig, DeiT),
    "mae": (MAEConfig, MAE),
    "jepa": (JEPAConfig, JEPA),
    "cvae": (CVAEConfig, CVAE),
    "set_sum": (SetConfig, SumSetModel),
    "set_anchor": (SetConfig, AnchorSetModel),
}
# what each kind is, for messages
ABOUT = {"vit": "a ViT classifier", "cnn": "a CNN classifier", "deit": "a distilled ViT classifier (DeiT)",
         "mae": "an MAE (a masked autoencoder: it reconstructs pixels and has no trained classifier)",
         "jepa": "an I-JEPA (context and target encoders + predictor: it predicts representations and has no trained "
                 "classifier)",
         "cvae": "a conditional VAE (a generator of labelled digits, not a classifier)",
         "set_sum": "a set model for the sum of a sequence of digit embeddings (not an image classifier)",
         "set_anchor": "a set model for whether an anchor's digit occurs in a sequence (not an image classifier)"}
CLASSIFIERS = ("vit", "cnn", "deit")  # the kinds that map images to class logits


def model_type_of(model: nn.Module) -> str:
    """The kind of `model` (its exact class, so a DeiT is not taken for a ViT)."""
    for name, (_, cls) in MODEL_TYPES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"cannot checkpoint a {type(model).__name__}: known model types are {sorted(MODEL_TYPES)}")


def model_type_for_config(config) -> str:
    """The kind whose config class `config` is an instance of (for a shared class, the one whose model builds the
    config's `kind`)."""
    names = [name for name, (cfg_cls, _) in MODEL_TYPES.items() if type(config) is cfg_cls]
    if len(names) > 1:
        names = [name for name in names if getattr(config, "kind", None) in MODEL_TYPES[name][1].KINDS]
        if len(names) > 1:
            raise ValueError(f"a {type(config).__name__} of kind {config.kind!r} fits the model types {names}: "
                             "build the model to tell them apart")
    if not names:
        raise ValueError(f"no model type takes a {type(config).__name__}"
                         + (f" of kind {config.kind!r}" if hasattr(config, "kind") else "")
                         + f"; known: {sorted(MODEL_TYPES)}")
    return names[0]


def build_model(model_type: str, config: dict | Any) -> nn.Module:
    """Build a model from its kind and its config (a dataclass or a dict)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r} (written by a newer vitlab?); known: {sorted(MODEL_TYPES)}")
    cfg_cls, model_cls = MODEL_TYPES[model_type]
    cfg = config if isinstance(config, cfg_cls) else cfg_cls.from_dict(dict(config))
    return model_cls(cfg)
