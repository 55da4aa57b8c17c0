"""The shape encoder: `ChairPipeline.encode_shape` (shapes, dtype, bad input), its checkpoint
folder, `python -m train shape-encoder` on a tiny dataset, and the shipped encoder (slow)."""

import json

import numpy as np
import pytest
import torch

from conftest import SHIPPED, tiny_config
from test_train_gan import make_chairs
from train.__main__ import main as train_main
from vaegan import ChairPipeline, projection
from vaegan.errors import CheckpointError, VoxelError
from vaegan.models import ShapeEncoder
from vaegan.pipeline import MAX_SHAPES



def box(resolution: int = 16) -> np.ndarray:
    grid = np.zeros((resolution,) * 3, np.float32)
    grid[4:12, 4:12, 6:8] = 1.0  # a seat
    return grid


def test_encode_shape_takes_one_grid_or_a_stack(tiny_pipe):
    one = tiny_pipe.encode_shape(box())
    assert one.shape == (1, tiny_pipe.z_dim) and one.dtype == torch.float32
    torch.testing.assert_close(one.norm(dim=1), torch.tensor([tiny_pipe.z_dim ** 0.5]))  # the prior's shell
    stack = tiny_pipe.encode_shape(np.stack([box(), box() * 0.9, box() > 0.5]))  # float and bool
    assert stack.shape == (3, tiny_pipe.z_dim)
    torch.testing.assert_close(stack[0], one[0])  # one pass per grid, eval-mode BatchNorm
    assert tiny_pipe.encode_shape(torch.from_numpy(box())).shape == (1, tiny_pipe.z_dim)
    assert tiny_pipe.generate(stack).shape == (3, 16, 16, 16)


@pytest.mark.parametrize("grids, reason", [
    (np.zeros((32, 32, 32)), r"must have shape \(16, 16, 16\).*got \(32, 32, 32\)"),
    (np.zeros((16, 16)), r"got \(16, 16\)"),
    (np.zeros((2, 16, 16, 8)), r"got \(2, 16, 16, 8\)"),
    (np.zeros((0, 16, 16, 16)), r"got \(0, 16, 16, 16\)"),
    (np.where(box() > 0, np.nan, 0.0), "NaN"),
    (np.zeros((16, 16, 16)), "shape grid 0 is empty"),
    (np.stack([box(), np.zeros((16, 16, 16))]), "shape grid 1 is empty"),
    (box() * 3, r"\[0, 1\]"),
    (np.array(["a"] * 16 ** 3).reshape(16, 16, 16), "dtype"),
])
def test_encode_shape_rejects_bad_grids_with_a_reason(tiny_pipe, grids, reason):
    with pytest.raises(VoxelError, match=reason):
        tiny_pipe.encode_shape(grids)


def test_encode_shape_refuses_more_than_the_limit_before_any_work(tiny_pipe):
    grids = np.broadcast_to(box() > 0, (MAX_SHAPES + 1, 16, 16, 16))  # no copy: the check must come first
    with pytest.raises(VoxelError, match=f"{MAX_SHAPES + 1:,} shape grids at once: at most {MAX_SHAPES:,}"):
        tiny_pipe.encode_shape(grids)


def test_encode_shape_needs_a_shape_encoder(tiny_pipe):
    bare = ChairPipeline(tiny_pipe.generator, tiny_pipe.discriminator)
    with pytest.raises(CheckpointError, match="no shape encoder"):
        bare.encode_shape(box())


def test_shape_encoder_round_trips_through_the_checkpoint_folder(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "shape_encoder" / "model.safetensors").is_file()
    loaded = ChairPipeline.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.encode_shape(box()), tiny_pipe.encode_shape(box()))


def test_projection_refines_from_given_codes(tiny_pipe):
    grids = np.stack([box(), box()])
    codes = tiny_pipe.encode_shape(grids)
    result = projection.project(tiny_pipe, grids, projection.ProjectionConfig(steps=4, eval_every=2), init=codes)
    assert result.z.shape == (2, tiny_pipe.z_dim)
    assert np.all(result.iou >= result.start_iou)  # the start is one of the kept candidates
    with pytest.raises(ValueError, match="init has 1 codes for 2 targets"):
        projection.project(tiny_pipe, grids, init=codes[:1])


def test_train_shape_encoder_on_tiny_chairs(tmp_path, capsys):
    data = make_chairs(tmp_path / "data", n=8)
    (data / "test").mkdir()
    for path in sorted((data / "train").glob("*_1.mat"))[:2]:
        (data / "test" / path.name).write_bytes(path.read_bytes())
    ChairPipeline.from_config(tiny_config(32), seed=0).save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "run"
    args = ["shape-encoder", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(data), "--out", str(out),
            "--steps", "3", "--batch-real", "4", "--batch-generated", "4", "--pool", "8", "--val-chairs", "2",
            "--eval-every", "2", "--threads", "1"]
    assert train_main([*args, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_real"] == 4
    assert train_main(args) == 0
    report = json.loads((out / "shape_encoder.json").read_text())
    assert report["steps"] == 3 and report["test_chairs"] == 2
    assert 0.0 <= report["test_one_pass_iou"] <= report["test_refined_iou"] <= 1.0
    pipe = ChairPipeline.from_pretrained(tmp_path / "ckpt")
    pipe.shape_encoder = ShapeEncoder.from_pretrained(out / "shape_encoder")  # the trained one
    assert pipe.encode_shape(np.ones((32, 32, 32))).shape == (1, 8)
    # reconstruction alone, no generated chairs
    assert train_main([*args, "--out", str(tmp_path / "recon"), "--batch-generated", "0", "--pool", "0"]) == 0
    # --resume continues the same run (later flags win) and refuses another generator
    assert train_main([*args, "--steps", "4", "--resume"]) == 0
    assert json.loads((out / "shape_encoder.json").read_text())["steps"] == 4
    assert train_main(["shape-encoder", "--checkpoint", str(tmp_path), "--data", str(data), "--out", str(out),
                       "--batch-real", "4", "--batch-generated", "4", "--resume"]) == 2
    # --init fine-tunes the checkpoint's own shape encoder; without one it is refused
    ChairPipeline(pipe.generator, pipe.discriminator).save_pretrained(tmp_path / "bare")
    capsys.readouterr()
    assert train_main([*args, "--checkpoint", str(tmp_path / "bare"), "--out", str(tmp_path / "init"), "--init"]) == 2
    assert "--init needs a shape encoder" in capsys.readouterr().err
    pipe.save_pretrained(tmp_path / "ckpt")  # now with the trained encoder
    assert train_main([*args, "--out", str(tmp_path / "init"), "--init", "--steps", "1", "--lr", "1e-12"]) == 0
    tuned = ShapeEncoder.from_pretrained(tmp_path / "init" / "shape_encoder")
    weights = [k for k, v in tuned.state_dict().items() if v.is_floating_point() and "running" not in k]
    assert all(torch.allclose(tuned.state_dict()[k], pipe.shape_encoder.state_dict()[k], atol=1e-6) for k in weights)


def test_part_mix_takes_a_partner_beyond_one_cut():
    from train.common import part_mix

    grids = torch.stack([torch.full((32, 32, 32), float(i)) for i in range(6)])  # chair i is all i
    rng = torch.Generator().manual_seed(0)
    assert torch.equal(part_mix(grids, 0.0, rng), grids)
    cuts = set()
    for _ in range(8):
        out = part_mix(grids, 1.0, rng)
        for i, chair in enumerate(out):
            values = chair.unique().tolist()
            assert i in values and len(values) <= 2  # its own part and at most one partner's
            if len(values) == 1:
                continue  # its partner was itself
            own = chair == i
            # one plane across axis 2 (height) or axis 0 (depth), within 30-70 % of the grid
            for axis, dims in ((2, (0, 1)), (0, (1, 2))):
                whole = own.all(dim=dims)  # (R,) slices that are all its own
                first = int((~whole).nonzero()[0]) if (~whole).any() else 32
                if 10 <= first <= 23 and whole[:first].all() and not own.any(dim=dims)[first:].any():
                    cuts.add(axis)
                    break
            else:
                raise AssertionError(f"chair {i} is not cut by one plane")
    assert cuts == {0, 2}  # both kinds of cut occur


def test_fine_tune_with_part_mixes_keeps_the_weight_average(tmp_path):
    """v3's stage 1b: --init, part-mixed chairs, shifts, and the averaged weights are what is kept."""
    from train.shape_encoder import averaged_encoder

    data = make_chairs(tmp_path / "data", n=8)
    pipe = ChairPipeline.from_config(tiny_config(32), seed=0)
    pipe.shape_encoder = ShapeEncoder(pipe.config)
    pipe.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "run"
    args = ["shape-encoder", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(data), "--out", str(out),
            "--init", "--steps", "4", "--batch-real", "4", "--batch-generated", "0", "--val-chairs", "2",
            "--eval-every", "4", "--threads", "1", "--part-mix", "0.5", "--shift", "1", "--average-every", "2",
            "--lr", "1e-2", "--lr-final", "1"]
    assert train_main(args) == 0
    state = torch.load(out / "state.pt", weights_only=True)
    assert int(state["average"]["n_averaged"]) == 2  # steps 2 and 4
    average = torch.optim.swa_utils.AveragedModel(ShapeEncoder(pipe.config))
    average.load_state_dict(state["average"])
    chairs = torch.from_numpy(np.stack([box(32)] * 4))
    kept = ShapeEncoder.from_pretrained(out / "shape_encoder")
    expected = averaged_encoder(average, chairs, 4)
    last = state["encoder"]
    for name, value in kept.state_dict().items():  # the average's weights, not the last step's
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(value, expected.state_dict()[name])
    assert any(not torch.allclose(kept.state_dict()[k], last[k]) for k in last if "weight" in k)
    assert train_main([*args, "--steps", "6", "--resume"]) == 0  # the average resumes too
    assert int(torch.load(out / "state.pt", weights_only=True)["average"]["n_averaged"]) == 3
    assert train_main([*args, "--part-mix", "1.5"]) == 2


@pytest.mark.slow
def test_shipped_shape_encoder_reconstructs_test_chairs(data_dir):
    assert (SHIPPED / "shape_encoder" / "config.json").is_file(), "checkpoints/chair32 ships a shape encoder"
    from vaegan.datasets import load_chairs

    pipe = ChairPipeline.from_pretrained(SHIPPED)
    chairs, _ = load_chairs(data_dir / "modelnet10_chair_vol30", "test", 32)
    chairs = chairs[:10]
    result = projection.encode(pipe, chairs)  # one pass, then the app's refinement
    # chair32 v3, whose shape encoder is the autoencoder's encoder: one pass >= 0.75 on 10 test
    # chairs (issue 26; v2's separate shape encoder gave 0.58 on them)
    assert result.start_iou.mean() >= 0.75
    assert (result.iou >= result.start_iou).all()


def test_generated_pool_draws_from_the_checkpoints_prior(monkeypatch):
    """The known-code loss must see the chairs users get: `sample_latents` (the learned prior
    where the checkpoint ships one) and what `generate` shows for them, in chunks that respect
    sample_latents' cap."""
    from train import shape_encoder as stage
    from vaegan.models import Generator
    from vaegan.prior import LatentPrior

    config = tiny_config(p_kind="gmm", p_components=2)
    torch.manual_seed(0)
    pipe = ChairPipeline(Generator(config), prior=LatentPrior(config))
    z, chairs = stage.generated_pool(pipe, 5, seed=0)
    torch.testing.assert_close(z, pipe.sample_latents(5, seed=1), rtol=0, atol=0)
    np.testing.assert_array_equal(chairs.numpy(), pipe.generate(z) >= 0.5)
    monkeypatch.setattr(stage, "MAX_SAMPLES", 2)  # 5 codes in chunks of 2, 2 and 1
    z_chunked, _ = stage.generated_pool(pipe, 5, seed=0)
    assert z_chunked.shape == (5, config.z_dim) and not torch.equal(z_chunked[2:], z_chunked[:3])
    torch.testing.assert_close(z_chunked[:2], pipe.sample_latents(2, seed=1), rtol=0, atol=0)
    empty_z, empty = stage.generated_pool(pipe, 0, seed=0)
    assert empty_z.shape == (0, config.z_dim) and empty.shape == (0, 16, 16, 16)
