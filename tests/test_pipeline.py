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


def _photo():
    return Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))


def test_reconstruct_is_the_shown_chair_made_soft(tmp_path):
    """reconstruct = sigmoid(G's logits / e_temperature) at encode(photo): its 0.5 level is
    exactly generate(encode(photo)) >= 0.5, the chair the app shows, for any temperature."""
    pipe = ChairPipeline.from_config(tiny_config(e_mu_radius=2.0, e_temperature=8.0), seed=0)
    torch.nn.init.normal_(pipe.encoder.head.bias)  # an untrained backbone's features are ~0
    image = _photo()
    z = pipe.encode(image)
    assert torch.allclose(z.norm(dim=1), torch.tensor([2.0]))
    shown = pipe.generate(z)[0]
    soft = pipe.reconstruct(image)
    assert soft.dtype == np.float32 and soft.shape == (16, 16, 16)
    with torch.no_grad():
        logits = pipe.generator.logits(z)[0, 0]
        expected = torch.sigmoid(logits / 8.0).numpy()
    # (An untrained G's logits are ~0; where float32 rounds both sigmoids to 0.5 no cut is defined.)
    clear = np.abs(logits.numpy()) > 1e-4
    assert clear.mean() > 0.5 and np.array_equal((soft >= 0.5)[clear], (shown >= 0.5)[clear])
    assert np.allclose(soft, expected, atol=1e-6)
    assert np.array_equal(pipe.soft_occupancy(z, temperature=1.0)[0], shown)
    pipe.save_pretrained(tmp_path / "p")
    again = ChairPipeline.from_pretrained(tmp_path / "p")
    assert again.encoder.config.e_temperature == 8.0
    assert np.array_equal(again.reconstruct(image), soft)
    with pytest.raises(ValueError, match="temperature"):
        pipe.soft_occupancy(z, temperature=0.0)
    with pytest.raises(ImageError, match="one image"):
        pipe.reconstruct([image, image])


def test_candidates_are_the_photo_code_then_the_nearest_gallery_chairs(tmp_path):
    """candidates(photo, k): (k, z_dim) float32, encode(photo) first, then the gallery chairs in
    order of cosine similarity of their stored embedding to the photo's; the gallery survives
    save/load; k outside 1-16 or beyond the gallery is a ValueError."""
    pipe = ChairPipeline.from_config(tiny_config(e_gallery=6), seed=0)
    encoder = pipe.encoder
    image = _photo()
    picture = pipe.preprocess(image)[0][None]
    with torch.no_grad():
        h = torch.nn.functional.normalize(encoder.embed(picture), dim=1)[0]  # (F,)
        # Gallery embeddings with known similarities to the photo: 0.9, 0.1, 0.5, -0.3, 0.7, 0.0.
        other = torch.nn.functional.normalize(torch.randn_like(h) - (torch.randn_like(h) @ h) * h, dim=0)
        other = torch.nn.functional.normalize(other - (other @ h) * h, dim=0)
        sims = torch.tensor([0.9, 0.1, 0.5, -0.3, 0.7, 0.0])
        encoder.gallery_embeddings.copy_(sims[:, None] * h + (1 - sims[:, None] ** 2).sqrt() * other)
        encoder.gallery_codes.copy_(pipe.sample_latents(6, seed=3))
    z = pipe.candidates(image, k=4)
    assert z.dtype == torch.float32 and z.shape == (4, pipe.z_dim)
    assert torch.equal(z[0], pipe.encode(image)[0])
    assert torch.equal(z[1:], encoder.gallery_codes[[0, 4, 2]])  # similarity 0.9, 0.7, 0.5
    assert torch.equal(pipe.candidates(image, k=1), pipe.encode(image))
    pipe.save_pretrained(tmp_path / "p")
    again = ChairPipeline.from_pretrained(tmp_path / "p")
    assert torch.equal(again.candidates(image, k=4), z)
    for bad in (0, 17, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="k must be an integer from 1 to 16"):
            pipe.candidates(image, k=bad)
    with pytest.raises(ValueError, match="needs 7 stored gallery chairs"):
        pipe.candidates(image, k=8)
    with pytest.raises(ImageError):
        pipe.candidates([image, image])


def test_loading_a_checkpoint_reads_no_pickle(tmp_path, monkeypatch):
    """Every component, the photo encoder's backbone and gallery included, loads from safetensors."""
    import pickle

    pipe = ChairPipeline.from_config(tiny_config(e_gallery=3), seed=0)
    pipe.save_pretrained(tmp_path / "p")

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    again = ChairPipeline.from_pretrained(tmp_path / "p")
    assert torch.equal(again.encoder.gallery_codes, pipe.encoder.gallery_codes)
    assert all(p.suffix != ".pt" and p.suffix != ".bin" for p in (tmp_path / "p").rglob("*") if p.is_file())


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
