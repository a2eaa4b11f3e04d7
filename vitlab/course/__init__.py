"""Layer 7, course: what the notebooks share (common: FAST sizes, where runs live, notebook 03's models; seeds: runs
over several seeds and their mean ± std) and one small module per notebook that needs one (gradients: 04,
positions: 05, finetune: 07-08, mae: 09, distillation: 10). Library code never imports it."""
