"""Layer 5, methods: what trains a model differently from plain classification, one module each. Masked
autoencoding (mae), knowledge distillation (distillation), open-set recognition (openset; the standard protocol's
candidate recipes: openset_protocol), pretrained weights (pretrained). Imports from vitlab.analysis and below."""
