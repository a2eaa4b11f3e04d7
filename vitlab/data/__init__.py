"""Layer 1, data: IDX files, the datasets on disk, images in memory, augmentation. Imports nothing above it."""

from .._lazy import lazy_exports

_WHERE = {
    "DataError": ".idx", "read_idx": ".idx", "write_idx": ".idx",
    "DatasetInfo": ".info", "DATASETS": ".info", "dataset_info": ".info",
    "ImageSet": ".imageset", "DataSplits": ".imageset", "UNLABELLED": ".imageset",
    "load_dataset": ".datasets", "download_dataset": ".datasets", "read_split": ".datasets",
    "default_root": ".datasets", "FALLBACK_SOURCE": ".datasets", "MIRROR_ENV": ".datasets",
    "Augment": ".augment",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
