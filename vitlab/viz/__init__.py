"""Layer 6, viz: figures (plots, gradients, reading, robustness, report) and the interactive attention explorer
(explorer). Figures are returned, never shown or saved: callers decide. Imports matplotlib and ipywidgets where
they are used; imports from vitlab.methods and below (the drawing pad, which reads with the apps layer's
`DigitReader`, is in vitlab.apps)."""

from .._lazy import lazy_exports

_WHERE = {
    "AttentionExplorer": ".explorer", "explore_attention": ".explorer",
    "group_grad_snapshot": ".gradients", "plot_grad_flow": ".gradients", "plot_grad_flows": ".gradients",
    "plot_grad_snapshots": ".gradients", "plot_layer_grad_profile": ".gradients", "plot_run_comparison": ".gradients",
    "image_grid": ".plots", "overlay": ".plots", "plot_attention_distance": ".plots", "plot_cls_attention": ".plots",
    "plot_confusion_matrix": ".plots", "plot_embedding": ".plots", "plot_grouped_bars": ".plots",
    "plot_history": ".plots", "plot_misclassified": ".plots", "plot_position_similarity": ".plots",
    "plot_reliability": ".plots", "plot_score_histograms": ".plots",
    "plot_reading": ".reading",
    "plot_robustness": ".robustness",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
