"""Layer 4, analysis: reading trained models. Attention maps and rollout (attention), position embeddings
(positions), features (features), UMAP and cluster metrics (embedding), linear probes (probes), latency (latency).
Imports from vitlab.training and below. Import the module you need: ``from vitlab.analysis.attention import ...``."""
