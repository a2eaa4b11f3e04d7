"""Masked autoencoder (MAE) self-supervised pre-training for vitlab's ViT.

He et al. (2022), "Masked Autoencoders Are Scalable Vision Learners", in the style of the
official code (facebookresearch/mae, ``models_mae.py``):

1. cut the image into patches and embed them (with positions): (B, N, D);
2. keep a random subset of the patches per image (`random_masking`), drop the rest: (B, K, D);
3. the ENCODER, an ordinary vitlab `ViT`, runs on CLS + the K visible patches only;
4. a light DECODER puts a learned mask token in every dropped slot, restores the original order,
   adds its own (fixed 2-D sin-cos) positions and predicts the P*P*C pixels of every patch;
5. the loss is the mean squared error on the MASKED patches only: reconstructing a visible patch
   is copying, and teaches nothing.

The encoder is used only through its named methods (`embed_patches`, `cls_tokens`,
`forward_tokens`), never by indexing into its layers, so after pre-training it is an ordinary
classifier ViT: `encoder_from_mae` takes it out for fine-tuning or probing, and it fits
`train_or_load(..., init=...)`. `MAEObjective` makes pre-training a normal `Trainer` run.

The images the Trainer feeds are mean/std normalised, so the reconstruction targets are normalised
pixels; `unnormalize` turns them back into [0, 1] for display.

Shapes: B batch, C channels, N patches, K = round(N * (1 - mask_ratio)) visible patches,
P patch size, D encoder width, Dd decoder width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from ..config import DictConfig
from .configs import ViTConfig, vit_tiny_mnist
from .predictor import PredictorNames, TokenPredictor, check_predictor_shape, predictor_config
from .vit import ViT, patchify, unpatchify


def _default_encoder() -> ViTConfig:
    # The default recipe's model with fixed sin-cos positions, as the official MAE: the decoder must know where a
    # missing patch is from the first step on, and learned positions would have to be discovered first.
    return vit_tiny_mnist(pos_embed="sincos")


@dataclass
class MAEConfig(DictConfig):
    encoder: ViTConfig = field(default_factory=_default_encoder)  # the ViT that is pre-trained (and later fine-tuned)
    decoder_dim: int = 64  # decoder token width Dd; narrower than the encoder: it is thrown away after pre-training
    decoder_depth: int = 2  # decoder Transformer blocks
    decoder_heads: int = 4  # decoder attention heads; must divide decoder_dim
    decoder_mlp_ratio: float = 2.0  # decoder MLP hidden width as a multiple of decoder_dim
    mask_ratio: float = 0.75  # default fraction of patches hidden from the encoder, in [0, 1)
    norm_pix_loss: bool = False  # True: target is each patch normalised to zero mean, unit variance (MAE's option)

    def __post_init__(self):
        if isinstance(self.encoder, dict):  # from_dict / a checkpoint: the nested config arrives as a plain dict
            self.encoder = ViTConfig.from_dict(self.encoder)
        if not isinstance(self.encoder, ViTConfig):
            raise TypeError(f"encoder must be a ViTConfig (or its dict), got {type(self.encoder).__name__}")
        check_mask_ratio(self.mask_ratio)
        check_predictor_shape("decoder", self.decoder_dim, self.decoder_depth, self.decoder_heads, self.encoder, "MAE")

    def decoder_vit_config(self) -> ViTConfig:
        """The ViTConfig the decoder's blocks are built from (its width, heads and MLP; no dropout)."""
        return predictor_config(self.encoder, self.decoder_dim, self.decoder_depth, self.decoder_heads,
                                self.decoder_mlp_ratio)


def check_mask_ratio(mask_ratio: float) -> None:
    if not isinstance(mask_ratio, (int, float)) or not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in [0, 1) (the encoder needs at least one patch), got {mask_ratio!r}")


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """How many patches the encoder sees: round(N * (1 - mask_ratio)), at least one."""
    check_mask_ratio(mask_ratio)
    return max(1, int(round(num_patches * (1 - mask_ratio))))


def random_masking(x: torch.Tensor, mask_ratio: float, generator: Optional[torch.Generator] = None):
    """Per-sample random masking by sorting random noise, as the official MAE.

    x: (B, N, D) tokens. Returns
      x_masked (B, K, D): the kept tokens, in random order;
      mask (B, N): 0 = kept, 1 = removed, in the ORIGINAL patch order;
      ids_restore (B, N): gather with it to put [kept; removed] back into the original order.
    """
    B, N, D = x.shape
    K = num_visible(N, mask_ratio)
    noise = torch.rand(B, N, device=x.device, generator=generator)  # (B, N) in [0, 1)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the K smallest are kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # the inverse permutation
    ids_keep = ids_shuffle[:, :K]  # (B, K)
    x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))  # (B, K, D)
    mask = torch.ones(B, N, device=x.device)
    mask[:, :K] = 0  # in shuffled order: first K kept ...
    mask = torch.gather(mask, 1, ids_restore)  # ... then unshuffled to the patch order
    return x_masked, mask, ids_restore


def unnormalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Normalised images (what the Trainer feeds, what the MAE reconstructs) back to [0, 1] for display."""
    return (x * std + mean).clamp(0, 1)


class MAE(TokenPredictor):
    """Masked autoencoder with a vitlab ViT encoder; its decoder is a `TokenPredictor` (models/predictor.py).

        mae = MAE(MAEConfig())
        loss, pred, mask = mae(images)            # images (B, 1, 28, 28), normalised
        # pred (B, N, P*P*C) pixels of every patch; mask (B, N): 1 = hidden from the encoder
        recon = mae.reconstruct(images)           # (B, 1, 28, 28): visible patches pasted back
    """

    # the decoder's layers, under the names every MAE checkpoint has (see models/predictor.py)
    PREDICTOR = PredictorNames(embed="decoder_embed", pos_embed="decoder_pos_embed", blocks="decoder_blocks",
                               norm="decoder_norm", proj="decoder_pred")

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.encoder
        self.encoder = ViT(e)  # initialises itself (timm's ViT init)
        # Fixed 2-D sin-cos positions, with a zero row for CLS: the decoder must know WHERE to paint. It predicts a
        # patch's pixels, in patchify's layout.
        self.build_predictor(e.dim, cfg.decoder_vit_config(), e.patch_size**2 * e.in_channels, e.grid_size,
                             cls_row=True)

    # ---- bookkeeping

    @property
    def num_patches(self) -> int:
        return self.cfg.encoder.num_patches

    @property
    def patch_size(self) -> int:
        return self.cfg.encoder.patch_size

    def no_weight_decay(self) -> set:
        """Full parameter names AdamW should not decay (tokens and positions; see `training.optim.param_groups`)."""
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()} | {"mask_token"}

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, P*P*C)."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, P*P*C) -> (B, C, H, W)."""
        return unpatchify(x, self.patch_size, self.cfg.encoder.in_channels)

    # ---- the three parts

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, generator: Optional[torch.Generator] = None):
        """Encode CLS + the visible patches: returns latent (B, 1 + K, D), mask (B, N), ids_restore (B, N)."""
        check_mask_ratio(mask_ratio)
        x = self.encoder.embed_patches(imgs)  # (B, N, D), positions already added, checks the image shape
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)  # (B, K, D): masked AFTER positions,
        # so every kept token still carries where it came from
        x = torch.cat([self.encoder.cls_tokens(x.shape[0]), x], dim=1)  # (B, 1 + K, D)
        return self.encoder.forward_tokens(x), mask, ids_restore  # blocks + final norm: (B, 1 + K, D)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + K, D) -> predicted pixels of every patch (B, N, P*P*C)."""
        x = self.predictor_in(latent)  # (B, 1 + K, Dd)
        B, T, Dd = x.shape
        N = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(B, N + 1 - T, Dd)  # (B, N - K, Dd)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (B, N, Dd): [visible; masked], shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, Dd))  # (B, N, Dd): patch order
        x = torch.cat([x[:, :1], x_], dim=1) + self.predictor_positions()  # (B, 1 + N, Dd), CLS first
        return self.run_predictor(x)[:, 1:]  # blocks, norm, pixels (B, 1 + N, P*P*C); CLS dropped: (B, N, P*P*C)

    def patch_targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """What the decoder should predict: the patches' pixels (B, N, P*P*C), per-patch normalised if norm_pix_loss."""
        target = self.patchify(imgs)
        if self.cfg.norm_pix_loss:
            # Per-patch zero mean, unit variance: the decoder need not get each patch's brightness and contrast
            # right, only its shape; the paper reports better representations with it.
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the MASKED patches only (over all of them if none is masked)."""
        loss = ((pred - self.patch_targets(imgs)) ** 2).mean(dim=-1)  # (B, N): one number per patch
        if mask.sum() == 0:  # mask_ratio 0: a plain autoencoder, nothing hidden to average over
            return loss.mean()
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: Optional[float] = None,
                generator: Optional[torch.Generator] = None):
        """imgs (B, C, H, W) normalised -> (loss, pred (B, N, P*P*C), mask (B, N), 1 = hidden)."""
        mask_ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    @torch.no_grad()
    def reconstruct(self, imgs: torch.Tensor, mask_ratio: Optional[float] = None,
                    generator: Optional[torch.Generator] = None) -> dict:
        """For display: masked input, raw prediction, and prediction with the visible patches pasted back.

        Returns a dict of (B, C, H, W) images, in the same (normalised) units as `imgs`:
        "masked" (hidden patches set to the image minimum), "pred", "pasted"; and "mask" (B, N), "loss".
        With norm_pix_loss the prediction is un-normalised with each true patch's mean and std.
        """
        was = self.training
        self.eval()
        loss, pred, mask = self(imgs, mask_ratio, generator)
        self.train(was)
        if self.cfg.norm_pix_loss:  # back to pixel units with the true patch statistics (for display only)
            p = self.patchify(imgs)
            pred = pred * (p.var(dim=-1, keepdim=True) + 1e-6) ** 0.5 + p.mean(dim=-1, keepdim=True)
        m = mask.unsqueeze(-1)  # (B, N, 1)
        patches = self.patchify(imgs)
        background = imgs.amin()
        return {
            "masked": self.unpatchify(patches * (1 - m) + background * m),
            "pred": self.unpatchify(pred),
            "pasted": self.unpatchify(patches * (1 - m) + pred * m),
            "mask": mask,
            "loss": float(loss),
        }
