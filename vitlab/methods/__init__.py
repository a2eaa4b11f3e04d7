"""Layer 5, methods: what trains or adapts a model differently from plain classification, one module each. Masked
autoencoding (mae), I-JEPA (jepa), the conditional VAE's objective and sampler (cvae), knowledge distillation
(distillation), open-set recognition (openset),
pretrained weights (pretrained), sums and anchors over sequences of digits (sequences). Imports from
vitlab.analysis and below; the digit reader and the digit check of `predict` and the pad are in vitlab.apps."""

from .._lazy import lazy_exports

_WHERE = {
    "CollapseMonitor": ".jepa", "encoder_from_jepa": ".jepa",
    "PretrainedError": ".pretrained", "backbone_from_checkpoint": ".pretrained", "vit_from_timm_hub": ".pretrained",
    "SCORES": ".openset", "as_unknown": ".openset", "calibration": ".openset", "evaluate_open_set": ".openset",
    "noise_images": ".openset", "open_set_scores": ".openset", "threshold_at_tpr": ".openset",
    "SeqTrainConfig": ".sequences", "anchor_sequences": ".sequences", "predict_sequences": ".sequences",
    "sum_sequences": ".sequences",
    "cvae_digits": ".cvae",
    "distillation_objective": ".distillation", "gap_recovered": ".distillation",
    "hard_distillation_loss": ".distillation", "soft_distillation_loss": ".distillation",
    "encoder_from_mae": ".mae", "reconstruction_loss": ".mae",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
