"""vaegan.projection (voxels -> z) and vaegan.novelty (nearest chair by IoU on packed bits)."""


import numpy as np
import pytest

from train.metrics import iou_matrix
from vaegan import novelty
from vaegan.errors import ConfigError, VoxelError
from vaegan.projection import ProjectionConfig, check_targets, latent_bank, project

from conftest import SHIPPED

FAST = dict(steps=30, bank=32, batch_size=16, eval_every=10)


# ------------------------------------------------------------------ novelty
def random_grids(n, r=16, fill=0.2, seed=0):
    return np.random.default_rng(seed).random((n, r, r, r)) < fill


def test_packed_iou_equals_iou_matrix():
    a, b = random_grids(5, seed=1), random_grids(7, seed=2)
    b[0] = a[2]
    b[1] = False
    a[4] = False
    got = novelty.iou_one_to_many(novelty.pack(a), novelty.pack(b))
    np.testing.assert_allclose(got, iou_matrix(a, b), atol=1e-6)
    assert got[2, 0] == 1.0 and got[4, 1] == 1.0 and got[0, 1] == 0.0


def test_pack_round_trip_and_names():
    grids = random_grids(3, seed=3)
    packed = novelty.pack(grids.astype(np.float32), names=["a", "b", "c"])
    assert len(packed) == 3 and packed.names == ("a", "b", "c") and packed.resolution == 16
    np.testing.assert_array_equal(packed.unpack(1), grids[1])
    np.testing.assert_array_equal(packed.counts, grids.reshape(3, -1).sum(1))
    with pytest.raises(ValueError, match="2 names for 3 grids"):
        novelty.pack(grids, names=["a", "b"])


def test_nearest_finds_the_copy():
    refs = random_grids(20, seed=4)
    query = refs[[13, 5]].astype(np.float32) * 0.8  # probabilities >= 0.5 where occupied
    index, iou = novelty.nearest(query, novelty.pack(refs))
    assert index.tolist() == [13, 5] and iou.tolist() == [1.0, 1.0]
    index, iou = novelty.nearest(refs[3], novelty.pack(refs))  # one grid
    assert index.tolist() == [3]


def test_nearest_rejects_other_resolutions():
    refs = novelty.pack(random_grids(3))
    with pytest.raises(VoxelError, match="side 32; the reference chairs have side 16"):
        novelty.nearest(np.zeros((32, 32, 32)), refs)
    with pytest.raises(VoxelError, match="stack"):
        novelty.nearest(np.zeros((16, 16)), refs)


# ------------------------------------------------------------------ projection
@pytest.mark.parametrize("grid, reason", [
    (np.zeros((32, 32, 32)), r"shape \(16, 16, 16\)"),
    (np.zeros((30, 30, 30)), "load_voxels"),
    (np.zeros((16, 16)), r"got \(16, 16\)"),
    (np.zeros((0, 16, 16, 16)), r"got \(0, 16, 16, 16\)"),
    (np.full((16, 16, 16), np.nan), "NaN"),
    (np.full((16, 16, 16), 3.0), r"\[0, 1\]"),
])
def test_projection_rejects_bad_grids_with_a_reason(tiny_pipe, grid, reason):
    with pytest.raises(VoxelError, match=reason):
        project(tiny_pipe, grid, ProjectionConfig(**FAST))
    with pytest.raises(VoxelError, match=reason):
        check_targets(grid, 16)


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(starts=0), dict(bank=4, starts=5), dict(lr=0), dict(level=1.0)])
def test_projection_config_is_validated(tiny_pipe, bad):
    with pytest.raises(ConfigError):
        project(tiny_pipe, np.zeros((16, 16, 16)), ProjectionConfig(**{**FAST, **bad}))


def test_projection_recovers_generated_chairs(tiny_pipe):
    z_true = np.asarray(tiny_pipe.sample_latents(3, seed=77))
    targets = tiny_pipe.generate(z_true) >= 0.5  # shapes the model can make exactly
    cfg = ProjectionConfig(**FAST, starts=2)
    result = project(tiny_pipe, targets, cfg)
    assert result.z.shape == (3, tiny_pipe.z_dim) and result.z.dtype == np.float32
    assert result.iou.shape == result.start_iou.shape == (3,)
    assert np.all(result.iou >= result.start_iou - 1e-6)  # the start is a candidate: never worse
    np.testing.assert_allclose(result.iou, [novelty.iou_one_to_many(novelty.pack(tiny_pipe.generate(z)),
                                                                    novelty.pack(t))[0, 0]
                                            for z, t in zip(result.z, targets)], atol=1e-6)
    assert result.iou.mean() > 0.6
    again = project(tiny_pipe, targets, cfg)
    np.testing.assert_array_equal(again.z, result.z)  # seeded


def test_a_bank_chair_projects_to_itself(tiny_pipe):
    bank = latent_bank(tiny_pipe, 16, seed=5)
    target = bank.shapes.unpack(7)
    result = project(tiny_pipe, target, ProjectionConfig(steps=0, bank=16, starts=1), bank=bank)
    assert result.start_iou[0] == 1.0 and result.iou[0] == 1.0
    np.testing.assert_array_equal(result.z[0], bank.z[7])


def test_projection_reports_progress_and_keeps_the_generator_trainable(tiny_pipe):
    calls = []
    cfg = ProjectionConfig(**{**FAST, "batch_size": 2, "steps": 2, "starts": 1})
    project(tiny_pipe, np.zeros((5, 16, 16, 16)), cfg, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert all(p.requires_grad for p in tiny_pipe.generator.parameters())


@pytest.mark.slow
def test_shipped_model_projects_test_chairs(data_dir):
    from vaegan.datasets import load_chairs
    from vaegan import ChairPipeline

    if not (SHIPPED / "generator" / "config.json").is_file():
        pytest.skip(f"no trained checkpoint at {SHIPPED}")
    pipe = ChairPipeline.from_pretrained(SHIPPED)
    test, _ = load_chairs(data_dir / "modelnet10_chair_vol30", "test", pipe.resolution)
    result = project(pipe, test[:6], ProjectionConfig(steps=100, bank=512))
    assert result.iou.mean() > 0.55 and np.all(result.iou >= result.start_iou - 1e-6)
