"""Features of any model, one extractor: pre-logit, pooled or token features through the model's named methods.

Any model with `forward_features` and `forward_head(pre_logits=True)` (every vitlab ViT, the CNN, a fine-tuned
model from any checkpoint, an MAE's encoder) gives its features; raw pixels are the baseline.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..data import ImageSet
from ..training.checkpoints import load_model
from ..training.inference import map_batches

FEATURE_LAYERS = ("pre_logits", "pooled", "cls", "mean", "cls+mean", "patches")
TOKEN_LAYERS = ("cls", "mean", "cls+mean", "patches")  # read off a transformer's tokens


def features_from_tokens(model, tokens: torch.Tensor, layer: str) -> torch.Tensor:
    """One layer's features of a batch, from the output of `model.forward_features`: (B, F)."""
    if layer == "pre_logits":
        return model.forward_head(tokens, pre_logits=True)
    if layer == "pooled":
        return model.forward_pool(tokens)
    cls, patches = tokens[:, 0], tokens[:, model.num_prefix_tokens:]  # (B, D), (B, N, D)
    if layer == "cls":
        return cls
    if layer == "mean":
        return patches.mean(dim=1)
    if layer == "cls+mean":
        return torch.cat([cls, patches.mean(dim=1)], dim=1)
    return patches.flatten(1)  # "patches": (B, N * D), in patch order


def extract_features(model, data: ImageSet, batch_size: int = 1000, layer="pre_logits"):
    """Features of every image of `data`: (N, F), or {layer: (N, F)} from one pass when `layer` is a tuple.

    layer "pre_logits": what the classifier reads, `forward_head(..., pre_logits=True)` (for a ViT the CLS token after
    the final LayerNorm; for the CNN the output of its hidden fully connected layer). "pooled": `forward_pool`, the
    pooled output of the backbone before any head layer (the same as pre_logits for a ViT; for the CNN its
    globally average-pooled convolutional features). Transformers only, from the final-normed tokens: "cls" (D),
    "mean" of the patch tokens (D), "cls+mean" (2D), "patches": every patch token flattened in patch order (N*D),
    which keeps *where* each feature is.
    """
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise TypeError("extract_features needs a model with forward_features and forward_head(pre_logits=...)")
    layers = (layer,) if isinstance(layer, str) else tuple(layer)
    bad = [x for x in layers if x not in FEATURE_LAYERS]
    if bad:
        raise ValueError(f"layer must be one of {FEATURE_LAYERS}, got {bad[0]!r}")
    if "pooled" in layers and not callable(getattr(model, "forward_pool", None)):
        raise TypeError(f"layer 'pooled' needs a model with forward_pool; {type(model).__name__} has none")
    if set(layers) & set(TOKEN_LAYERS) and not hasattr(model, "num_prefix_tokens"):
        raise TypeError(f"layers {TOKEN_LAYERS} read transformer tokens; {type(model).__name__} has none")
    out = map_batches(model, data, lambda m, x, y: tuple(features_from_tokens(m, m.forward_features(x), k) for k in layers),
                      batch_size)
    res = {k: f.numpy() for k, f in zip(layers, out)}
    return res[layer] if isinstance(layer, str) else res


def pixel_features(data: ImageSet) -> np.ndarray:
    """(N, H*W) raw pixels scaled to [0, 1]: the baseline every learned feature should beat."""
    return (data.images.reshape(len(data), -1).float() / 255.0).numpy()


def feature_model(source) -> torch.nn.Module:
    """The feature extractor behind `source`: a model with forward_features/forward_head, a model that wraps one as
    `.encoder` (vitlab's MAE), or the path of any vitlab checkpoint holding either."""
    if isinstance(source, (str, os.PathLike)):
        source, _ = load_model(source)
    if not (hasattr(source, "forward_features") and hasattr(source, "forward_head")):
        encoder = getattr(source, "encoder", None)
        if encoder is None or not hasattr(encoder, "forward_features"):
            raise TypeError(f"{type(source).__name__} has no forward_features/forward_head and no ViT encoder")
        source = encoder
    return source.eval()


def features_of(source, data: ImageSet) -> np.ndarray:
    """(N, D) features of `data` from `source`: "pixels", a model, an MAE, or a checkpoint path (see feature_model)."""
    if isinstance(source, str) and source == "pixels":
        return pixel_features(data)
    return extract_features(feature_model(source), data)
