"""Training throughput: vitlab's ViT against timm's VisionTransformer at the identical configuration.

Both models are built from the same ViTConfig, checked to have the same
parameter count, and trained on the same batches with the same optimizer in
the same process. Rounds alternate between the two so that machine noise hits
both alike; the median of the rounds is reported.

    python benchmarks/throughput.py [--preset vit_tiny_mnist] [--batch-size 256] [--rounds 7] [--device auto]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F

from vitlab import PRESETS, ViT
from vitlab.training import resolve_device


def timm_twin(cfg):
    from timm.models.vision_transformer import VisionTransformer

    if cfg.pos_embed == "none" or not cfg.prenorm:
        sys.exit("the timm comparison needs a positional embedding and pre-norm blocks")
    m = VisionTransformer(
        img_size=cfg.image_size, patch_size=cfg.patch_size, in_chans=cfg.in_channels, num_classes=cfg.num_classes,
        embed_dim=cfg.dim, depth=cfg.depth, num_heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
        class_token=True, global_pool="token" if cfg.pool == "cls" else "avg",
        fc_norm=False,  # final LayerNorm over all tokens, then pool: the same order as vitlab
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-5),  # timm defaults to 1e-6; vitlab uses PyTorch's 1e-5
        proj_drop_rate=cfg.dropout, pos_drop_rate=cfg.dropout, attn_drop_rate=cfg.attn_dropout,
    )
    if cfg.pos_embed == "sincos":
        # timm's ViT has no 2-D sin-cos option: give it the same fixed table, frozen, as vitlab uses.
        from vitlab.models import sincos_pos_embed_2d

        table = torch.cat([torch.zeros(1, cfg.dim), sincos_pos_embed_2d(cfg.dim, cfg.grid_size)]).unsqueeze(0)
        m.pos_embed.data.copy_(table)
        m.pos_embed.requires_grad_(False)
    return m


def train_steps(model, opt, batches, device) -> float:
    """Seconds for one optimizer step per batch (forward, backward, AdamW)."""
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="vit_tiny_mnist", choices=sorted(PRESETS))
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    device = resolve_device(a.device)
    cfg = PRESETS[a.preset]()
    torch.manual_seed(0)
    ours, theirs = ViT(cfg).to(device), timm_twin(cfg).to(device)
    n_ours, n_theirs = (sum(p.numel() for p in m.parameters() if p.requires_grad) for m in (ours, theirs))
    assert n_ours == n_theirs, f"parameter counts differ: vitlab {n_ours}, timm {n_theirs}"
    # Same architecture, not just the same size: with vitlab's weights copied in (the parameter
    # names coincide), timm's model must compute the same logits.
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"pos_embed"}, (missing, unexpected)
    probe = torch.randn(8, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    with torch.no_grad():
        diff = (ours.eval()(probe) - theirs.eval()(probe)).abs().max().item()
    assert diff < 1e-4, f"vitlab and timm disagree by {diff}"
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(a.batch_size, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g).to(device),
                torch.randint(0, cfg.num_classes, (a.batch_size,), generator=g).to(device)) for _ in range(a.steps)]
    opts = {m: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3) for m in (ours, theirs)}
    for m in (ours, theirs):  # warm-up: allocator, kernels, optimizer state
        train_steps(m, opts[m], batches[:3], device)
    times = {"vitlab": [], "timm": []}
    for r in range(a.rounds):
        order = [("vitlab", ours), ("timm", theirs)] if r % 2 == 0 else [("timm", theirs), ("vitlab", ours)]
        for name, m in order:
            times[name].append(train_steps(m, opts[m], batches, device))
    ips = {k: a.batch_size * a.steps / statistics.median(v) for k, v in times.items()}
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}),"
          f" torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"config: {a.preset} {cfg}")
    print(f"trainable parameters: {n_ours:,} (both); same weights give the same logits (max diff {diff:.1e})")
    print(f"batch {a.batch_size}, {a.steps} steps x {a.rounds} alternating rounds, median")
    print(f"vitlab ViT : {ips['vitlab']:8.0f} train images/s")
    print(f"timm ViT   : {ips['timm']:8.0f} train images/s")
    print(f"ratio vitlab/timm: {ips['vitlab'] / ips['timm']:.3f} (target >= 1.0)")


if __name__ == "__main__":
    main()
