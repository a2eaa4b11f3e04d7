"""Layer 1, data: IDX files, the datasets on disk, images in memory (and their known / unknown splits),
augmentation, fonts, corruptions, synthetic digits. Imports nothing above it."""

from .._lazy import lazy_exports

_WHERE = {
    "DataError": ".idx", "read_idx": ".idx", "write_idx": ".idx",
    "DatasetInfo": ".info", "DATASETS": ".info", "dataset_info": ".info",
    "ImageSet": ".imageset", "DataSplits": ".imageset", "UNLABELLED": ".imageset",
    "load_dataset": ".datasets", "download_dataset": ".datasets", "read_split": ".datasets",
    "default_root": ".datasets", "FALLBACK_SOURCE": ".datasets", "MIRROR_ENV": ".datasets",
    "Augment": ".augment",
    "KnownUnknown": ".splits", "known_unknown_split": ".splits", "known_unknown_sets": ".splits",
    "FontError": ".fonts", "bundled_fonts": ".fonts", "find_fonts": ".fonts", "render_char": ".fonts",
    "system_fonts": ".fonts",
    "FontGlyphs": ".synthetic", "Randomise": ".synthetic", "generate": ".synthetic", "stroke_paths": ".synthetic",
    "synthetic_set": ".synthetic",
    "SWEEPS": ".corruptions",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
