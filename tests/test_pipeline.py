"""ChairPipeline: the contract in DEVELOPERS.md, determinism, save/load, Hub path offline."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from conftest import tiny_config
from vaegan import ChairPipeline
from vaegan.errors import CheckpointError, EmptyShapeError, ImageError, VoxelError

ROOT = Path(__file__).resolve().parents[1]


def test_contract_types_and_shapes(tiny_pipe):
    pipe = tiny_pipe
    assert isinstance(pipe.resolution, int) and isinstance(pipe.z_dim, int)
    z = pipe.sample_latents(3, seed=0)
    assert z.dtype == torch.float32 and z.shape == (3, pipe.z_dim)
    vox = pipe.generate(z)
    assert vox.dtype == np.float32 and vox.shape == (3, 16, 16, 16)
    assert vox.min() >= 0 and vox.max() <= 1
    image = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    zi = pipe.encode(image)
    assert zi.shape == (1, pipe.z_dim) and zi.dtype == torch.float32
    assert pipe.encode([image, image]).shape == (2, pipe.z_dim)
    rec = pipe.reconstruct(image)
    assert rec.dtype == np.float32 and rec.shape == (16, 16, 16)
    # An untrained generator gives ~0.5 everywhere; mesh at its own median so a surface exists.
    mesh = pipe.mesh(vox[0], level=float(np.median(vox[0])))
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 0
    assert pipe.realism(vox).shape == (3,)


def test_predictive_occupancy_of_reconstruct(tmp_path, monkeypatch):
    """e_predictive_std = 0 is G(mu); > 0 averages G over seeded draws around mu (on the
    e_mu_radius shell when set), stays in [0, 1], is reproducible, survives save/load, and is
    what reconstruct returns."""
    plain = ChairPipeline.from_config(tiny_config(), seed=0)
    image = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    mu = plain.encode(image)
    assert np.array_equal(plain.predictive(mu), plain.generate(mu))
    assert np.array_equal(plain.reconstruct(image), plain.generate(mu)[0])

    pipe = ChairPipeline.from_config(tiny_config(e_mu_radius=2.0, e_predictive_std=0.7), seed=0)
    mu = pipe.encode(image)
    assert torch.allclose(mu.norm(dim=1), torch.tensor([2.0]))
    avg = pipe.predictive(mu, samples=5)
    assert avg.dtype == np.float32 and avg.shape == (1, 16, 16, 16) and 0 <= avg.min() and avg.max() <= 1
    assert np.array_equal(avg, pipe.predictive(mu, samples=5))
    eps = torch.randn((5,) + tuple(mu.shape), generator=torch.Generator().manual_seed(0))  # (draws, 1, z_dim)
    draws = [mu + 0.7 * e for e in eps]
    expected = np.mean([pipe.generate(z * (2.0 / z.norm(dim=1, keepdim=True))) for z in draws], axis=0)
    assert np.allclose(avg, expected, atol=1e-6)
    assert not np.allclose(avg, pipe.generate(mu), atol=1e-4)
    two = torch.cat([mu, -mu])
    batched = pipe.predictive(two, samples=7)
    monkeypatch.setattr("vaegan.pipeline.DRAW_BATCH", 1)  # one grid per generator call: same draws, same sums
    assert np.allclose(pipe.predictive(two, samples=7), batched, atol=1e-6)
    assert np.array_equal(pipe.reconstruct(image), pipe.predictive(mu)[0])
    pipe.save_pretrained(tmp_path / "p")
    again = ChairPipeline.from_pretrained(tmp_path / "p")
    assert again.encoder.config.e_predictive_std == 0.7
    assert np.array_equal(again.reconstruct(image), pipe.reconstruct(image))
    with pytest.raises(ValueError, match="std must be"):
        pipe.predictive(mu, std=-1.0)


def test_bank_encoder_mixture_is_what_reconstruct_returns(tmp_path):
    """A bank encoder (e_bank_size > 0): encode gives the most probable bank code, reconstruct
    the mixture of G over the e_bank_top most probable codes with renormalised weights; the
    bank survives save/load."""
    pipe = ChairPipeline.from_config(tiny_config(e_bank_size=6, e_bank_top=3), seed=0)
    pipe.encoder.bank.copy_(pipe.sample_latents(6, seed=1))
    image = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    picture = pipe.preprocess(image)[0][None]
    with torch.no_grad():
        p = pipe.encoder.bank_logits(picture).softmax(1)[0]  # (6,)
    top = p.topk(3)
    assert torch.equal(pipe.encode(image)[0], pipe.encoder.bank[top.indices[0]])
    expected = sum(float(w) / float(top.values.sum()) * pipe.generate(pipe.encoder.bank[i])[0]
                   for w, i in zip(top.values, top.indices))
    rec = pipe.reconstruct(image)
    assert rec.dtype == np.float32 and rec.shape == (16, 16, 16) and np.allclose(rec, expected, atol=1e-6)
    mode, occupancy = pipe.photo_predictive(torch.cat([picture, picture]))
    assert mode.shape == (2, 8) and occupancy.shape == (2, 16, 16, 16) and np.allclose(occupancy[1], rec, atol=1e-6)
    pipe.save_pretrained(tmp_path / "p")
    again = ChairPipeline.from_pretrained(tmp_path / "p")
    assert torch.equal(again.encoder.bank, pipe.encoder.bank)
    assert np.array_equal(again.reconstruct(image), rec)
    with pytest.raises(ValueError, match="Gaussian posterior"):
        ChairPipeline.from_config(tiny_config(), seed=0).encoder.bank_logits(picture)
    with pytest.raises(ValueError, match="e_bank_size"):
        tiny_config(e_bank_size=-1)


def test_same_seed_is_bit_identical(tiny_pipe):
    a = tiny_pipe.generate(tiny_pipe.sample_latents(4, seed=7))
    b = tiny_pipe.generate(tiny_pipe.sample_latents(4, seed=7))
    c = tiny_pipe.generate(tiny_pipe.sample_latents(4, seed=8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # Batch size must not change a sample (BatchNorm runs in eval mode).
    z = tiny_pipe.sample_latents(4, seed=7)
    assert np.allclose(tiny_pipe.generate(z[:1])[0], a[0], atol=1e-6)


def test_truncation_scales_latents(tiny_pipe):
    z1 = tiny_pipe.sample_latents(2, seed=3)
    z05 = tiny_pipe.sample_latents(2, seed=3, truncation=0.5)
    assert torch.allclose(z05, z1 * 0.5)


def test_save_then_from_pretrained_is_identical(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "ckpt")
    loaded = ChairPipeline.from_pretrained(tmp_path / "ckpt")
    z = tiny_pipe.sample_latents(2, seed=1)
    assert np.array_equal(tiny_pipe.generate(z), loaded.generate(z))
    assert loaded.encoder is not None and loaded.discriminator is not None


def test_generator_only_checkpoint(tiny_pipe, tmp_path):
    tiny_pipe.generator.save_pretrained(tmp_path / "g" / "generator")
    pipe = ChairPipeline.from_pretrained(tmp_path / "g")
    assert pipe.encoder is None and pipe.discriminator is None
    with pytest.raises(CheckpointError, match="no image encoder"):
        pipe.encode(Image.new("RGB", (32, 32)))
    with pytest.raises(CheckpointError, match="no discriminator"):
        pipe.realism(np.zeros((16, 16, 16), np.float32))


def _fake_hub_cache(cache: Path, repo_id: str, source: Path) -> None:
    """Lay out `source` exactly as huggingface_hub caches a downloaded model repo."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_from_pretrained_hub_repo_id_offline(tiny_pipe, tmp_path):
    """The real Hub code path (snapshot_download), served from a local cache, offline."""
    tiny_pipe.save_pretrained(tmp_path / "src")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "chair-studio/chair-tiny", tmp_path / "src")
    code = (
        "import numpy as np; from vaegan import ChairPipeline;"
        "p = ChairPipeline.from_pretrained('chair-studio/chair-tiny');"
        "q = ChairPipeline.from_pretrained(r'%s');"
        "z = p.sample_latents(2, seed=0);"
        "assert np.array_equal(p.generate(z), q.generate(z)); print('ok', p.resolution)"
    ) % (tmp_path / "src")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok 16"
    # A repo that is not in the cache fails offline with a clear message, not a traceback.
    code_missing = (
        "from vaegan import ChairPipeline\n"
        "try:\n    ChairPipeline.from_pretrained('chair-studio/absent')\n"
        "except FileNotFoundError as e:\n    print('error:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code_missing], env=env, capture_output=True, text=True, timeout=120)
    assert "is not a local checkpoint folder" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("damage, match", [
    ("nothing", "does not exist"),
    ("no_generator", "generator/config.json is missing"),
    ("no_weights", "model.safetensors is missing"),
    ("no_encoder_config", "encoder/config.json is missing"),
    ("truncated_weights", "does not match its config.json"),
])
def test_missing_or_incomplete_checkpoint(tiny_pipe, tmp_path, damage, match):
    ckpt = tmp_path / "ckpt"
    if damage != "nothing":
        tiny_pipe.save_pretrained(ckpt)
    if damage == "no_generator":
        shutil.rmtree(ckpt / "generator")
    elif damage == "no_weights":
        (ckpt / "generator" / "model.safetensors").unlink()
    elif damage == "no_encoder_config":
        (ckpt / "encoder" / "config.json").unlink()
    elif damage == "truncated_weights":
        weights = ckpt / "generator" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=match):
        ChairPipeline.from_pretrained(ckpt)


def test_mismatched_components_are_rejected(tmp_path):
    a = ChairPipeline.from_config(tiny_config(16))
    b = ChairPipeline.from_config(tiny_config(8))
    with pytest.raises(CheckpointError, match="resolution 8"):
        ChairPipeline(a.generator, b.discriminator)


@pytest.mark.parametrize("z, match", [
    (np.zeros((2, 3)), r"expected \(n, 8\)"),
    (np.full((1, 8), np.nan), "NaN"),
    (np.zeros((0, 8)), r"expected \(n, 8\)"),
])
def test_bad_latents(tiny_pipe, z, match):
    with pytest.raises(ValueError, match=match):
        tiny_pipe.generate(z)


def test_single_latent_vector_is_accepted(tiny_pipe):
    assert tiny_pipe.generate(np.zeros(8, np.float32)).shape == (1, 16, 16, 16)


def test_bad_grids_and_images(tiny_pipe, tmp_path):
    with pytest.raises(VoxelError, match="shape"):
        tiny_pipe.mesh(np.zeros((4, 4), np.float32))
    with pytest.raises(EmptyShapeError, match="nothing to mesh"):
        tiny_pipe.mesh(np.zeros((16, 16, 16), np.float32))
    with pytest.raises(VoxelError):
        tiny_pipe.realism(np.zeros((8, 8, 8), np.float32))  # wrong resolution
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not an image"):
        tiny_pipe.encode(str(bad))
    with pytest.raises(ImageError, match="pixels"):
        tiny_pipe.encode(Image.new("RGB", (1, 1)))
