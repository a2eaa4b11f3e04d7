import pytest
from torch import nn

from vitlab import ViT, vit_tiny_mnist
from vitlab.analysis.cost import sgemm_rate, training_flops_per_image


def test_training_flops_of_a_linear_model_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    # forward: one (B, 784) x (784, 10) product, 2 * 784 * 10 FLOPs an image; backward: the weight's gradient, the
    # same again (the input needs no gradient).
    assert training_flops_per_image(model) == 4 * 784 * 10


def test_vit_training_flops_and_gradients_left_alone():
    model = ViT(vit_tiny_mnist())
    before = [p.grad for p in model.parameters()]
    flops = training_flops_per_image(model)
    assert all(g is None for g in before) and all(p.grad is None for p in model.parameters())
    assert flops == pytest.approx(40.5e6, rel=0.01)  # the figure the README's recipe budget is built on
    assert training_flops_per_image(model, batch_size=8) == pytest.approx(flops)  # per image, whatever the batch


def test_sgemm_rate_is_a_rate():
    small = sgemm_rate(n=256, repeats=3)
    assert 1e8 < small < 1e14  # FLOP/s: between a slow CPU and a fast GPU
