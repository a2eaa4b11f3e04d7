"""Pretrained weights for vitlab's ViT: the lab's own checkpoints, and timm's ViTs.

vitlab's parameter names follow timm's `VisionTransformer` on purpose
(patch_embed.proj, cls_token, pos_embed, blocks.i.{norm1, attn.qkv, attn.proj,
norm2, mlp.fc1, mlp.fc2}, norm, head), so converting is mostly checking that
the architecture matches and adapting three things:

- input channels: RGB patch filters summed into one grey filter (a grey image
  fed as RGB gives exactly the same response), or a grey filter spread over RGB;
- the patch size, when the new image size needs another one (timm's
  FlexiViT-style `resample_patch_embed`);
- the position embeddings, resampled on the 2-D patch grid (bicubic), with the
  CLS token's position kept apart.

timm is an optional extra (``pip install 'vitlab[timm]'``); nothing here
imports it until a timm model is asked for.
"""

from __future__ import annotations

import copy
import os
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import ViT, ViTConfig
from ..training.checkpoints import CheckpointError, load_model
from .jepa import encoder_from_jepa
from .mae import encoder_from_mae


class PretrainedError(RuntimeError):
    """Weights that cannot be fetched or do not fit; the message says which and why."""


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Patch-embedding kernel (D, C, P, P) -> (D, in_channels, P, P).

    3 -> 1: sum the RGB filters, so a grey image gives the response the RGB model
    gives to that image repeated over its three channels. 1 -> C: spread the grey
    filter evenly over C channels (the reverse promise).
    """
    c = weight.shape[1]
    if c == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    if c == 1:
        return weight.repeat(1, in_channels, 1, 1) / in_channels
    raise PretrainedError(f"cannot adapt a {c}-channel patch embedding to {in_channels} channels")


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """(1, prefix + g*g, D) -> (1, prefix + new_grid**2, D): bicubic on the 2-D grid, prefix (CLS) kept apart."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = grid.shape[1]
    g = int(round(n**0.5))
    if g * g != n:
        raise PretrainedError(f"position embedding of {n} patch positions is not a square grid")
    if g == new_grid:
        return pos_embed
    D = grid.shape[-1]
    grid = grid.reshape(1, g, g, D).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, D).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def resample_patch_kernel(weight: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(D, C, P, P) -> (D, C, p, p). timm's pseudo-inverse resize (FlexiViT) when timm is installed, which keeps
    the embedding of a resized patch close to the original; plain bilinear resize otherwise."""
    if weight.shape[-1] == patch_size:
        return weight
    try:
        from timm.layers import resample_patch_embed

        return resample_patch_embed(weight, [patch_size, patch_size])
    except ImportError:
        return F.interpolate(weight, size=(patch_size, patch_size), mode="bilinear", align_corners=False)


def _require_timm():
    try:
        import timm  # noqa: F401
    except ImportError:
        raise PretrainedError("timm is not installed: pip install 'vitlab[timm]' (or pip install timm)") from None
    return timm


def config_from_timm(tm: nn.Module, **overrides) -> ViTConfig:
    """The ViTConfig of a timm `VisionTransformer`, refusing features vitlab's ViT does not have.

    `overrides` (image_size, patch_size, in_channels, num_classes, ...) change the target.
    """
    problems = []
    if getattr(tm, "num_prefix_tokens", 1) != 1 or getattr(tm, "cls_token", None) is None:
        problems.append("it needs exactly one class token and no register tokens")
    if getattr(tm, "no_embed_class", False):
        problems.append("position embeddings without a class-token slot (no_embed_class)")
    if not isinstance(getattr(tm, "fc_norm", nn.Identity()), nn.Identity):
        problems.append("a norm after pooling (fc_norm)")
    if not isinstance(getattr(tm, "norm_pre", nn.Identity()), nn.Identity):
        problems.append("a norm before the blocks (pre_norm)")
    if getattr(tm, "attn_pool", None) is not None:
        problems.append("attention pooling")
    if getattr(tm, "global_pool", "token") not in ("token", "avg"):
        problems.append(f"global_pool={tm.global_pool!r}")
    blk = tm.blocks[0]
    if any(not isinstance(getattr(blk, n, nn.Identity()), nn.Identity) for n in ("ls1", "ls2")):
        problems.append("layer scale (init_values)")
    if not isinstance(getattr(blk.attn, "q_norm", nn.Identity()), nn.Identity):
        problems.append("query/key normalisation (qk_norm)")
    if problems:
        raise PretrainedError("this timm ViT has what vitlab's ViT does not: " + "; ".join(sorted(set(problems))))
    pe = tm.patch_embed
    dim = tm.embed_dim
    cfg = dict(
        image_size=pe.img_size[0],
        patch_size=pe.patch_size[0],
        in_channels=pe.proj.in_channels,
        num_classes=tm.num_classes,
        dim=dim,
        depth=len(tm.blocks),
        heads=blk.attn.num_heads,
        mlp_ratio=blk.mlp.fc1.out_features / dim,
        pos_embed="learned",
        pool="cls" if tm.global_pool == "token" else "mean",
        prenorm=True,
        qkv_bias=blk.attn.qkv.bias is not None,
        norm_eps=blk.norm1.eps,
    )
    cfg.update(overrides)
    return ViTConfig(**cfg)


def convert_timm_state_dict(sd: dict, src: ViTConfig, dst: ViTConfig) -> dict:
    """Map a timm ViT state dict (architecture `src`) onto vitlab's ViT of config `dst`.

    Adapts input channels, patch size and the position grid; keeps the head only
    when the number of classes matches (otherwise the new head stays freshly initialised).
    """
    out = {}
    for k, v in sd.items():
        if k.startswith(("fc_norm", "norm_pre", "attn_pool")) or ".ls1." in k or ".ls2." in k:
            continue
        out[k] = v
    w = adapt_input_channels(out["patch_embed.proj.weight"], dst.in_channels)
    out["patch_embed.proj.weight"] = resample_patch_kernel(w, dst.patch_size)
    if "pos_embed" in out:
        out["pos_embed"] = resample_pos_embed(out["pos_embed"], dst.grid_size)
    if dst.num_classes != src.num_classes or dst.num_classes == 0:
        out.pop("head.weight", None)
        out.pop("head.bias", None)
    return out


def vit_from_timm(tm: nn.Module, **overrides) -> ViT:
    """vitlab's ViT holding the weights of a timm `VisionTransformer` instance.

    Same config: the same function (logits agree to float rounding). With
    overrides such as image_size=28, in_channels=1, patch_size=7, num_classes=3
    the weights are adapted as described in the module docstring.
    """
    src = config_from_timm(tm)
    dst = config_from_timm(tm, **overrides)
    if dst.num_classes == 0:
        raise PretrainedError("give num_classes: this timm model has no classification head")
    model = ViT(dst)
    sd = convert_timm_state_dict(tm.state_dict(), src, dst)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = {"head.weight", "head.bias"}
    if unexpected or set(missing) - allowed:
        raise PretrainedError(f"timm weights do not map onto vitlab's ViT: missing {sorted(set(missing) - allowed)}, "
                              f"unexpected {sorted(unexpected)}")
    return model


def vit_from_timm_hub(name: str = "vit_tiny_patch16_224", image_size: int = 28, patch_size: Optional[int] = None,
                    in_channels: int = 1, num_classes: int = 10) -> ViT:
    """A timm ViT fetched through timm's hub (needs internet), adapted to `image_size` x `image_size`
    images of `in_channels` channels. `patch_size` defaults to the largest divisor of image_size
    not above the model's own (a 16-pixel patch becomes 14 for 28x28 MNIST: a 2x2 grid).
    """
    timm = _require_timm()
    try:
        tm = timm.create_model(name, pretrained=True)
    except Exception as e:  # hub offline, unknown name, corrupt cache: all one message with the reason
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise PretrainedError(
            f"could not load pretrained {name!r} through timm's hub ({reason}); this needs internet access "
            f"(or a filled Hugging Face cache). Offline, start from a lab checkpoint instead: backbone_from_checkpoint(path)"
        ) from None
    if patch_size is None:
        p0 = tm.patch_embed.patch_size[0]
        patch_size = max(p for p in range(1, p0 + 1) if image_size % p == 0)
    return vit_from_timm(tm, image_size=image_size, patch_size=patch_size, in_channels=in_channels,
                         num_classes=num_classes)


def backbone_from_checkpoint(path: str | os.PathLike, num_classes: Optional[int] = None) -> ViT:
    """A ViT from one of the lab's checkpoints (`vitlab train`, a notebook's run, an MAE's or a JEPA's
    encoder), ready to
    fine-tune.

    With `num_classes` different from the checkpoint's, the head is replaced by a
    fresh one of that size; the backbone (everything before the head) keeps its weights.
    """
    model, ckpt = load_model(path)
    if ckpt["model_type"] == "mae":  # an MAE's encoder is a ViT whose head was never trained
        model = encoder_from_mae(model)
    elif ckpt["model_type"] == "jepa":  # so is a JEPA's context encoder
        model = encoder_from_jepa(model)
    if not isinstance(model, ViT):
        raise CheckpointError(f"{path}: holds a {type(model).__name__}, not a ViT backbone")
    if num_classes is not None and num_classes != model.cfg.num_classes:
        model.reset_classifier(num_classes)
    return model.train()


def encoder_of(source, num_classes: Optional[int] = None) -> ViT:
    """The classifier ViT inside any of the lab's models or checkpoints: a ViT as it is,
    an MAE's encoder, a JEPA's context encoder. `source` is a model or a checkpoint's path. With `num_classes`, an
    MAE's or JEPA's encoder gets a fresh head of that size (they never train one); a ViT's head is replaced only
    when its size differs. The one way the runs get an encoder from another run (`Init(take="encoder")`)."""
    if isinstance(source, (str, os.PathLike)):
        return backbone_from_checkpoint(source, num_classes)
    from ..models.jepa import JEPA
    from ..models.mae import MAE

    if isinstance(source, MAE):
        return encoder_from_mae(source, num_classes=num_classes)
    if isinstance(source, JEPA):
        return encoder_from_jepa(source, num_classes=num_classes)
    if not isinstance(source, ViT):
        raise CheckpointError(f"encoder_of: a {type(source).__name__} holds no ViT encoder")
    if num_classes is not None and num_classes != source.cfg.num_classes:
        source = copy.deepcopy(source)
        source.reset_classifier(num_classes)
    return source
