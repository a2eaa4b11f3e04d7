import os

import pytest
import torch

import vitlab.training.checkpoints as ck
from vitlab import CheckpointError, ViT, load_model, save_checkpoint, vit_micro_mnist
from vitlab.models import CNNConfig, SmallCNN
from vitlab.training import read_checkpoint


def test_save_load_equality(tmp_path):
    torch.manual_seed(0)
    m = ViT(vit_micro_mnist())
    opt = torch.optim.AdamW(m.parameters())
    m(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.pt", m, optimizer=opt, epoch=3, step=30, history={"epochs": {"val_acc": [0.5]}},
                    dataset="mnist", normalization=(0.1307, 0.3081), classes=list("0123456789"))
    m2, ckpt = load_model(tmp_path / "c.pt")
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(m.eval()(x), m2(x))
    assert ckpt["epoch"] == 3 and ckpt["step"] == 30 and ckpt["dataset"] == "mnist"
    assert ckpt["history"]["epochs"]["val_acc"] == [0.5]
    assert ckpt["optimizer"]["state"]  # Adam moments are kept for resuming


def test_cnn_round_trip(tmp_path):
    m = SmallCNN(CNNConfig())
    save_checkpoint(tmp_path / "cnn.pt", m)
    m2, ckpt = load_model(tmp_path / "cnn.pt")
    assert ckpt["model_type"] == "cnn" and isinstance(m2, SmallCNN)


def test_checkpoint_from_other_config_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", ViT(vit_micro_mnist()))
    other = ViT(vit_micro_mnist(dim=64, heads=4))
    with pytest.raises(CheckpointError, match=r"another model config \(dim: checkpoint 32, model 64; heads"):
        ck.load_weights(other, read_checkpoint(tmp_path / "c.pt"), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="holds a 'vit' model, not a 'cnn'"):
        ck.load_weights(SmallCNN(CNNConfig()), read_checkpoint(tmp_path / "c.pt"))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = ViT(vit_micro_mnist())
    evil = {"format": ck.FORMAT, "version": ck.VERSION, "model_type": "vit",
            "model_config": good.cfg.to_dict(), "model": good.state_dict(), "extra": Payload()}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a vitlab checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_truncated_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c.pt", ViT(vit_micro_mnist()))
    raw = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "cut.pt")


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    m = ViT(vit_micro_mnist())
    save_checkpoint(tmp_path / "c.pt", m, epoch=1)
    before = (tmp_path / "c.pt").read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.pt", m, epoch=2)
    assert (tmp_path / "c.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]  # no temporary file left behind


def test_checkpoint_predating_a_config_field_still_loads(tmp_path):
    """A field added to ViTConfig later (norm_eps) counts as its default for older checkpoints."""
    from vitlab import ViT, load_model, save_checkpoint, vit_micro_mnist

    model = ViT(vit_micro_mnist())
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_config"]["norm_eps"]  # as written before the field existed
    torch.save(ckpt, path)
    loaded, _ = load_model(path)
    assert loaded.cfg.norm_eps == 1e-5
    from vitlab.training.checkpoints import config_mismatch

    assert "norm_eps" in config_mismatch({**ckpt["model_config"], "norm_eps": 1e-6}, model.cfg.to_dict(), "vit")


def test_every_kind_loads_in_a_fresh_process_without_importing_its_method(tmp_path):
    """The registry names MAE and DeiT itself: loading their checkpoints needs no import of vitlab.methods."""
    import subprocess
    import sys

    from vitlab.models import MAE, DeiT, MAEConfig, deit_config

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mae.pt", MAE(MAEConfig(encoder=vit_micro_mnist())))
    save_checkpoint(tmp_path / "deit.pt", DeiT(deit_config(vit_micro_mnist())))
    code = ("import sys; from vitlab.training.checkpoints import load_model; "
            "print(*(type(load_model(p)[0]).__name__ for p in sys.argv[1:])); "
            "print(any(m.startswith('vitlab.methods') for m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mae.pt"), str(tmp_path / "deit.pt")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["MAE DeiT", "False"]


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("kind", ["vit", "cnn", "deit", "mae"])
def test_checkpoints_written_before_the_package_was_laid_out_in_layers_still_load(kind):
    """tests/fixtures/v1_*.pt were written by vitlab 63ae0eb (flat modules, no class names' label map or split
    recorded): they load, as the same kind, with the same outputs."""
    from vitlab.models import MODEL_TYPES

    model, ckpt = load_model(FIXTURES / f"v1_{kind}.pt")
    assert type(model) is MODEL_TYPES[kind][1] and ckpt.get("data_split") is None
    if kind != "mae":
        ref = torch.load(FIXTURES / "v1_reference_logits.pt", weights_only=True)
        with torch.no_grad():
            assert torch.allclose(model(ref["input"]), ref[kind], atol=1e-6)
