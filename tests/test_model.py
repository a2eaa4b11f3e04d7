import pytest
import torch
import torch.nn.functional as F

from vitlab import ViT, ViTConfig, count_parameters, vit_micro_mnist
from vitlab.analysis.attention import attention_maps
from vitlab.models import PRESETS, patchify, preset_name, sincos_pos_embed_2d, unpatchify


def test_patchify_unpatchify_round_trip():
    x = torch.randn(3, 2, 28, 28)
    for p in (2, 4, 7, 14):
        patches = patchify(x, p)
        assert patches.shape == (3, (28 // p) ** 2, p * p * 2)
        assert torch.equal(unpatchify(patches, p, channels=2), x)


def test_patchify_order_is_row_major():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    p = patchify(x, 2)
    assert p[0, 0].tolist() == [0, 1, 4, 5]  # top-left patch
    assert p[0, 1].tolist() == [2, 3, 6, 7]  # top-right patch, next in the sequence


def test_patch_embed_is_linear_on_patches():
    torch.manual_seed(0)
    m = ViT(vit_micro_mnist())
    x = torch.randn(2, 1, 28, 28)
    conv = m.patch_embed(x)  # (B, N, D)
    w = m.patch_embed.proj.weight  # (D, C, P, P)
    by_hand = patchify(x, 7) @ w.permute(0, 2, 3, 1).reshape(w.shape[0], -1).T + m.patch_embed.proj.bias
    assert torch.allclose(conv, by_hand, atol=1e-5)


@pytest.mark.parametrize("cfg", [vit_micro_mnist(), vit_micro_mnist(pos_embed="sincos", pool="mean"),
                                 vit_micro_mnist(pos_embed="none", prenorm=False)])
def test_fast_and_explicit_attention_agree(cfg):
    torch.manual_seed(0)
    m = ViT(cfg).eval()
    x = torch.randn(4, 1, 28, 28)
    fast = m(x)
    tokens, attns = m.forward_features(x, return_attn=True)
    slow = m.forward_head(tokens)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert len(attns) == cfg.depth
    T = cfg.num_patches + 1
    for a in attns:
        assert a.shape == (4, cfg.heads, T, T)
        assert torch.allclose(a.sum(-1), torch.ones(4, cfg.heads, T), atol=1e-5)  # rows are distributions
        assert (a >= 0).all()


def test_recorder_uses_named_methods_and_returns_stacked_attention():
    torch.manual_seed(0)
    m = ViT(vit_micro_mnist()).eval()
    x = torch.randn(3, 1, 28, 28)
    r = attention_maps(m, x)  # the one way to capture attention: through forward_features / forward_head
    logits, attn = r.logits, r.attn
    assert attn.shape == (3, 2, 2, 17, 17)
    assert torch.allclose(logits, m(x), atol=1e-5)


def test_shapes_of_features_and_head():
    m = ViT(vit_micro_mnist(num_classes=3))
    x = torch.randn(5, 1, 28, 28)
    feats = m.forward_features(x)
    assert feats.shape == (5, 17, 32)
    assert m.forward_head(feats, pre_logits=True).shape == (5, 32)
    assert m(x).shape == (5, 3)


def test_input_shape_errors_name_expected_and_actual():
    m = ViT(vit_micro_mnist())
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        m(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(28, 28\)"):
        m(torch.randn(28, 28))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        m([[0.0]])


def test_config_errors():
    with pytest.raises(ValueError, match="image_size 28 is not divisible by patch_size 5"):
        ViTConfig(patch_size=5)
    with pytest.raises(ValueError, match="dim 64 is not divisible by heads 5"):
        ViTConfig(heads=5)
    with pytest.raises(ValueError, match="pos_embed"):
        ViTConfig(pos_embed="rope")
    with pytest.raises(ValueError, match="unknown ViTConfig fields"):
        ViTConfig.from_dict({"dim": 64, "wdith": 3})


def test_sincos_embedding():
    pe = sincos_pos_embed_2d(32, 4)
    assert pe.shape == (16, 32)
    assert torch.allclose(pe.pow(2).sum(1), torch.full((16,), 16.0))  # 16 sin/cos pairs, each of norm 1
    assert len(torch.unique(pe, dim=0)) == 16  # every position distinct
    m = ViT(vit_micro_mnist(pos_embed="sincos"))
    assert "pos_embed" not in m.state_dict()  # fixed, not learned, not saved


def expected_parameters(c: ViTConfig) -> int:
    D, H, N = c.dim, int(c.dim * c.mlp_ratio), c.num_patches
    embed = c.in_channels * c.patch_size**2 * D + D + D + ((N + 1) * D if c.pos_embed == "learned" else 0)
    block = 4 * D + (3 * D * D + 3 * D) + (D * D + D) + (D * H + H) + (H * D + D)
    return embed + c.depth * block + (2 * D if c.prenorm else 0) + D * c.num_classes + c.num_classes


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts_match_the_formula(name):
    cfg = PRESETS[name]()
    assert count_parameters(ViT(cfg)) == expected_parameters(cfg)
    assert count_parameters(ViT(cfg)) < 1_000_000  # CPU-sized


def test_parameter_formula_across_variants():
    for cfg in (vit_micro_mnist(pos_embed="sincos"), vit_micro_mnist(prenorm=False), vit_micro_mnist(mlp_ratio=4)):
        assert count_parameters(ViT(cfg)) == expected_parameters(cfg)


def test_preset_name_is_derived_from_the_config():
    from vitlab.training import RECIPES

    for name, f in PRESETS.items():
        assert preset_name(f()) == name
    assert preset_name(RECIPES["default"].model) == "vit_mini_mnist"
    assert preset_name(vit_micro_mnist(dim=48)) is None  # no preset has these settings


def test_gradients_reach_every_parameter():
    m = ViT(vit_micro_mnist())
    F.cross_entropy(m(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.parametrize("channels", [1, 3])
def test_patch_embedding_is_the_strided_convolution(channels):
    from vitlab.models.vit import PatchEmbed

    embed = PatchEmbed(ViTConfig(in_channels=channels, patch_size=4, dim=64))
    x = torch.randn(5, channels, 28, 28)
    reference = embed.proj(x).flatten(2).transpose(1, 2)  # (B, N, D) from the convolution itself
    assert torch.allclose(embed(x), reference, atol=1e-5)


def test_overlapping_patches_keep_the_token_grid():
    cfg = ViTConfig(patch_size=7, dim=32, depth=1, heads=2, patch_overlap=2)
    model = ViT(cfg)
    assert model.patch_embed.proj.kernel_size == (11, 11)
    tokens = model.forward_features(torch.randn(3, 1, 28, 28))
    assert tokens.shape == (3, 17, 32)  # still 4 x 4 patches plus CLS
    # A pixel just across a patch border now reaches the token: not so without overlap.
    x = torch.zeros(1, 1, 28, 28)
    y = x.clone()
    y[0, 0, 3, 7] = 1.0  # column 7 belongs to the second patch of the first row; it borders the first patch
    first = lambda m, img: m.patch_embed(img)[0, 0]  # noqa: E731
    assert not torch.allclose(first(model, x), first(model, y))
    plain = ViT(ViTConfig(patch_size=7, dim=32, depth=1, heads=2))
    assert torch.allclose(first(plain, x), first(plain, y))
    with pytest.raises(ValueError, match="patch_overlap"):
        ViTConfig(patch_size=7, patch_overlap=7)


def test_conv_stem_runs_before_the_patches_and_is_off_by_default():
    cfg = ViTConfig(patch_size=7, dim=32, depth=1, heads=2, conv_stem=4)
    model = ViT(cfg)
    x = torch.randn(3, 1, 28, 28)
    embed = model.patch_embed
    assert embed.proj.weight.shape == (32, 4, 7, 7)  # the projection reads the stem's 4 channels
    assert embed.stem(x).shape == (3, 4, 28, 28)  # full resolution: the token count does not change
    by_hand = F.conv2d(embed.stem(x), embed.proj.weight, embed.proj.bias, stride=7).flatten(2).transpose(1, 2)
    torch.testing.assert_close(embed(x), by_hand, atol=1e-5, rtol=1e-4)
    assert model.forward_features(x).shape == (3, 17, 32) and model(x).shape == (3, 10)
    assert embed.stem[0].weight.std() > 0.1  # PyTorch's fan-in init, not the projections' std 0.02
    plain = ViT(ViTConfig(patch_size=7, dim=32, depth=1, heads=2))
    assert plain.patch_embed.stem is None and not any("stem" in k for k in plain.state_dict())  # old checkpoints load
    with pytest.raises(ValueError, match="conv_stem"):
        ViTConfig(conv_stem=-1)


# One small config of each kind a checkpoint can hold: a kind added to the registry without one fails below.
def registered_configs() -> dict:
    from vitlab.models import CNNConfig, CVAEConfig, MAEConfig, SetConfig, deit_config
    from vitlab.models.jepa import JEPAConfig

    enc = vit_micro_mnist(pos_embed="sincos")
    return {
        "vit": vit_micro_mnist(), "cnn": CNNConfig(), "deit": deit_config(vit_micro_mnist()),
        "mae": MAEConfig(encoder=enc, decoder_dim=16, decoder_depth=1, decoder_heads=2),
        "jepa": JEPAConfig(encoder=enc, predictor_dim=16, predictor_depth=1, predictor_heads=2),
        "cvae": CVAEConfig(hidden=32),
        "set_sum": SetConfig(embed_dim=8, dim=16, heads=2, kind="deepsets"),
        "set_anchor": SetConfig(embed_dim=8, dim=16, heads=2, kind="cross"),
    }


@pytest.mark.parametrize("kind", ["vit", "cnn", "deit", "mae", "jepa", "cvae", "set_sum", "set_anchor"])
def test_every_registered_type_builds_from_its_config_and_checkpoints(kind, tmp_path):
    from vitlab.models.registry import ABOUT, MODEL_TYPES, build_model, model_type_for_config, model_type_of
    from vitlab.training.checkpoints import load_model, save_checkpoint

    assert sorted(MODEL_TYPES) == sorted(registered_configs()), "give the new model type a config above"
    cfg = registered_configs()[kind]
    model = build_model(kind, cfg.to_dict())  # as a checkpoint rebuilds it: kind + plain-dict config
    assert type(model) is MODEL_TYPES[kind][1] and model.cfg == cfg and kind in ABOUT
    assert model_type_of(model) == kind and model_type_for_config(cfg) == kind
    save_checkpoint(tmp_path / "m.pt", model)
    back, ckpt = load_model(tmp_path / "m.pt")
    assert type(back) is type(model) and ckpt["model_type"] == kind
    want, got = model.state_dict(), back.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_a_set_config_of_a_kind_both_set_models_build_is_ambiguous():
    from vitlab.models import AnchorSetModel, SetConfig, SumSetModel
    from vitlab.models.registry import model_type_for_config, model_type_of

    fc = SetConfig(kind="fc", head="regress")
    with pytest.raises(ValueError, match="fits the model types"):
        model_type_for_config(fc)
    assert model_type_of(SumSetModel(fc)) == "set_sum" and model_type_of(AnchorSetModel(fc)) == "set_anchor"
