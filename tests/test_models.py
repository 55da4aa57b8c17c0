"""Networks and config: shapes, one backward pass each, save/load, config errors."""

import json

import pytest
import torch

from conftest import tiny_config
from vaegan.config import ModelConfig
from vaegan.errors import CheckpointError, ConfigError
from vaegan.models import Discriminator, Generator, ImageEncoder


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_generator_and_discriminator_shapes_and_backward(resolution):
    cfg = tiny_config(resolution)
    g, d = Generator(cfg), Discriminator(cfg)
    z = torch.randn(3, cfg.z_dim)
    vox = g(z)
    assert vox.shape == (3, 1, resolution, resolution, resolution)
    assert float(vox.detach().min()) >= 0 and float(vox.detach().max()) <= 1
    logit, feats = d(vox, return_features=True)
    assert logit.shape == (3,)
    assert [f.shape[2] for f in feats] == [resolution // 2 ** (i + 1) for i in range(cfg.num_up)]
    logit.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
    assert all(p.grad is not None for p in d.parameters())


def test_spectral_discriminator_backward():
    cfg = tiny_config(d_norm="spectral")
    d = Discriminator(cfg)
    d(torch.rand(2, 1, 16, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in d.parameters() if p.requires_grad)


def test_paper_64_config_layer_sizes():
    cfg = ModelConfig(resolution=64, g_widths=(512, 256, 128, 64))
    g = Generator(cfg)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 1]
    assert all(c.kernel_size == (4, 4, 4) for c in convs)
    assert cfg.d_widths == (64, 128, 256, 512)


def test_photo_encoder_codes_lie_on_the_shell_and_train():
    cfg = tiny_config(e_mu_radius=3.0)
    e = ImageEncoder(cfg)
    torch.nn.init.normal_(e.head.bias)
    z = e(torch.rand(2, 3, cfg.image_size, cfg.image_size))
    assert z.shape == (2, cfg.z_dim) and torch.allclose(z.norm(dim=1), torch.full((2,), 3.0))
    z.pow(2).mul(torch.randn_like(z)).sum().backward()
    assert e.backbone.stem[0].weight.grad is not None and e.head.weight.grad is not None


@pytest.mark.parametrize("model_cls", [Generator, Discriminator, ImageEncoder])
def test_save_and_from_pretrained_give_identical_outputs(tmp_path, model_cls):
    cfg = tiny_config(d_norm="spectral") if model_cls is Discriminator else tiny_config()
    torch.manual_seed(1)
    model = model_cls(cfg).eval()
    x = {Generator: torch.randn(2, cfg.z_dim), Discriminator: torch.rand(2, 1, 16, 16, 16),
         ImageEncoder: torch.rand(2, 3, 32, 32)}[model_cls]
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "config.json").read_text())["resolution"] == 16
    loaded = model_cls.from_pretrained(tmp_path)
    assert loaded.config == cfg
    out_a, out_b = model(x), loaded(x)
    for a, b in zip(out_a if isinstance(out_a, tuple) else [out_a], out_b if isinstance(out_b, tuple) else [out_b]):
        assert torch.equal(a, b)


def test_loading_never_unpickles(tmp_path):
    g = Generator(tiny_config())
    g.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "x")
    torch.save(g.state_dict(), tmp_path / "pytorch_model.bin")  # a pickle must be ignored
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        Generator.from_pretrained(tmp_path)


def test_mismatched_weights_are_a_clear_error(tmp_path):
    Generator(tiny_config()).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["g_widths"] = [16, 4]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match its config.json"):
        Generator.from_pretrained(tmp_path)


@pytest.mark.parametrize("bad, match", [
    (dict(resolution=30), "unsupported resolution 30"),
    (dict(resolution=256), "unsupported resolution 256"),
    (dict(resolution=32, g_widths=(8, 4)), "g_widths has 2 entries but resolution 32 needs 3"),
    (dict(d_norm="layer"), "d_norm"),
    (dict(image_size=20), "image_size 20"),
    (dict(e_temperature=0.0), "e_temperature"),
    (dict(e_gallery=-1), "e_gallery"),
])
def test_config_errors(bad, match):
    values = dict(resolution=16, g_widths=(8, 4), image_size=32, e_width=0.25)
    values.update(bad)
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**values)
