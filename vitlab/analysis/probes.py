"""Linear probes on frozen features: how much a representation already knows, read off by one linear layer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def linear_probe(train_features, train_labels, test_features, test_labels, epochs: int = 100, lr: float = 1e-2,
                 weight_decay: float = 1e-4, batch_size: int = 1024, seed: int = 0) -> dict:
    """Multinomial logistic regression on frozen features (standardised with the training statistics).

    One linear layer trained with AdamW and cross-entropy on mini-batches (fast, full control of the seed);
    returns {"train_acc", "test_acc", "seconds"}.
    """
    import time

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    Xtr, Xte = torch.as_tensor(np.asarray(train_features), dtype=torch.float32), torch.as_tensor(np.asarray(test_features), dtype=torch.float32)
    ytr, yte = torch.as_tensor(np.asarray(train_labels)).long(), torch.as_tensor(np.asarray(test_labels)).long()
    mu, sd = Xtr.mean(0), Xtr.std(0).clamp_min(1e-6)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    classes = int(max(ytr.max(), yte.max())) + 1
    torch.manual_seed(seed)
    layer = nn.Linear(Xtr.shape[1], classes)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(Xtr) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(Xtr), generator=g)
        for i in range(0, len(Xtr), batch_size):
            idx = perm[i : i + batch_size]
            loss = nn.functional.cross_entropy(layer(Xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        tr = float((layer(Xtr).argmax(1) == ytr).float().mean())
        te = float((layer(Xte).argmax(1) == yte).float().mean())
    return {"train_acc": tr, "test_acc": te, "seconds": time.perf_counter() - t0}
