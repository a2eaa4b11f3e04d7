"""Layer 2, models: the ViT, the CNN baseline, the MAE, DeiT, I-JEPA, the conditional VAE and the set models over
digit embeddings, their configs and presets; the token predictor the MAE's decoder and I-JEPA's predictor share; and
the registry that maps a checkpoint's kind to its class. Imports only from vitlab.data and the core modules."""

from .._lazy import lazy_exports

_WHERE = {
    "ViTConfig": ".configs", "CNNConfig": ".configs", "PRESETS": ".configs", "vit_micro_mnist": ".configs",
    "vit_mini_mnist": ".configs", "vit_tiny_mnist": ".configs", "vit_small_mnist": ".configs",
    "preset_name": ".configs",
    "ViT": ".vit", "patchify": ".vit", "unpatchify": ".vit", "sincos_pos_embed_2d": ".vit",
    "count_parameters": ".vit",
    "SmallCNN": ".cnn",
    "MAE": ".mae", "MAEConfig": ".mae", "random_masking": ".mae", "unnormalize": ".mae", "num_visible": ".mae",
    "CVAE": ".cvae", "CVAEConfig": ".cvae",
    "DeiT": ".deit", "DeiTConfig": ".deit", "deit_config": ".deit",
    "SetConfig": ".sets", "SumSetModel": ".sets", "AnchorSetModel": ".sets", "log_ceiling": ".sets",
    "TokenPredictor": ".predictor",
    "MODEL_TYPES": ".registry", "CLASSIFIERS": ".registry", "build_model": ".registry", "model_type_of": ".registry",
    "JEPA": ".jepa", "JEPAConfig": ".jepa", "block_masks": ".jepa", "scattered_masks": ".jepa",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
