"""timm -> vitlab conversion (random timm models, no download) and the lab's own backbones."""

import pytest
import torch

timm = pytest.importorskip("timm")
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

from vitlab import ViT, save_checkpoint, vit_micro_mnist  # noqa: E402
from vitlab.methods.pretrained import (
    PretrainedError,
    adapt_input_channels,
    backbone_from_checkpoint,
    config_from_timm,
    resample_pos_embed,
    vit_from_timm,
    vit_from_timm_hub,
)


def _timm(**kw):
    torch.manual_seed(0)
    args = dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=2, num_heads=4,
                mlp_ratio=2.0, global_pool="token", class_token=True)
    args.update(kw)
    tm = VisionTransformer(**args).eval()
    with torch.no_grad():  # timm zero-inits some tensors; make every weight count in the comparison
        for p in tm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return tm


def test_same_config_gives_the_same_logits():
    tm = _timm()
    model = vit_from_timm(tm).eval()
    assert model.cfg.norm_eps == 1e-6 and model.cfg.dim == 64 and model.cfg.heads == 4
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), tm(x), atol=1e-5)
        # The features before the head agree too.
        assert torch.allclose(model.forward_head(model.forward_features(x), pre_logits=True),
                              tm.forward_head(tm.forward_features(x), pre_logits=True), atol=1e-5)


def test_mean_pooling_model_converts():
    tm = _timm(global_pool="avg", fc_norm=False)
    model = vit_from_timm(tm).eval()
    assert model.cfg.pool == "mean"
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), tm(x), atol=1e-5)


def test_rgb_filters_summed_to_grey():
    tm = _timm(in_chans=3)
    model = vit_from_timm(tm, in_channels=1).eval()
    assert model.patch_embed.proj.weight.shape[1] == 1
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():  # a grey image gives what the RGB model gives to it repeated over R, G and B
        assert torch.allclose(model(x), tm(x.repeat(1, 3, 1, 1)), atol=1e-5)
    w = torch.randn(8, 1, 4, 4)
    assert torch.allclose(adapt_input_channels(adapt_input_channels(w, 3), 1), w, atol=1e-6)


def test_position_grid_and_patch_size_resampling():
    tm = _timm(img_size=32, patch_size=4)  # 8x8 grid
    model = vit_from_timm(tm, image_size=28, patch_size=4, num_classes=3)  # 7x7 grid, new 3-class head
    assert model.pos_embed.shape == (1, 50, 64) and model.head.out_features == 3
    assert torch.equal(model.pos_embed[0, 0], tm.pos_embed[0, 0])  # the CLS position is kept apart, unchanged
    assert torch.equal(model.blocks[1].attn.qkv.weight, tm.blocks[1].attn.qkv.weight)
    # A constant grid stays constant under bicubic resampling; the same grid comes back untouched.
    pe = torch.cat([torch.zeros(1, 1, 5), torch.ones(1, 64, 5)], dim=1)
    out = resample_pos_embed(pe, 4)
    assert out.shape == (1, 17, 5) and torch.allclose(out[:, 1:], torch.ones(1, 16, 5), atol=1e-5)
    assert resample_pos_embed(pe, 8) is pe
    m2 = vit_from_timm(_timm(img_size=32, patch_size=16), image_size=28, patch_size=7)
    assert m2.patch_embed.proj.weight.shape[-1] == 7 and m2.cfg.grid_size == 4


def test_unsupported_timm_features_are_named():
    with pytest.raises(PretrainedError, match="layer scale"):
        config_from_timm(_timm(init_values=1e-5))
    with pytest.raises(PretrainedError, match="register tokens"):
        config_from_timm(_timm(reg_tokens=2))


def test_offline_hub_gives_a_clear_error(monkeypatch):
    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PretrainedError, match="needs internet access"):
        vit_from_timm_hub("vit_tiny_patch16_224")


def test_load_pretrained_adapts_the_hub_model(monkeypatch):
    """The hub step replaced by a random model of the same architecture (no download in tests)."""
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained: _timm(img_size=224, patch_size=16, in_chans=3,
                                                                              num_classes=1000))
    model = vit_from_timm_hub("vit_tiny_patch16_224", num_classes=3)
    assert model.cfg.patch_size == 14 and model.cfg.grid_size == 2 and model.cfg.in_channels == 1
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_lab_checkpoint_as_backbone(tmp_path):
    torch.manual_seed(0)
    model = ViT(vit_micro_mnist()).eval()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model)
    same = backbone_from_checkpoint(path).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(same(x), model(x))
    three = backbone_from_checkpoint(path, num_classes=3).eval()
    assert three.head.out_features == 3
    with torch.no_grad():  # the backbone is unchanged, only the head is new
        assert torch.equal(three.forward_features(x), model.forward_features(x))
