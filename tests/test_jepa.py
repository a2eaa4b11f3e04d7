"""I-JEPA (vitlab.models.jepa, vitlab.methods.jepa): masks, shapes, the stop-gradient and the EMA, the collapse
monitor, checkpoints holding both encoders and the predictor, and the hand-off to a classifier ViT."""

import dataclasses

import pytest
import torch

from vitlab import TrainConfig, ViT, load_model, train_or_load, vit_micro_mnist
from vitlab.training import QUIET, RunSpec
from vitlab.analysis.features import extract_features
from vitlab.methods.jepa import (
    CollapseMonitor,
    EMAUpdate,
    JEPAObjective,
    ema_momentum,
    encoder_from_jepa,
    jepa_callbacks,
    prediction_loss,
)
from vitlab.methods.pretrained import backbone_from_checkpoint
from vitlab.models import build_model
from vitlab.models.jepa import JEPA, JEPAConfig, Masks, block_masks, scattered_masks
from vitlab.training.checkpoints import CheckpointError


def tiny_cfg(**kw) -> JEPAConfig:
    return JEPAConfig(**{**dict(encoder=vit_micro_mnist(pos_embed="sincos"), predictor_dim=16, predictor_depth=1,
                                predictor_heads=2), **kw})


def tiny_jepa(seed=0, **kw) -> JEPA:
    torch.manual_seed(seed)
    return JEPA(tiny_cfg(**kw))


def check_masks(m: Masks, B: int, N: int, min_context: int):
    K = m.context.shape[1]
    _, M, L = m.targets.shape
    assert m.context.shape == (B, K) and m.targets.shape == (B, M, L) and K >= min_context
    for b in range(B):
        ctx, tgt = set(m.context[b].tolist()), set(m.targets[b].flatten().tolist())
        assert len(ctx) == K and not ctx & tgt, "context and targets must not share a patch"
        assert all(0 <= i < N for i in ctx | tgt)
        assert torch.equal(m.context[b], m.context[b].sort().values)


@pytest.mark.parametrize("grid", [4, 7])
def test_block_masks_are_rectangles_disjoint_from_the_context(grid):
    cfg = tiny_cfg(encoder=vit_micro_mnist(pos_embed="sincos", patch_size=28 // grid))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        m = block_masks(16, grid, cfg, g)
        check_masks(m, 16, grid * grid, cfg.min_context)
        assert m.targets.shape[1] == 4
        for b in range(16):
            for t in m.targets[b]:  # each target group is one filled rectangle of the grid
                rows, cols = t // grid, t % grid
                h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
                assert h * w == len(t) == len(set(t.tolist()))
        frac = m.targets.shape[2] / grid**2
        assert 0.06 <= frac <= 0.3  # about 15-20% of the image (rounded to whole patches)


def test_scattered_masks_use_the_same_counts_without_structure():
    cfg = tiny_cfg()
    m = scattered_masks(32, 4, cfg, torch.Generator().manual_seed(0))
    check_masks(m, 32, 16, cfg.min_context)
    assert m.targets.shape[1:] == (4, 3) and m.context.shape[1] == 16 - 12  # 4 groups of round(16 * 0.15..0.2) = 3
    assert not all(torch.equal(m.targets[0], m.targets[b]) for b in range(1, 32))  # per-image draws


def test_shapes_at_every_step_and_the_stop_gradient():
    j = tiny_jepa()
    x = torch.randn(3, 1, 28, 28)
    m = j.sample_masks(3, torch.Generator().manual_seed(0))
    B, M, L = m.targets.shape
    ctx = j.forward_context(x, m.context)
    assert ctx.shape == (3, m.context.shape[1], 32)
    tgt = j.forward_target(x, m.targets)
    assert tgt.shape == (B * M, L, 32) and not tgt.requires_grad  # EMA teacher: no gradient reaches it
    assert torch.allclose(tgt.mean(-1), torch.zeros(B * M, L), atol=1e-5)  # layer-normalised targets
    loss, pred, target = j(x, m, return_all=True)
    assert pred.shape == target.shape == (B * M, L, 32) and loss.ndim == 0
    loss.backward()
    assert all(p.grad is None for p in j.target_encoder.parameters())
    assert j.encoder.patch_embed.proj.weight.grad is not None and j.mask_token.grad is not None


def test_without_a_teacher_the_gradient_flows_through_the_targets():
    j = tiny_jepa(teacher="none")
    assert j.target_encoder is None and j.teacher() is j.encoder
    t = j.forward_target(torch.randn(2, 1, 28, 28), j.sample_masks(2).targets)
    assert t.requires_grad


def test_ema_update_moves_the_target_towards_the_context_encoder():
    j = tiny_jepa()
    c, t = j.encoder.head.weight, j.target_encoder.head.weight
    assert torch.equal(c, t)  # starts as a copy
    with torch.no_grad():
        c.add_(1.0)
    before = t.clone()
    j.update_target(0.75)
    assert torch.allclose(t, 0.75 * before + 0.25 * c)
    j.update_target(1.0)  # momentum 1: the target does not move
    assert torch.allclose(t, 0.75 * before + 0.25 * c)
    with pytest.raises(ValueError, match="momentum"):
        j.update_target(1.5)
    assert ema_momentum(0, 100) == 0.996 and ema_momentum(100, 100) == 1.0 and ema_momentum(50, 100) == 0.998


def test_trainer_leaves_the_target_encoder_out_of_the_optimizer(mnist):
    from vitlab.training.trainer import Trainer

    j = tiny_jepa()
    tr = Trainer(j, mnist.train.take(64), None, TrainConfig(epochs=1, batch_size=32, augment=None), progress=False,
                 verbose=False, objective=JEPAObjective())
    opt_params = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert not opt_params & {id(p) for p in j.target_encoder.parameters()}
    assert {id(p) for p in j.encoder.parameters()} <= opt_params


@pytest.mark.parametrize("bad,match", [
    (dict(masking="grid"), "masking must be"), (dict(teacher="byol"), "teacher must be"),
    (dict(target_scale=(0.3, 0.2)), "target_scale"), (dict(ema_momentum=(1.0, 0.9)), "ema_momentum"),
    (dict(predictor_dim=18), "predictor_dim"), (dict(masking="scattered", num_targets=6), "do not fit"),
])
def test_bad_configs_are_refused_in_one_line(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_cfg(**bad)


def test_bad_inputs_are_refused():
    j = tiny_jepa()
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 1, 28, 28\)"):
        j(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="masks are for 3 images"):
        j(torch.randn(2, 1, 28, 28), j.sample_masks(3))
    with pytest.raises(TypeError, match="JEPAObjective trains a JEPA"):
        JEPAObjective()(ViT(vit_micro_mnist()), torch.randn(2, 1, 28, 28), None)
    with pytest.raises(ValueError, match="which must be"):
        encoder_from_jepa(j, which="student")


def test_a_short_run_trains_checkpoints_both_encoders_and_hands_off(mnist, tmp_path):
    cfg = tiny_cfg()
    tc = TrainConfig(epochs=2, batch_size=64, lr=1e-3, warmup_epochs=0.5, augment=None, max_steps_per_epoch=6)
    ref, probe = mnist.train.take(200), mnist.val.take(100)
    run = train_or_load(RunSpec("j", cfg, tc), mnist.train.take(512), mnist.val.take(128), runs_dir=tmp_path,
                        objective=JEPAObjective(), callbacks=jepa_callbacks(ref, probe), show=QUIET)
    ep = run.history.epochs
    assert len(ep["emb_std"]) == len(ep["knn_acc"]) == 2 and all(0 <= a <= 1 for a in ep["knn_acc"])
    assert ep["train_loss"][-1] < ep["train_loss"][0]
    j = run.model
    # the EMA moved the target encoder, but only part of the way
    diff = (j.target_encoder.head.weight - j.encoder.head.weight).detach().abs().max()
    assert not torch.equal(j.target_encoder.blocks[0].attn.qkv.weight, j.encoder.blocks[0].attn.qkv.weight)
    assert float(diff) == 0.0  # the head gets no gradient, so both copies keep its initial weights
    # the checkpoint holds both encoders and the predictor, and the monitor's history
    model, ckpt = load_model(run.checkpoint)
    assert isinstance(model, JEPA) and ckpt["model_type"] == "jepa"
    keys = set(ckpt["model"])
    assert any(k.startswith("encoder.") for k in keys) and any(k.startswith("target_encoder.") for k in keys)
    assert any(k.startswith("predictor_blocks.") for k in keys) and "mask_token" in keys
    assert ckpt["history"]["epochs"]["knn_acc"] == ep["knn_acc"]
    for which, enc in (("context", j.encoder), ("target", j.target_encoder)):
        vit = encoder_from_jepa(run.checkpoint, num_classes=10, which=which)
        assert type(vit) is ViT and all(p.requires_grad for p in vit.parameters())
        x = mnist.test.tensors(torch.arange(4))[0]
        with torch.no_grad():
            assert torch.allclose(vit.forward_features(x), enc.forward_features(x), atol=1e-6)
        assert extract_features(vit, mnist.test.take(20), layer="patches").shape == (20, 16 * 32)
    assert type(backbone_from_checkpoint(run.checkpoint, num_classes=10)) is ViT
    # loaded the second time, same weights
    again = train_or_load(RunSpec("j", cfg, tc), mnist.train.take(512), mnist.val.take(128), runs_dir=tmp_path,
                          objective=JEPAObjective(), show=QUIET)
    assert not again.trained_now
    assert torch.equal(again.model.target_encoder.blocks[0].attn.qkv.weight, j.target_encoder.blocks[0].attn.qkv.weight)
    assert prediction_loss(j, mnist.val.take(50)) > 0
    with pytest.raises(CheckpointError, match="not a 'jepa' one"):
        vit_ckpt = tmp_path / "vit.pt"
        from vitlab import save_checkpoint

        save_checkpoint(vit_ckpt, ViT(vit_micro_mnist()))
        encoder_from_jepa(vit_ckpt)


def test_collapse_monitor_sees_a_collapsed_encoder(mnist):
    j = tiny_jepa()
    mon = CollapseMonitor(mnist.train.take(200), mnist.val.take(100))
    alive = mon.measure(j)
    with torch.no_grad():  # every image to the same vector: zero the patch projection
        j.encoder.patch_embed.proj.weight.zero_()
    dead = mon.measure(j)
    assert dead["emb_std"] < 1e-4 < alive["emb_std"] and dead["knn_acc"] < alive["knn_acc"]


def test_build_model_rebuilds_a_jepa_from_its_config_dict():
    cfg = tiny_cfg(masking="scattered")
    m = build_model("jepa", cfg.to_dict())
    assert isinstance(m, JEPA) and m.cfg == cfg and dataclasses.replace(cfg).encoder == cfg.encoder
    assert EMAUpdate(0.99, 1.0).start == 0.99
