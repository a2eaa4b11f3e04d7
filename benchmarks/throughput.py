"""Training throughput: vitlab's ViT against timm's VisionTransformer at identical configurations, the FLOP/s
vitlab's training step reaches, and this machine's float32 matmul (sgemm) rate, all in one process.

For each configuration both models are built from the same ViTConfig, checked to compute the same logits from
the same weights, and trained on the same batches with the same optimizer (AdamW, as the trainer builds it).
Rounds alternate between the two so that machine noise hits both alike; the median of the rounds is reported.
The sgemm rate (a 2048 x 2048 float32 product) is measured before and after, the better of the two kept.

    python benchmarks/throughput.py [--configs vit_mini_mnist,vit_tiny_mnist,vit_small_mnist]
                                    [--batch-size 256] [--steps 20] [--rounds 7] [--device auto] [--profile]

--profile prints torch.profiler's top operators of vitlab's training step (the default recipe's model, or
--profile-config).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F

from vitlab import PRESETS, ViT
from vitlab.analysis.cost import sgemm_rate, training_flops_per_image
from vitlab.analysis.latency import cpu_model
from vitlab.training import RECIPES, resolve_device
from vitlab.training.trainer import make_optimizer

# vit_mini_mnist is the default recipe's model (7x7 patches, D=64, 4 blocks); vit_micro_mnist is for tests only.
CONFIGS = {name: f for name, f in PRESETS.items() if name != "vit_micro_mnist"}
DEFAULT = next((n for n, f in PRESETS.items() if f() == RECIPES["default"].model), "vit_mini_mnist")


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


def twins(cfg, device):
    """vitlab's ViT and timm's, the same weights in both, checked to give the same logits."""
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
    return ours, theirs, n_ours


def compare(name, cfg, a, device) -> dict:
    ours, theirs, params = twins(cfg, device)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(a.batch_size, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g).to(device),
                torch.randint(0, cfg.num_classes, (a.batch_size,), generator=g).to(device)) for _ in range(a.steps)]
    opts = {m: make_optimizer(m, 0.05, 1e-3) for m in (ours, theirs)}
    for m in (ours, theirs):  # warm-up: allocator, kernels, optimizer state
        train_steps(m, opts[m], batches[:3], device)
    times = {"vitlab": [], "timm": []}
    for r in range(a.rounds):
        order = [("vitlab", ours), ("timm", theirs)] if r % 2 == 0 else [("timm", theirs), ("vitlab", ours)]
        for who, m in order:
            times[who].append(train_steps(m, opts[m], batches, device))
    ips = {k: a.batch_size * a.steps / statistics.median(v) for k, v in times.items()}
    flops = training_flops_per_image(ours, cfg.image_size, cfg.in_channels)
    return {"name": name, "params": params, "vitlab": ips["vitlab"], "timm": ips["timm"],
            "ratio": ips["vitlab"] / ips["timm"], "flops_per_image": flops, "flop_s": flops * ips["vitlab"]}


def profile(cfg, a, device, rows: int = 10) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = ViT(cfg).to(device)
    opt = make_optimizer(model, 0.05, 1e-3)
    x = torch.randn(a.batch_size, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    y = torch.randint(0, cfg.num_classes, (a.batch_size,), device=device)
    train_steps(model, opt, [(x, y)] * 3, device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=acts) as prof:
        train_steps(model, opt, [(x, y)] * 10, device)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\ntop operators of vitlab's training step at {a.profile_config} (self CPU time, 10 steps, batch {a.batch_size}):")
    for e in events[:rows]:
        print(f"  {e.key[:60]:<60} {100 * e.self_cpu_time_total / total:5.1f}%  {e.count:>5} calls")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, from: " + ", ".join(CONFIGS))
    ap.add_argument("--preset", help=argparse.SUPPRESS)  # the old spelling of a single config
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", action="store_true", help="print the top operators of vitlab's training step")
    ap.add_argument("--profile-config", default=DEFAULT, choices=list(CONFIGS), help="which (default: %(default)s)")
    a = ap.parse_args()
    names = [a.preset] if a.preset else [n.strip() for n in a.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"throughput.py: unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    device = resolve_device(a.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    print(f"device: {device} ({where}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"batch {a.batch_size}, {a.steps} steps x {a.rounds} alternating rounds, median")
    sgemm = sgemm_rate() if device.type == "cpu" else None
    results = [compare(n, CONFIGS[n](), a, device) for n in names]
    if sgemm is not None:
        sgemm = max(sgemm, sgemm_rate())
    print(f"\n{'config':<20} {'params':>8} {'MFLOP/img':>10} {'vitlab img/s':>13} {'timm img/s':>11} {'vitlab/timm':>12}"
          f" {'GFLOP/s':>8} {'/ sgemm':>8}")
    for r in results:
        frac = f"{r['flop_s'] / sgemm:8.2f}" if sgemm else f"{'-':>8}"
        print(f"{r['name']:<20} {r['params']:>8,} {r['flops_per_image'] / 1e6:>10.1f} {r['vitlab']:>13.0f} {r['timm']:>11.0f}"
              f" {r['ratio']:>12.3f} {r['flop_s'] / 1e9:>8.1f} {frac}")
    if sgemm is not None:
        print(f"sgemm (2048 x 2048 float32): {sgemm / 1e9:.1f} GFLOP/s")
    if a.profile:
        profile(CONFIGS[a.profile_config](), a, device)
    worst = min(results, key=lambda r: r["ratio"])
    line = f"vitlab/timm >= {worst['ratio']:.3f} at every config (worst: {worst['name']}; target >= 1.0)"
    if sgemm is not None and DEFAULT in names:
        ours = next(r for r in results if r["name"] == DEFAULT)
        line += f"; the default preset {DEFAULT} trains at {ours['flop_s'] / sgemm:.2f} of sgemm (target >= 0.75)"
    print(line + f" on {where}")


if __name__ == "__main__":
    main()
