"""Feature extraction, UMAP maps and the clustering numbers."""

import time
import warnings

import numpy as np
import pytest
import torch

from vitlab import CNNConfig, SmallCNN, ViT, vit_micro_mnist
from vitlab.analysis.embedding import cluster_metrics, knn_accuracy, umap_2d
from vitlab.analysis.features import extract_features, pixel_features
from vitlab.data import DATASETS, ImageSet


def _blobs(n=150, d=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(size=(3, d)) * 10
    return centres[labels] + rng.normal(size=(n, d)), labels


def test_extract_features_matches_pre_logits():
    torch.manual_seed(0)
    model = ViT(vit_micro_mnist()).eval()
    data = ImageSet((torch.rand(7, 28, 28) * 255).to(torch.uint8), torch.zeros(7, dtype=torch.long), DATASETS["mnist"])
    f = extract_features(model, data, batch_size=3)
    assert f.shape == (7, 32)
    x, _ = data.tensors()
    with torch.no_grad():
        assert np.allclose(f, model.forward_head(model.forward_features(x), pre_logits=True).numpy(), atol=1e-5)
    assert pixel_features(data).shape == (7, 784) and pixel_features(data).max() <= 1.0
    with pytest.raises(TypeError):
        extract_features(torch.nn.Linear(2, 2), data)
    # a ViT has no layer between its pooled token and the head: both layers give the same features
    assert np.allclose(extract_features(model, data, layer="pooled"), f, atol=1e-6)
    with pytest.raises(ValueError, match="layer must be one of"):
        extract_features(model, data, layer="logits")


def test_cnn_pooled_features_come_before_the_hidden_layer():
    torch.manual_seed(0)
    cnn = SmallCNN(CNNConfig(width=4, hidden=6, num_classes=3)).eval()
    data = ImageSet((torch.rand(5, 28, 28) * 255).to(torch.uint8), torch.zeros(5, dtype=torch.long), DATASETS["mnist"])
    x, _ = data.tensors()
    with torch.no_grad():
        fmap = cnn.forward_features(x)
        assert fmap.shape == (5, 8, 7, 7)  # (B, 2w, H/4, W/4)
        assert torch.allclose(cnn.forward_head(fmap), cnn(x))
        pooled = fmap.mean(dim=(2, 3))  # (B, 2w)
        assert np.allclose(extract_features(cnn, data, layer="pooled"), pooled.numpy(), atol=1e-6)
        assert np.allclose(extract_features(cnn, data), cnn.fc(pooled).numpy(), atol=1e-6)  # (B, hidden)
    assert extract_features(cnn, data).shape == (5, 6)


def test_metrics_separate_clusters_from_noise():
    f, y = _blobs()
    m = cluster_metrics(f, y)
    shuffled = cluster_metrics(f, np.random.default_rng(1).permutation(y))
    assert m["silhouette"] > 0.5 > shuffled["silhouette"]
    assert knn_accuracy(f[:100], y[:100], f[100:], y[100:]) == 1.0


def test_umap_map_is_trustworthy_on_clear_clusters():
    f, y = _blobs(n=200)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a seeded UMAP said "n_jobs value 1 overridden" until n_jobs=1
        emb = umap_2d(f, seed=0, n_neighbors=10)
    wall = time.perf_counter() - t0
    assert emb.coords.shape == (200, 2) and np.isfinite(emb.coords).all()
    assert 0 < emb.seconds <= wall  # the fit's own time, inside the call's
    again = umap_2d(f, seed=0, n_neighbors=10)
    assert np.allclose(again.coords, emb.coords)  # seeded: the same map twice
    m = cluster_metrics(f, y, emb.coords)
    assert m["trustworthiness"] > 0.8


def test_compare_features_reports_every_source(tmp_path):
    from vitlab import save_checkpoint
    from vitlab.analysis.embedding import compare_features
    from vitlab.analysis.features import feature_model

    torch.manual_seed(0)
    model = ViT(vit_micro_mnist()).eval()
    save_checkpoint(tmp_path / "m.pt", model)

    class Wrapper(torch.nn.Module):  # an MAE-like model: the ViT is its `.encoder`
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

    assert feature_model(Wrapper(model)) is model
    assert torch.equal(feature_model(tmp_path / "m.pt").head.weight, model.head.weight)
    with pytest.raises(TypeError, match="encoder"):
        feature_model(torch.nn.Linear(2, 2))
    # classes 0/1/2 are bright squares in different corners: pixels must cluster them perfectly
    imgs = torch.zeros(90, 28, 28, dtype=torch.uint8)
    labels = torch.arange(90) % 3
    for i, c in enumerate(labels.tolist()):
        imgs[i, 9 * c : 9 * c + 8, 9 * c : 9 * c + 8] = 200 + i % 50
    data = ImageSet(imgs, labels, DATASETS["mnist"])
    t0 = time.perf_counter()
    reports = compare_features({"pixels": "pixels", "vit": model}, data, data, k=3)
    wall = time.perf_counter() - t0
    assert [r.name for r in reports] == ["pixels", "vit"] and [r.dim for r in reports] == [784, 32]
    assert reports[0].knn_acc == 1.0 and reports[0].silhouette > 0.5 and reports[0].coords.shape == (90, 2)
    assert reports[0].features.shape == (90, 784) and torch.equal(torch.as_tensor(reports[0].features).float(),
                                                                  imgs.flatten(1).float() / 255)
    assert 0 < reports[0].umap_seconds and 0 < reports[1].umap_seconds
    assert reports[0].umap_seconds + reports[1].umap_seconds <= wall  # both fits happened inside the call
    assert "pixels" in reports[0].row()
