"""The recipe tools of `train gan` on tiny seeded models: the reconstruction loss, the time
budget and the jointly trained shape encoder (saved, resumed exactly, exported). R1 and
DiffAugment were tried and retired (model card, "chair32 v2 recipe study")."""

import json

import pytest
import torch

from train.__main__ import main as train_main
from train.gan import TrainConfig, lr_factor, reconstruction_loss
from vaegan import ChairPipeline
from vaegan.errors import ConfigError

from test_train_gan import TINY, make_chairs

JOINT = ["--recon-weight", "1", "--code-noise", "0.2"]


def test_bad_joint_settings_are_config_errors():
    with pytest.raises(ConfigError, match="recon_weight"):
        TrainConfig(data="x", recon_weight=-1).validate()
    with pytest.raises(ConfigError, match="pos_weight"):
        TrainConfig(data="x", pos_weight=0).validate()


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


def test_init_fine_tunes_from_a_pipeline_folder(tmp_path):
    data = make_chairs(tmp_path / "data")
    common = ["--data", str(data), *TINY, *JOINT]
    assert train_main(["gan", "--out", str(tmp_path / "a"), "--steps", "2", *common]) == 0
    start = ChairPipeline.from_pretrained(tmp_path / "a" / "checkpoint")
    # one step with zero learning rates: the run holds exactly the weights it started from
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "1", "--g-lr", "0", "--d-lr", "0",
                       "--e-lr", "0", "--init", str(tmp_path / "a" / "checkpoint"), *common]) == 0
    state = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    for key, model in (("generator", start.generator), ("discriminator", start.discriminator),
                       ("encoder", start.shape_encoder)):
        for name, tensor in model.named_parameters():
            assert torch.equal(state[key][name], tensor.detach()), (key, name)
    assert train_main(["gan", "--out", str(tmp_path / "c"), "--steps", "2",
                       "--init", str(tmp_path / "a" / "checkpoint"), *common]) == 0
    tuned = ChairPipeline.from_pretrained(tmp_path / "c" / "checkpoint")
    assert tuned.shape_encoder is not None and tuned.discriminator is not None


def test_init_refuses_another_architecture(tmp_path, capsys):
    data = make_chairs(tmp_path / "data")
    assert train_main(["gan", "--out", str(tmp_path / "a"), "--steps", "1", "--data", str(data), *TINY]) == 0
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "1", "--data", str(data), *TINY,
                       "--z-dim", "7", "--init", str(tmp_path / "a" / "checkpoint")]) == 2
    assert "has z_dim=8, this run 7" in capsys.readouterr().err


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
