"""Layer 4, analysis: reading trained models. Attention maps and rollout (attention), position embeddings
(positions), features (features), UMAP and cluster metrics (embedding), linear probes (probes), latency (latency), FLOPs and the machine's matmul rate (cost).
Imports from vitlab.training and below. Import the module you need: ``from vitlab.analysis.attention import ...``."""
