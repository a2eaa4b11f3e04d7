"""Masked autoencoder (vitlab.models.mae, vitlab.methods.mae): masking, loss, shapes, encoder ordering, checkpoints, fine-tuning hand-off."""

import dataclasses

import pytest
import torch

from vitlab import CheckpointError, TrainConfig, ViT, load_model, save_checkpoint, train_or_load, vit_micro_mnist
from vitlab.training import QUIET, RunSpec, Show
from vitlab.analysis.features import extract_features
from vitlab.analysis.probes import linear_probe
from vitlab.methods.mae import MAEObjective, encoder_from_mae
from vitlab.models import MAE, MAEConfig, build_model, random_masking


def tiny_cfg(**kw) -> MAEConfig:
    return MAEConfig(encoder=vit_micro_mnist(pos_embed="sincos"), decoder_dim=16, decoder_depth=1, decoder_heads=2, **kw)


def tiny_mae(seed=0, **kw) -> MAE:
    torch.manual_seed(seed)
    return MAE(tiny_cfg(**kw))


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_random_masking_keeps_round_n_and_restores_order(ratio):
    B, N, D = 3, 16, 5
    x = torch.randn(B, N, D)
    xm, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(1))
    K = round(N * (1 - ratio))
    assert xm.shape == (B, K, D) and mask.shape == (B, N) and ids_restore.shape == (B, N)
    assert torch.all(mask.sum(1) == N - K)
    # every kept token is one of the sample's patches whose mask is 0
    for b in range(B):
        kept = {int(i) for i in torch.nonzero(mask[b] == 0).flatten()}
        rows = [int(torch.nonzero((x[b] == t).all(1)).flatten()[0]) for t in xm[b]]
        assert set(rows) == kept and len(rows) == K
    # ids_restore puts [kept; removed] back into the original order (the decoder's gather)
    full = torch.cat([xm, torch.zeros(B, N - K, D)], 1)
    restored = torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))
    keep = (mask == 0).unsqueeze(-1)
    assert torch.equal(restored * keep, x * keep)
    # masks differ between samples (per-sample shuffle)
    if 0 < ratio:
        assert not all(torch.equal(mask[0], mask[b]) for b in range(1, B))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_mask_ratio_outside_range_is_an_error(bad):
    m = tiny_mae()
    with pytest.raises(ValueError, match="mask_ratio"):
        m(torch.randn(2, 1, 28, 28), bad)
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_cfg(mask_ratio=bad)
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEObjective(bad)


def test_wrong_image_shape_is_an_error():
    m = tiny_mae()
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 1, 28, 28\)"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="expected input"):
        m(torch.randn(2, 3, 28, 28))


def test_forward_shapes():
    m = tiny_mae()
    x = torch.randn(4, 1, 28, 28)
    loss, pred, mask = m(x, 0.75)
    assert loss.ndim == 0 and pred.shape == (4, 16, 49) and mask.shape == (4, 16)
    assert torch.all(mask.sum(1) == 12)
    assert m.patchify(x).shape == (4, 16, 49) and torch.equal(m.unpatchify(m.patchify(x)), x)
    latent, _, _ = m.forward_encoder(x, 0.75)
    assert latent.shape == (4, 1 + 4, 32)  # CLS + 4 visible patches
    r = m.reconstruct(x, 0.5)
    assert r["masked"].shape == r["pred"].shape == r["pasted"].shape == x.shape


def test_loss_counts_masked_patches_only():
    m = tiny_mae()
    x = torch.randn(2, 1, 28, 28)
    _, pred, mask = m(x, 0.75, generator=torch.Generator().manual_seed(0))
    loss = m.forward_loss(x, pred, mask)
    changed = pred + 5.0 * (1 - mask).unsqueeze(-1)  # garbage on the VISIBLE patches only
    assert torch.allclose(m.forward_loss(x, changed, mask), loss)
    changed = pred + 5.0 * mask.unsqueeze(-1)  # garbage on the masked ones
    assert m.forward_loss(x, changed, mask) > loss + 1
    # by hand: mean over masked patches of the per-patch MSE
    per = ((pred - m.patchify(x)) ** 2).mean(-1)
    assert torch.allclose(loss, per[mask.bool()].mean())


def test_norm_pix_loss_targets_are_per_patch_normalised():
    m = tiny_mae(norm_pix_loss=True)
    x = torch.randn(2, 1, 28, 28) * 3 + 7
    t = m.patch_targets(x)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 16), atol=1e-3)
    plain = tiny_mae(norm_pix_loss=False)
    assert torch.equal(plain.patch_targets(x), plain.patchify(x))
    # the same weights, a different target: different losses; a brightness shift leaves norm_pix's unchanged
    plain.load_state_dict(m.state_dict())
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.allclose(m(x, 0.75, g())[0], plain(x, 0.75, g())[0])
    assert torch.allclose(m.forward_loss(x + 3, *m(x, 0.75, g())[1:]), m(x, 0.75, g())[0], atol=1e-5)


def test_encoder_named_methods_match_forward_features_at_mask_ratio_zero():
    m = tiny_mae().eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        latent, mask, ids_restore = m.forward_encoder(x, 0.0, torch.Generator().manual_seed(3))
        ref = m.encoder.forward_features(x)  # (B, 1 + N, D) in patch order
    assert mask.sum() == 0 and not torch.equal(ids_restore[0], torch.arange(16))  # patches really were shuffled
    D = latent.shape[-1]
    unshuffled = torch.gather(latent[:, 1:], 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))
    assert torch.allclose(latent[:, 0], ref[:, 0], atol=1e-5)
    assert torch.allclose(unshuffled, ref[:, 1:], atol=1e-5)


def test_config_round_trip_and_checkpoint(tmp_path):
    cfg = tiny_cfg(norm_pix_loss=True, mask_ratio=0.6)
    d = cfg.to_dict()
    assert isinstance(d["encoder"], dict)
    back = MAEConfig.from_dict(d)
    assert back == cfg and isinstance(back.encoder, type(cfg.encoder))
    m = tiny_mae(norm_pix_loss=True, mask_ratio=0.6)
    save_checkpoint(tmp_path / "mae.pt", m)
    loaded, ckpt = load_model(tmp_path / "mae.pt")
    assert ckpt["model_type"] == "mae" and isinstance(loaded, MAE) and loaded.cfg == cfg
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert any(k.startswith("decoder_blocks.") for k in ckpt["model"])  # the decoder is kept too
    assert isinstance(build_model("mae", d), MAE)


def test_mismatched_config_is_an_error(tmp_path):
    save_checkpoint(tmp_path / "mae.pt", tiny_mae())
    from vitlab.training import read_checkpoint
    from vitlab.training.checkpoints import load_weights

    other = MAE(dataclasses.replace(tiny_cfg(), decoder_dim=32))
    with pytest.raises(CheckpointError, match="decoder_dim"):
        load_weights(other, read_checkpoint(tmp_path / "mae.pt"), tmp_path / "mae.pt")
    wider = MAE(dataclasses.replace(tiny_cfg(), encoder=vit_micro_mnist(pos_embed="sincos", dim=64)))
    with pytest.raises(CheckpointError, match="encoder"):
        load_weights(wider, read_checkpoint(tmp_path / "mae.pt"), tmp_path / "mae.pt")
    save_checkpoint(tmp_path / "vit.pt", ViT(vit_micro_mnist()))
    with pytest.raises(CheckpointError, match="not an 'mae'"):
        encoder_from_mae(tmp_path / "vit.pt", num_classes=10)
    with pytest.raises(ValueError, match="decoder_dim"):
        MAEConfig(decoder_dim=30, decoder_heads=4)


def test_encoder_to_classifier_copies_every_encoder_weight(tmp_path):
    m = tiny_mae()
    save_checkpoint(tmp_path / "mae.pt", m)
    for source in (m, tmp_path / "mae.pt"):
        vit = encoder_from_mae(source, num_classes=3)
        assert isinstance(vit, ViT) and vit.cfg.num_classes == 3 and vit(torch.randn(2, 1, 28, 28)).shape == (2, 3)
        enc = m.encoder.state_dict()
        for k, v in vit.state_dict().items():
            if not k.startswith("head."):
                assert torch.equal(v, enc[k]), k
    same = encoder_from_mae(m)  # head kept as it is
    assert torch.equal(same.head.weight, m.encoder.head.weight)
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(same.forward_features(x), m.encoder.eval().forward_features(x))


def test_pretraining_through_train_or_load_decreases_loss_then_fine_tunes(tmp_path, mnist):
    cfg = tiny_cfg()
    tc = TrainConfig(epochs=3, batch_size=64, lr=3e-3, max_steps_per_epoch=15, warmup_epochs=0.2, augment=None,
                     label_smoothing=0.0)
    train, val = mnist.train.take(1000), mnist.val.take(200)
    run = train_or_load(RunSpec("mae", cfg, tc), train, val, runs_dir=tmp_path, objective=MAEObjective(), show=QUIET)
    assert isinstance(run.model, MAE) and run.trained_now
    vl = run.history.epochs["val_loss"]
    assert vl[-1] < vl[0] * 0.9, vl  # reconstruction improves
    steps = run.history.steps["loss"]
    assert sum(steps[-5:]) < sum(steps[:5])
    import math

    assert all(math.isnan(a) for a in run.history.epochs["val_acc"])  # no logits: no accuracy
    again = train_or_load(RunSpec("mae", cfg, tc), train, val, runs_dir=tmp_path, objective=MAEObjective(), show=QUIET)
    assert not again.trained_now
    with pytest.raises(CheckpointError, match="different setup"):
        train_or_load(RunSpec("mae", cfg, tc), train, val, runs_dir=tmp_path, objective=MAEObjective(0.5), show=QUIET)
    # the encoder goes on as init= of an ordinary classifier run
    enc = encoder_from_mae(run.checkpoint, num_classes=10)
    ft_tc = dataclasses.replace(tc, epochs=1, max_steps_per_epoch=2)
    ft = train_or_load(RunSpec("ft", enc.cfg, ft_tc, train_only=["head"]), train, None, runs_dir=tmp_path, init=enc,
                       show=QUIET)
    assert torch.equal(ft.model.blocks[0].attn.qkv.weight, enc.blocks[0].attn.qkv.weight)  # frozen, copied
    feats = extract_features(enc, val.take(50), layer=("cls+mean", "patches", "cls"))
    assert feats["cls+mean"].shape == (50, 64) and feats["patches"].shape == (50, 16 * 32)
    assert (feats["cls+mean"][:, :32] == feats["cls"]).all()
    assert extract_features(enc, val.take(50), layer="mean").shape == (50, 32)


def test_linear_probe_learns_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    X = torch.randn(400, 8, generator=g) * 0.3
    X[torch.arange(400), y] += 3.0
    res = linear_probe(X[:300].numpy(), y[:300].numpy(), X[300:].numpy(), y[300:].numpy(), epochs=30, batch_size=64)
    assert res["test_acc"] > 0.95


def test_training_log_of_an_objective_without_logits_shows_no_accuracy(tmp_path, mnist, capsys):
    """MAE pre-training has no accuracy: its epoch lines report the losses only, and the line that loads the finished
    run says nothing of accuracy either, never 'acc nan%'."""
    tc = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=3, warmup_epochs=0.0, augment=None, label_smoothing=0.0)
    args = (RunSpec("mae_log", tiny_cfg(), tc), mnist.train.take(256), mnist.val.take(128))
    kw = dict(runs_dir=tmp_path, objective=MAEObjective(), show=Show(progress=False, tensorboard=False))
    train_or_load(*args, **kw)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and all("train loss" in line and "val loss" in line for line in lines), lines
    assert not any("acc" in line or "nan" in line.lower() for line in lines), lines
    assert not train_or_load(*args, **kw).trained_now
    loaded = capsys.readouterr().out.strip()
    assert loaded.startswith("loaded finished run 'mae_log'") and loaded.endswith("(2 epochs)"), loaded
    assert "acc" not in loaded and "nan" not in loaded.lower(), loaded
