"""Generator v3's parts: the learned prior (`vaegan.prior`) behind `sample_latents`, the cleaning
`generate` does (`meshing.join_pieces`, `ModelConfig.g_clean`), and the two training stages
`python -m train autoencoder` and `python -m train prior` on tiny chairs."""

import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from test_train_gan import make_chairs
from train.__main__ import main as train_main
from vaegan import ChairPipeline
from vaegan.errors import ConfigError
from vaegan.meshing import count_components, count_solids, join_pieces
from vaegan.models import Generator, ShapeEncoder
from vaegan.pipeline import MAX_SAMPLES
from vaegan.prior import LatentPrior


# ----------------------------------------------------------------------------- the prior
def tiny_prior(config) -> LatentPrior:
    """A prior with distinct, seeded components (an unfitted one is k copies of N(0, I))."""
    prior = LatentPrior(config)
    gen = torch.Generator().manual_seed(0)
    prior.means.copy_(torch.randn(prior.means.shape, generator=gen) * 2)
    prior.scale_tril.mul_(0.5)
    prior.weights.copy_(torch.arange(1.0, config.p_components + 1) / sum(range(1, config.p_components + 1)))
    return prior


def test_prior_samples_are_seeded_codes_on_the_shell():
    config = tiny_config(p_kind="gmm", p_components=3)
    torch.manual_seed(0)
    pipe = ChairPipeline(Generator(config), prior=tiny_prior(config))
    z = pipe.sample_latents(5, seed=3)
    assert z.shape == (5, config.z_dim) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=1), torch.full((5,), config.z_dim ** 0.5))
    torch.testing.assert_close(pipe.sample_latents(5, seed=3), z, rtol=0, atol=0)  # deterministic
    assert not torch.allclose(pipe.sample_latents(5, seed=4), z)
    means = pipe.prior.to_code(pipe.prior.means)  # (3, d): the components' centres on the shell
    centred = pipe.sample_latents(50, seed=3, truncation=0.0)  # no noise: every draw is a centre
    assert (torch.cdist(centred, means).min(1).values < 1e-2).all()
    assert len(torch.unique(centred.round(decimals=4), dim=0)) == 3
    assert pipe.generate(z).shape == (5, 16, 16, 16)


def test_prior_round_trips_through_the_checkpoint_folder(tmp_path):
    config = tiny_config(p_kind="gmm", p_components=3)
    torch.manual_seed(0)
    prior = tiny_prior(config)
    prior.code_mean.fill_(0.5)
    ChairPipeline(Generator(config), shape_encoder=ShapeEncoder(config), prior=prior).save_pretrained(tmp_path)
    loaded = ChairPipeline.from_pretrained(tmp_path)
    assert loaded.prior is not None and loaded.prior.config.p_kind == "gmm"
    torch.testing.assert_close(loaded.sample_latents(3, seed=1), prior.sample(3, 1))
    config_file = tmp_path / "prior" / "config.json"
    config_file.write_text(config_file.read_text().replace('"gmm"', '"gan"'))  # the first v3 release
    with pytest.raises(ConfigError, match="latent GAN prior left the code"):
        ChairPipeline.from_pretrained(tmp_path)


def test_many_draws_are_the_mixture_drawn_in_parts():
    """More draws than SAMPLE_CHUNK are computed in parts (memory); they are still each
    component's mean plus its Cholesky factor times the seeded noise."""
    from vaegan.prior import SAMPLE_CHUNK

    config = tiny_config(p_kind="gmm", p_components=3)
    prior = tiny_prior(config)
    prior.scale_tril.copy_(torch.randn(prior.scale_tril.shape, generator=torch.Generator().manual_seed(1)).tril())
    n = 2 * SAMPLE_CHUNK + 1
    gen = torch.Generator().manual_seed(5)
    component = torch.multinomial(prior.weights, n, replacement=True, generator=gen)
    noise = torch.randn(n, config.z_dim, 1, generator=gen)
    expected = prior.to_code(prior.means[component] + (prior.scale_tril[component] @ noise)[..., 0])
    torch.testing.assert_close(prior.sample(n, seed=5), expected)


def test_fit_prior_finds_the_clusters_of_the_codes():
    """Two tight clusters of codes, 3:1 -> two components with those weights, whose samples land
    in the clusters; the fit is the same for the same seed."""
    from train.prior import fit_prior

    config = tiny_config(p_kind="gmm", p_components=2)
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(2, config.z_dim, generator=gen) * 3  # (2, d)
    codes = torch.cat([centres[0] + 0.05 * torch.randn(90, config.z_dim, generator=gen),
                       centres[1] + 0.05 * torch.randn(30, config.z_dim, generator=gen)])  # (120, d)
    prior = fit_prior(codes, config, reg=1e-3, iterations=100, seed=0)
    assert sorted(prior.weights.tolist()) == pytest.approx([0.25, 0.75], abs=1e-6)
    z = prior.sample(400, seed=0)  # on the shell
    on_shell = prior.to_code(prior.normalise(centres))  # (2, d)
    nearest = torch.cdist(z, on_shell).argmin(1)
    assert (torch.cdist(z, on_shell).min(1).values < 0.2 * config.z_dim ** 0.5).all()
    assert 0.65 < (nearest == 0).float().mean() < 0.85  # centre 0 holds 90 of the 120 codes
    again = fit_prior(codes, config, reg=1e-3, iterations=100, seed=0)
    torch.testing.assert_close(again.sample(5, seed=2), prior.sample(5, seed=2))
    with pytest.raises(ConfigError, match="too few"):
        fit_prior(codes[:3], config, reg=1e-3, iterations=100, seed=0)


def test_a_discriminator_of_another_z_dim_is_kept_but_other_parts_must_match():
    """v3 ships v2's discriminator (z_dim 200) beside a 128-d generator: D reads grids only."""
    from vaegan.errors import CheckpointError
    from vaegan.models import Discriminator

    config = tiny_config()
    other = tiny_config(z_dim=config.z_dim + 4)
    pipe = ChairPipeline(Generator(config), discriminator=Discriminator(other))
    assert pipe.discriminator is not None
    with pytest.raises(CheckpointError, match="ShapeEncoder was built for resolution .* z_dim"):
        ChairPipeline(Generator(config), shape_encoder=ShapeEncoder(other))
    with pytest.raises(CheckpointError, match="Discriminator was built for resolution"):
        ChairPipeline(Generator(config), discriminator=Discriminator(tiny_config(resolution=32)))


def test_principal_directions_come_from_the_prior_samples():
    """GANSpace must read the checkpoint's own latents: with a prior they are not N(0, I)."""
    from vaegan import directions as dirs

    config = tiny_config(p_kind="gmm", p_components=3)
    torch.manual_seed(0)
    gen = Generator(config)
    with_prior = ChairPipeline(gen, prior=tiny_prior(config))
    without = ChairPipeline(gen)
    d_prior, _ = dirs.ganspace_directions(with_prior, k=3, n=128)
    d_normal, _ = dirs.ganspace_directions(without, k=3, n=128)
    assert not np.allclose(d_prior, d_normal, atol=1e-3)
    np.testing.assert_array_equal(d_prior, dirs.ganspace_directions(with_prior, k=3, n=128)[0])


def test_without_a_prior_samples_are_standard_normal(tiny_pipe):
    expected = torch.randn(4, tiny_pipe.z_dim, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(tiny_pipe.sample_latents(4, seed=7), expected)


@pytest.mark.parametrize("n, seed, reason", [
    (0, 0, "n must be an integer from 1 to 4096, got 0"),
    (-3, 0, "got -3"),
    (MAX_SAMPLES + 1, 0, "got 4097"),
    (2.5, 0, "got 2.5"),
    (True, 0, "got True"),
    (2, 1.5, "seed must be a non-negative integer, got 1.5"),
    (2, "3", "got '3'"),
    (2, -1, "got -1"),
    (2, None, "got None"),
])
def test_sample_latents_refuses_bad_counts_and_seeds(tiny_pipe, n, seed, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        tiny_pipe.sample_latents(n, seed=seed)


def test_sample_latents_takes_numpy_integers(tiny_pipe):
    assert tiny_pipe.sample_latents(np.int64(2), seed=np.int32(5)).shape == (2, tiny_pipe.z_dim)


def test_config_refuses_unknown_prior_and_cleaning():
    with pytest.raises(ConfigError, match="p_kind"):
        tiny_config(p_kind="diffusion")  # tried in the v3 study, not shipped: gone from the code
    with pytest.raises(ConfigError, match="p_components"):
        tiny_config(p_kind="gmm", p_components=0)
    with pytest.raises(ConfigError, match="g_clean"):
        tiny_config(g_clean="blur")


# ----------------------------------------------------------------------------- cleaning
def chair_with_loose_parts() -> np.ndarray:
    """A 12^3 body with a leg behind a faint two-voxel joint and a floating speck."""
    g = np.zeros((12, 12, 12), np.float32)
    g[2:9, 4:6, 5] = 0.9  # body
    g[5, 5, 6:8] = 0.3  # the joint, below the level
    g[5, 5, 8:11] = 0.8  # a leg, its own piece at 0.5
    g[10, 10, 1] = 0.7  # a speck, nothing >= 0.2 leads to it
    return g


def test_join_pieces_joins_near_pieces_and_drops_specks():
    g = chair_with_loose_parts()
    assert count_components(g >= 0.5) == 3
    out = join_pieces(g)
    assert count_components(out >= 0.5) == 1
    assert (out[5, 5, 6:8] > 0.5).all() and (out[5, 5, 8:11] == 0.8).all()  # joint raised, leg kept
    assert out[10, 10, 1] == 0.0  # speck gone
    assert (out[2:9, 4:6, 5] == 0.9).all() and g[5, 5, 6] == 0.3  # body untouched, input unchanged


def test_join_pieces_drops_a_piece_behind_a_long_joint():
    g = chair_with_loose_parts()
    assert count_components(join_pieces(g, max_bridge=1) >= 0.5) == 1
    assert join_pieces(g, max_bridge=1)[5, 5, 9] == 0.0  # the leg is too far at max_bridge 1
    one_piece = np.zeros((8, 8, 8), np.float32)
    one_piece[2:6, 3, 3] = 0.9
    np.testing.assert_array_equal(join_pieces(one_piece), one_piece)


def test_join_pieces_keeps_a_part_behind_a_faint_joint_and_drops_a_speck_there():
    """A part (>= PART_SIZE voxels) that no short joint reaches hangs on the widest faint joint
    within part_bridge voxels; a speck behind the same joint, or a part with nothing drawn
    between it and the chair, is dropped."""
    from vaegan.meshing import PART_SIZE

    g = np.zeros((16, 16, 16), np.float32)
    g[2:12, 6:8, 12] = 0.9  # seat
    g[4, 6, 7:12] = 0.06  # a faint five-voxel joint: too faint and too long for the short rule
    g[4, 6, 7] = 0.12  # ... one voxel of it brighter, which must not matter (the path is one line)
    g[4, 6:8, 2:7] = 0.8  # a leg of 10 voxels below it
    assert PART_SIZE <= 10 and count_components(g >= 0.5) == 2
    out = join_pieces(g)
    assert count_components(out >= 0.5) == 1
    assert (out[4, 6:8, 2:7] == 0.8).all() and (out[4, 6, 7:12] > 0.5).all()  # leg kept, joint raised
    assert (join_pieces(g, part_size=0)[4, 6:8, 2:7] == 0.0).all()  # the old rule: no parts, the leg went
    short = g.copy()
    short[4, 6:8, 2:7] = 0.0
    short[4, 6, 5:7] = 0.8  # a two-voxel speck behind the same joint
    assert (join_pieces(short)[4, 6, 5:7] == 0.0).all()
    far = g.copy()
    far[4, 6, 7:12] = 0.0  # nothing drawn between the leg and the seat
    out = join_pieces(far)
    assert (out[4, 6:8, 2:7] == 0.0).all() and count_components(out >= 0.5) == 1
    assert (join_pieces(g, part_bridge=4)[4, 6:8, 2:7] == 0.0).all()  # the joint is five voxels long


def test_join_pieces_output_meshes_as_one_piece_where_pieces_touch_only_along_an_edge():
    """On a soft grid marching cubes draws two voxels that share only an edge as two surfaces:
    an 18-connected chair could still show a floating leg. The join works by faces."""
    from vaegan.meshing import voxels_to_mesh

    g = np.zeros((12, 12, 12), np.float32)
    g[2:9, 4:6, 6] = 0.6  # seat
    g[5, 6, 2:6] = 0.6  # a leg whose top touches the seat only along an edge
    g[5, 5, 5] = 0.25  # the faint corner between them: the face between averages 0.36
    assert count_components(g >= 0.5) == 1  # one piece to the 18-connected count...
    assert voxels_to_mesh(g).body_count == 2  # ... but two in the viewer
    out = join_pieces(g)
    assert out[5, 5, 5] > 0.5 and (out[5, 6, 2:6] == 0.6).all()
    assert voxels_to_mesh(out).body_count == 1


def test_join_pieces_dilation_is_scipys_and_pieces_at_the_border_join():
    """`join_pieces` grows its distances with a shifted-OR dilation inside the chair's box: it
    must be ndimage's 6-connected dilation, edges included."""
    from scipy import ndimage

    from vaegan.meshing import _FACES, _dilate

    rng = np.random.default_rng(0)
    for shape in ((5, 7, 3), (12, 12, 12), (1, 4, 4)):
        for density in (0.02, 0.2):
            mask = rng.random(shape) < density
            np.testing.assert_array_equal(_dilate(mask), ndimage.binary_dilation(mask, _FACES))
    g = np.zeros((10, 10, 10), np.float32)
    g[0:4, 0:2, 0:2] = 0.9  # body, in a corner
    g[4, 0, 0] = 0.3  # joint, along the grid's edge
    g[5:8, 0, 0] = 0.8  # a leg on the edge
    g[9, 9, 9] = 0.9  # a speck in the far corner
    out = join_pieces(g)
    assert count_components(out >= 0.5) == 1 and out[4, 0, 0] > 0.5 and out[9, 9, 9] == 0.0
    np.testing.assert_array_equal(join_pieces(np.zeros((6, 6, 6), np.float32)), 0.0)


def test_generate_shows_one_piece_and_soft_occupancy_keeps_its_level():
    config = tiny_config(g_clean="join")
    torch.manual_seed(0)
    pipe = ChairPipeline(Generator(config))
    z = pipe.sample_latents(6, seed=0)
    vox = pipe.generate(z)
    assert vox.dtype == np.float32 and vox.min() >= 0 and vox.max() <= 1
    assert all(count_components(v >= 0.5) <= 1 for v in vox)
    soft = pipe.soft_occupancy(z, temperature=4.0)
    np.testing.assert_array_equal(soft >= 0.5, vox >= 0.5)
    raw = pipe.generator(z)[:, 0].detach().numpy()
    assert any(count_components(v >= 0.5) > 1 for v in raw)  # the untrained decoder is in pieces


# ----------------------------------------------------------------------------- training stages
def test_train_autoencoder_then_prior_on_tiny_chairs(tmp_path, capsys):
    data = make_chairs(tmp_path / "data", n=8)
    (data / "test").mkdir()
    for path in sorted((data / "train").glob("*_1.mat"))[:2]:
        (data / "test" / path.name).write_bytes(path.read_bytes())
    ae = tmp_path / "ae"
    args = ["autoencoder", "--data", str(data), "--out", str(ae), "--z-dim", "8", "--g-widths", "8", "4", "4",
            "--steps", "3", "--batch-size", "4", "--val-chairs", "2", "--eval-every", "2", "--threads", "1"]
    assert train_main([*args, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["z_dim"] == 8
    assert train_main(args) == 0
    report = json.loads((ae / "autoencoder.json").read_text())
    assert report["steps"] == 3 and report["test_chairs"] == 2 and 0 <= report["test_one_pass_iou"] <= 1
    pipe = ChairPipeline.from_pretrained(ae)
    assert pipe.shape_encoder is not None and pipe.z_dim == 8
    assert train_main([*args, "--steps", "4", "--resume"]) == 0  # continues the same run
    assert json.loads((ae / "autoencoder.json").read_text())["steps"] == 4
    assert train_main([*args, "--z-dim", "16", "--resume"]) == 2  # another architecture is refused

    out = tmp_path / "prior_gmm"
    assert train_main(["prior", "--autoencoder", str(ae), "--data", str(data), "--out", str(out),
                       "--components", "2"]) == 0
    full = ChairPipeline.from_pretrained(out)
    assert full.prior.config.p_kind == "gmm" and full.prior.config.p_components == 2
    assert full.shape_encoder is not None
    assert full.config.g_clean == "join"  # generate shows each chair in one piece
    assert json.loads((out / "prior.json").read_text())["codes"] == 16  # 8 chairs and their mirrors
    z = full.sample_latents(3, seed=0)
    torch.testing.assert_close(z, full.sample_latents(3, seed=0), rtol=0, atol=0)
    assert full.generate(z).shape == (3, 32, 32, 32)
    capsys.readouterr()
    assert train_main(["prior", "--autoencoder", str(tmp_path / "prior_gmm" / "generator"), "--data", str(data)]) == 2
    assert "error:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the shipped checkpoint
def shipped_v3():
    from conftest import SHIPPED

    if not (SHIPPED / "generator" / "config.json").is_file():
        pytest.skip(f"no trained checkpoint at {SHIPPED}")
    pipe = ChairPipeline.from_pretrained(SHIPPED)
    assert pipe.prior is not None, f"{SHIPPED} has no prior/: chair32 v3 samples from its learned prior"
    return pipe


@pytest.mark.slow
def test_shipped_samples_and_their_midpoints_are_valid_chairs():
    """20 samples of the shipped prior are valid chairs, and so is a slerp midpoint between two."""
    from train.metrics import mostly_one_piece
    from vaegan.latents import slerp

    pipe = shipped_v3()
    z = pipe.sample_latents(20, seed=0)
    vox = pipe.generate(z)
    assert mostly_one_piece(vox).all(), f"invalid samples: {np.flatnonzero(~mostly_one_piece(vox))}"
    assert [count_components(v >= 0.5) for v in vox] == [1] * 20  # one piece, no specks
    # ... and so is what the viewer draws: each mesh one solid (a cavity's inner wall is not a piece)
    solids = [count_solids(pipe.mesh(v)) for v in vox]
    assert solids == [1] * 20, f"samples in several solids in the viewer: {solids}"
    a, b = z[:2].numpy()
    middle = pipe.generate(slerp(a, b, 0.5)[None])
    assert mostly_one_piece(middle).all()
