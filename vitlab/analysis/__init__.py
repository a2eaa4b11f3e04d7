"""Layer 4, analysis: reading trained models. Attention maps and rollout (attention), position embeddings
(positions), features (features), nearest-neighbour scores (knn), UMAP and cluster metrics (embedding), linear
probes (probes), latency (latency), FLOPs and the machine's matmul rate (cost), accuracy under corruption
(robustness).
Imports from vitlab.training and below. What a learner uses is exported here: ``from vitlab.analysis import
attention_maps, extract_features``."""

from .._lazy import lazy_exports

_WHERE = {
    "FeatureReport": ".embedding", "cluster_metrics": ".embedding", "compare_features": ".embedding",
    "knn_accuracy": ".embedding", "umap_2d": ".embedding",
    "attention_maps": ".attention", "attention_rollout": ".attention", "cls_attention": ".attention",
    "gradient_rollout": ".attention", "mean_attention_distance": ".attention", "token_map": ".attention",
    "upsample_map": ".attention",
    "extract_features": ".features", "features_of": ".features", "pixel_features": ".features",
    "linear_probe": ".probes",
    "mean_corrupted_accuracy": ".robustness", "robustness_curves": ".robustness",
    "measure_latency": ".latency",
    "neighbour_similarity": ".positions", "patch_position_embeddings": ".positions", "pca_2d": ".positions",
    "position_similarity": ".positions", "shuffle_patches": ".positions",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
