"""Every run of the series, notebook by notebook, as lists of specs: what a full pass trains, what ready-trained
weights must cover, and where to look for a run's settings. Each notebook module defines its specs; this lists them.
"""

from __future__ import annotations

from . import common, distillation, finetune, gradients, jepa, mae, positions, synthetic
from .common import SEEDS, VIT_DEFAULT


def _seeded(specs, seeds=SEEDS) -> list:
    return [s.seeded(seed) for s in specs for seed in seeds]


def notebook_runs() -> dict:
    """{notebook: [RunSpec, ...]}: the runs each notebook asks for (notebook 14's set models aside: they are kept by
    their own loop, not yet as run specs), in the order it asks for them; a run shared by several notebooks (notebook
    03's ViT) is listed under each."""
    k, u = finetune.KNOWN, finetune.UNKNOWN_TRAIN
    return {
        "03_train": list(common.SPECS),
        "04_gradients": [VIT_DEFAULT] + _seeded(gradients.HIGH_LR_RUNS.values()) + list(gradients.DEEP_RUNS.values()),
        "05_positional_embeddings": [VIT_DEFAULT] + _seeded(positions.ABLATION_RUNS.values()),
        "06_attention": [VIT_DEFAULT],
        "07_finetune_two_class_unknown": [VIT_DEFAULT, finetune.clean_backbone_spec(k, u)]
        + list(finetune.open_set_specs(k, u).values())  # with BACKBONE = "imagenet", 4 runs more (internet)
        + [finetune.clean_backbone_spec(k, u, model="cnn"), finetune.clean_backbone_spec(k, u, candidate="no-ls-long")],
        "08_umap_clustering": [VIT_DEFAULT, finetune.clean_backbone_spec(k, u),
                               finetune.open_set_specs(k, u)["clean", "a", "finetune"], mae.MAE_PRETRAIN],
        "09_mae": [mae.MAE_PRETRAIN, VIT_DEFAULT] + [mae.mae_finetune_spec(n, pre, s) for n in (100, 1000)
                                                    for pre in (True, False) for s in SEEDS],
        "10_distillation": [VIT_DEFAULT, common.CNN_BASELINE] + distillation_runs(),
        "11_your_own_digits": [VIT_DEFAULT, common.CNN_BASELINE],
        "12_jepa": [jepa.collapse_spec(t) for t in ("none", "ema")] + [mae.MAE_PRETRAIN] + list(jepa.JEPA_PRETRAIN.values())
        + [s for n in (100, 1000) for s in (mae.mae_finetune_spec(n, False), mae.mae_finetune_spec(n, True),
                                            jepa.jepa_finetune_spec(n, "scattered"))],
        "13_synthetic_data": synthetic_runs(),
    }


def distillation_runs() -> list:
    """Notebook 10's students: alone and distilled (soft, hard, token from the ViT; hard, token from the CNN), the
    longer budget (alone, soft, hard), for every seed; and the exercise's soft student at T = 1."""
    D = distillation
    short = [D.student_spec(kind, teacher or "vit", seed=s) for s in D.STUDENT_SEEDS for _, kind, teacher in D.STUDENT_SETUPS]
    long = [D.student_spec(kind, teacher or "vit", transfer=True, seed=s) for s in D.STUDENT_SEEDS
            for _, kind, teacher, _ in D.TRANSFER_SETUPS]
    return short + long + [D.student_spec("soft", "vit", seed=D.STUDENT_SEEDS[0], temperature=1.0)]


def synthetic_runs() -> list:
    """Notebook 13's runs: the VAEs, the zero-label runs, the design runs, the few-label arms, the full-data mix."""
    S = synthetic
    return ([S.cvae_spec(k, s) for k in S.LABELS_PER_CLASS for s in SEEDS] + [S.zero_spec(s) for s in SEEDS]
            + list(S.design_specs().values())
            + [S.few_label_spec(k, arm, s) for k in S.LABELS_PER_CLASS for arm in S.ARMS for s in SEEDS]
            + [S.full_mix_spec(55_000)])


def all_runs() -> dict:
    """{name: spec} over the whole series: each run once (a name always means one spec)."""
    out = {}
    for specs in notebook_runs().values():
        for s in specs:
            if s.name in out and out[s.name].key != s.key:
                raise ValueError(f"run name {s.name!r} names two different runs")
            out[s.name] = s
    return out
