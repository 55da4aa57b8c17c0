"""The recipe tools of `train gan` on tiny seeded models: DiffAugment transforms (and that G's
gradient passes through them), the R1 penalty, the reconstruction loss, the time budget and
the jointly trained shape encoder (saved, resumed exactly, exported)."""

import json

import pytest
import torch
from torch import nn

from train import augment
from train.__main__ import main as train_main
from train.gan import TrainConfig, lr_factor, r1_penalty, reconstruction_loss
from vaegan import ChairPipeline
from vaegan.config import ModelConfig
from vaegan.errors import ConfigError
from vaegan.models import Generator

from test_train_gan import TINY, make_chairs

JOINT = ["--recon-weight", "1", "--code-noise", "0.2", "--r1-gamma", "1", "--r1-every", "2", "--d-acc-max", "1",
         "--augment", "translation,cutout,mirror", "--augment-cutout", "4"]


def one_voxel(r=8, at=(3, 4, 5), batch=1):
    x = torch.zeros(batch, 1, r, r, r)
    x[:, 0, at[0], at[1], at[2]] = 1
    return x


def test_translation_moves_each_grid_by_at_most_shift():
    x = one_voxel(batch=64)
    out = augment.translate(x, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3, 4)), x.sum((1, 2, 3, 4)))
    where = torch.stack([torch.nonzero(o[0])[0] for o in out])  # (64, 3)
    moved = where - torch.tensor([3, 4, 5])
    assert moved.abs().max() <= 2 and len({tuple(m.tolist()) for m in moved}) > 10  # per grid, not per batch
    assert torch.equal(augment.translate(x, 0), x)


def test_cutout_empties_one_cube_of_the_given_side():
    x = torch.ones(16, 1, 8, 8, 8)
    out = augment.cut_out(x, 3, generator=torch.Generator().manual_seed(0))
    assert torch.all((1 - out).sum((1, 2, 3, 4)) == 27)
    assert torch.equal(augment.cut_out(x, 0), x)


def test_mirror_flips_left_right_only():
    x = one_voxel(batch=32)
    out = augment.mirror(x, generator=torch.Generator().manual_seed(0))
    flipped = out[:, 0, 3, 3, 5] == 1  # axis 1: 4 -> 8 - 1 - 4 = 3
    kept = out[:, 0, 3, 4, 5] == 1
    assert torch.all(flipped ^ kept) and 0 < flipped.sum() < 32


@pytest.mark.parametrize("transforms", [("translation",), ("cutout",), ("mirror",), augment.TRANSFORMS])
def test_gradient_reaches_the_generator_through_each_augmentation(transforms):
    torch.manual_seed(0)
    gen = Generator(ModelConfig(resolution=8, z_dim=4, g_widths=(4,)))
    out = augment.augment(gen(torch.randn(4, 4)), transforms, shift=1, cutout=2,
                          generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    grads = [p.grad for p in gen.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_unknown_augmentation_and_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        TrainConfig(data="x", augment="translation,rotate").validate()
    with pytest.raises(ConfigError, match="augment_cutout"):
        TrainConfig(data="x", augment="cutout", augment_cutout=32).validate()
    with pytest.raises(ConfigError, match="r1_gamma"):
        TrainConfig(data="x", r1_gamma=-1).validate()


def test_r1_is_the_squared_input_gradient_and_trains_d():
    """For D(x) = <w, x>, R1 = |w|^2 whatever x, and its gradient reaches w."""
    disc = nn.Sequential(nn.Flatten(), nn.Linear(8 ** 3, 1, bias=False))
    x = torch.rand(5, 1, 8, 8, 8)
    penalty = r1_penalty(disc, x)
    w = disc[1].weight
    assert torch.allclose(penalty, w.pow(2).sum(), rtol=1e-5)
    penalty.backward()
    assert torch.allclose(w.grad, 2 * w.detach(), rtol=1e-5)


def test_reconstruction_loss_weights_occupied_voxels():
    target = torch.tensor([1.0, 0.0])
    logits = torch.zeros(2)
    plain = reconstruction_loss(logits, target, 1.0)
    weighted = reconstruction_loss(logits, target, 3.0)
    assert torch.isclose(weighted, plain * 2)  # (3 + 1) / 2 vs (1 + 1) / 2, same BCE per voxel


def test_lr_schedule_follows_time_when_a_budget_is_set():
    cfg = TrainConfig(data="x", steps=1000, max_minutes=10, lr_decay_start=0.5, lr_decay_final=0.1)
    assert lr_factor(cfg, 10, elapsed=60) == 1.0
    assert lr_factor(cfg, 10, elapsed=600) == pytest.approx(0.1)
    assert lr_factor(cfg, 750, elapsed=0) == pytest.approx(0.55)


def test_joint_run_trains_saves_and_exports_the_shape_encoder(tmp_path):
    data = make_chairs(tmp_path / "data")
    out = tmp_path / "run"
    assert train_main(["gan", "--data", str(data), "--out", str(out), "--steps", "4", *TINY, *JOINT]) == 0
    rows = (out / "eval.csv").read_text().splitlines()
    assert rows[0].endswith("encoder_iou") and rows[-1].split(",")[-1] != ""
    assert "recon" in (out / "metrics.csv").read_text().splitlines()[0]
    pipe = ChairPipeline.from_pretrained(out / "checkpoint")
    chairs = (pipe.generate(pipe.sample_latents(3)) >= 0.5).astype("float32")
    codes = pipe.encode_shape(chairs)
    assert codes.shape == (3, pipe.z_dim) and codes.dtype == torch.float32
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["encoder"] is not None and state["ema_encoder"] is not None


def test_joint_run_resumes_exactly(tmp_path):
    data = make_chairs(tmp_path / "data")
    common = ["--data", str(data), *TINY, *JOINT, "--ckpt-every-min", "0"]
    assert train_main(["gan", "--out", str(tmp_path / "a"), "--steps", "6", *common]) == 0
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "3", *common]) == 0
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "6", "--resume", *common]) == 0
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    for key in ("generator", "discriminator", "encoder", "ema_encoder"):
        for name, tensor in a[key].items():
            assert torch.allclose(tensor.float(), b[key][name].float(), atol=1e-6), (key, name)


def test_time_budget_stops_the_run(tmp_path):
    data = make_chairs(tmp_path / "data")
    out = tmp_path / "run"
    assert train_main(["gan", "--data", str(data), "--out", str(out), "--steps", "100000", "--max-minutes", "0.02",
                       *TINY]) == 0
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] < 100000 and state["elapsed"] >= 0.02 * 60
    assert json.loads((out / "config.json").read_text())["max_minutes"] == 0.02


def test_validity_rule_lets_a_speck_pass_and_fails_a_chair_in_pieces():
    import numpy as np

    from train.metrics import largest_piece_share, mostly_one_piece

    whole = np.zeros((4, 32, 32, 32), np.float32)
    whole[:, 8:20, 8:20, 4:20] = 1.0  # 2,304 voxels, 7 % occupancy
    whole[1, 30, 30, 30] = 1.0  # one floating speck: 99.96 % in the largest piece
    whole[2, 8:20, 8:20, 12] = 0.0  # cut in two: 8 and 7 of the 15 remaining layers
    whole[3] = 0.0  # empty
    whole[3, 0, 0, 0] = whole[3, 1, 1, 1] = 1.0  # two voxels touching at a corner: one 26-connected piece
    shares = largest_piece_share(whole)
    assert shares[0] == 1.0 and shares[1] == pytest.approx(2304 / 2305) and shares[2] == pytest.approx(8 / 15)
    assert shares[3] == 1.0  # 26-connectivity: corners join
    assert mostly_one_piece(whole).tolist() == [True, True, False, False]  # the last is below 0.5 % occupancy
