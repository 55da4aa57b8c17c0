"""`python -m train vaegan` and `train.photos` at tiny scale: box chairs, a tiny random GAN
(32^3 grids, 32 px photos), a few steps; dry run, outputs, frozen G, exact resume, joint mode,
clear errors, and renders that do not depend on the worker count."""

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
TINY = ["--views", "2", "--test-views", "1", "--render-workers", "1", "--batch-size", "4", "--val-chairs", "2",
        "--val-images", "4", "--log-every", "1", "--eval-every", "2", "--threads", "1", "--max-minutes", "0"]


def make_chairs(folder: Path, n: int = 10, seed: int = 0) -> Path:
    """A 3D ShapeNets-style folder of box chairs (seat, backrest at high axis 0, four legs),
    n in train/ and 2 in test/."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 2)):
        (folder / split).mkdir(parents=True)
        for i in range(count):
            g = np.zeros((30, 30, 30), np.int8)
            h = rng.integers(8, 14)
            g[3:27, 3:27, h:h + 2] = 1
            g[24:27, 3:27, h:27] = 1
            for x, y in ((3, 3), (3, 24), (24, 3), (24, 24)):
                g[x:x + 3, y:y + 3, 3:h] = 1
            scipy.io.savemat(folder / split / f"chair_{i:09d}_1.mat", {"instance": g})
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data folder, tiny GAN checkpoint, renders folder) shared by the module's tests."""
    root = tmp_path_factory.mktemp("vaegan")
    data = make_chairs(root / "data")
    gen = root / "gan"
    ChairPipeline.from_config(tiny_config(32), seed=0).save_pretrained(gen)
    renders = photo_data.build(photo_data.PhotoSetConfig(data=str(data), out=str(root / "photos"), image_size=32,
                                                         views=2, test_views=1, workers=1), progress=False)
    return data, gen, renders


def args(setup, out, *extra):
    data, gen, renders = setup
    return ["vaegan", "--data", str(data), "--generator", str(gen), "--renders", str(renders), "--out", str(out),
            *TINY, *extra]


def test_dry_run_prints_resolved_config(setup, tmp_path, capsys):
    assert train_main(args(setup, tmp_path / "r", "--dry-run")) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["mode"] == "frozen" and cfg["kl_weight"] == 1.0 and cfg["renders"] == str(setup[2])
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


def test_frozen_training_writes_run_and_keeps_the_generator(setup, tmp_path):
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "3")) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    eval_rows = (out / "eval.csv").read_text().splitlines()
    assert len(eval_rows) == 3 and eval_rows[0].startswith("step,minutes,val_iou")
    pipe = ChairPipeline.from_pretrained(out / "checkpoint")
    assert pipe.encoder is not None and (out / "best" / "encoder" / "model.safetensors").is_file()
    source = ChairPipeline.from_pretrained(setup[1])
    for name, tensor in source.generator.state_dict().items():
        assert torch.equal(tensor, pipe.generator.state_dict()[name]), name  # frozen: G is unchanged
    photo = setup[2] / "sheet.png"
    assert pipe.reconstruct(str(photo)).shape == (32, 32, 32)
    figures = json.loads((out / "checkpoint" / "train_config.json").read_text())["figures"]
    assert figures["step"] == 3 and 0.0 <= figures["val_iou"] <= 1.0


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


def test_joint_mode_changes_the_generator(setup, tmp_path):
    out = tmp_path / "joint"
    assert train_main(args(setup, out, "--steps", "2", "--mode", "joint", "--adv-every", "1")) == 0
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "d_acc" in header
    pipe = ChairPipeline.from_pretrained(out / "checkpoint")
    source = ChairPipeline.from_pretrained(setup[1])
    changed = [n for n, t in source.generator.state_dict().items()
               if t.is_floating_point() and not torch.equal(t, pipe.generator.state_dict()[n])]
    assert changed


def test_clear_errors(setup, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(argv):
        return subprocess.run([sys.executable, "-m", "train", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=env)

    data, gen, renders = setup
    # A generator-only checkpoint cannot give the adversarial term.
    bare = tmp_path / "bare"
    pipe = ChairPipeline.from_config(tiny_config(32))
    pipe.discriminator = None
    pipe.save_pretrained(bare)
    out = run(["vaegan", "--data", str(data), "--generator", str(bare), "--renders", str(renders), "--out",
               str(tmp_path / "x"), *TINY, "--steps", "1"])
    assert out.returncode == 2 and "no discriminator" in out.stderr and "Traceback" not in out.stderr
    # Renders made with other settings are neither reused nor overwritten.
    out = run(args(setup, tmp_path / "y", "--steps", "1", "--views", "3"))
    assert out.returncode == 2 and "was built with views=2 (asked 3)" in out.stderr
    # --resume of a missing run, and of a run with another objective.
    out = run(args(setup, tmp_path / "none", "--resume", "--steps", "1"))
    assert out.returncode == 2 and "no run to continue" in out.stderr
    assert train_main(args(setup, tmp_path / "z", "--steps", "1", "--ckpt-every-min", "0")) == 0
    out = run(args(setup, tmp_path / "z", "--resume", "--steps", "2", "--kl-weight", "0.5"))
    assert out.returncode == 2 and "was trained with kl_weight=1.0" in out.stderr
    out = run(args(setup, tmp_path / "w", "--mode", "both"))
    assert out.returncode == 2 and "mode must be one of" in out.stderr


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


def test_latent_term_pulls_the_posterior_means_to_the_true_codes(setup, generated, tmp_path):
    out = tmp_path / "run"
    assert train_main(args(setup, out, "--steps", "12", "--generated", str(generated), "--latent-weight", "1000",
                           "--lr", "3e-3", "--adv-weight", "0")) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("latent")
    first, last = float(rows[1].split(",")[column]), float(rows[-1].split(",")[column])
    assert np.isfinite(first) and last < 0.7 * first
    # exact resume with two data sources
    common = ["--ckpt-every-min", "0", "--generated", str(generated)]
    assert train_main(args(setup, tmp_path / "a", "--steps", "4", *common)) == 0
    assert train_main(args(setup, tmp_path / "b", "--steps", "2", *common)) == 0
    assert train_main(args(setup, tmp_path / "b", "--steps", "4", "--resume", *common)) == 0
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    for name, tensor in a["encoder"].items():
        assert torch.allclose(tensor.float(), b["encoder"][name].float(), atol=1e-6), name


def test_generated_renders_errors(setup, generated, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(argv):
        return subprocess.run([sys.executable, "-m", "train", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env=env)

    out = run(args(setup, tmp_path / "x", "--generated", str(setup[2]), "--steps", "1"))
    assert out.returncode == 2 and "without latent codes" in out.stderr and "Traceback" not in out.stderr
    out = run(args(setup, tmp_path / "y", "--generated", str(generated), "--mode", "joint"))
    assert out.returncode == 2 and "needs --mode frozen" in out.stderr, out.stderr[-2000:]
    with pytest.raises(Exception, match="either --data"):
        photo_data.build(photo_data.PhotoSetConfig(data=str(setup[0]), generator=str(setup[1]), count=2,
                                                   out=str(tmp_path / "z")))


def test_known_z_pretraining_then_vaegan_from_it(setup, generated, tmp_path, capsys):
    """known-z saves a pipeline whose encoder puts mu on the shell; vaegan --init-encoder starts
    from exactly that encoder and keeps its e_mu_radius; contradicting flags are refused."""
    from train import known_z

    pre = tmp_path / "pre"
    assert train_main(["known-z", "--renders", str(generated), "--checkpoint", str(setup[1]), "--minutes", "0.02",
                       "--every", "1", "--held-out", "2", "--threads", "1", "--mu-radius", "2.5",
                       "--real", str(setup[2]), "--out", str(pre), "--augment", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert lines and "held-out IoU" in lines[0] and "ModelNet test renders IoU" in lines[0]
    assert json.loads((pre / "known_z.json").read_text())["step"] >= 1
    start = ChairPipeline.from_pretrained(pre)
    assert start.encoder.config.e_mu_radius == 2.5
    with torch.no_grad():
        mu, _ = start.encoder(torch.rand(3, 3, 32, 32))
    assert torch.allclose(mu.norm(dim=1), torch.full((3,), 2.5))
    assert torch.allclose(known_z.on_shell(torch.tensor([[3.0, 4.0]])).norm(), torch.tensor(2 ** 0.5))
    pictures = torch.rand(4, 3, 32, 32)
    seen = known_z.augment(pictures, 3, np.random.default_rng(0))
    assert seen.shape == pictures.shape and 0 <= seen.min() and seen.max() <= 1
    assert not torch.equal(seen, pictures)
    assert torch.equal(seen, known_z.augment(pictures, 3, np.random.default_rng(0)))

    from train.vaegan import VaeganConfig, initial_encoder

    cfg = VaeganConfig(data="x", init_encoder=str(pre))
    encoder = initial_encoder(cfg, start.config)
    assert encoder.training and all(p.requires_grad for p in encoder.parameters())
    for a, b in zip(encoder.state_dict().values(), start.encoder.state_dict().values()):
        assert torch.equal(a, b)
    assert train_main(args(setup, tmp_path / "run", "--init-encoder", str(pre), "--steps", "2")) == 0
    tuned = ChairPipeline.from_pretrained(tmp_path / "run" / "checkpoint")
    assert tuned.encoder.config.e_mu_radius == 2.5
    with pytest.raises(Exception, match="contradicts"):
        initial_encoder(VaeganConfig(data="x", init_encoder=str(pre), mu_radius=3.0), start.config)
    bare = ChairPipeline(start.generator)
    bare.save_pretrained(tmp_path / "bare")
    with pytest.raises(Exception, match="no encoder"):
        initial_encoder(VaeganConfig(data="x", init_encoder=str(tmp_path / "bare")), start.config)
    assert initial_encoder(VaeganConfig(data="x", mu_radius=4.0), start.config).config.e_mu_radius == 4.0


def test_bank_encoder_training_and_its_targets(setup, tmp_path, capsys):
    """bank-encoder: soft targets peak at the bank chair that matches, the loss is the soft
    cross-entropy, the saved pipeline carries its bank (the seeded prior samples) and trunk start,
    reconstruct returns its mixture; bad flags are one-line errors."""
    from train import bank_encoder
    from vaegan import novelty

    data, gen, renders = setup
    pipe = ChairPipeline.from_pretrained(gen)
    z = pipe.sample_latents(5, seed=0)
    shapes = pipe.generate(z) >= 0.5
    q = bank_encoder.soft_targets(shapes[[3, 1]], novelty.pack(shapes), sharpness=50.0)
    assert q.shape == (2, 5) and np.allclose(q.sum(1), 1) and list(q.argmax(1)) == [3, 1]
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([[0.5, 0.5, 0.0]])
    expected = -(0.5 * logits.log_softmax(1)[0, 0] + 0.5 * logits.log_softmax(1)[0, 1])
    assert torch.isclose(bank_encoder.bank_loss(logits, target), expected)

    out = tmp_path / "bank"
    assert train_main(["bank-encoder", "--renders", str(renders), "--checkpoint", str(gen), "--init-encoder", str(gen),
                       "--bank", "16", "--top", "4", "--minutes", "0.05", "--every", "2", "--val-chairs", "2",
                       "--val-images", "4", "--threads", "1", "--augment", "2", "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert lines and "held-out IoU" in lines[0] and "AP" in lines[0]
    assert json.loads((out / "bank_encoder.json").read_text())["step"] >= 2
    trained = ChairPipeline.from_pretrained(out)
    assert (trained.encoder.config.e_bank_size, trained.encoder.config.e_bank_top) == (16, 4)
    assert torch.equal(trained.encoder.bank, pipe.sample_latents(16, seed=0))
    start = ChairPipeline.from_pretrained(gen).encoder
    assert any(not torch.equal(a, b) for a, b in zip(trained.encoder.net.state_dict().values(),
                                                      start.net.state_dict().values()))  # the trunk trained
    picture = photo_data.PhotoSet(renders, "train").pictures(np.array([0]))
    mode, occupancy = trained.photo_predictive(picture)
    assert any(torch.equal(mode[0], row) for row in trained.encoder.bank)
    assert occupancy.shape == (1, 32, 32, 32) and 0 <= occupancy.min() and occupancy.max() <= 1
    # the Gaussian-only commands refuse it clearly
    from train.photo_spread import spread_table
    from train.vaegan import VaeganConfig, initial_encoder

    with pytest.raises(Exception, match="no spread to fit"):
        spread_table(trained, photo_data.PhotoSet(renders, "train"), np.array([0]))
    with pytest.raises(Exception, match="bank encoder"):
        initial_encoder(VaeganConfig(data="x", init_encoder=str(out)), pipe.config)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([sys.executable, "-m", "train", "bank-encoder", "--renders", str(renders), "--checkpoint",
                          str(gen), "--bank", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and "--bank must be" in bad.stderr and "Traceback" not in bad.stderr


def test_voxel_probe_reports_held_out_iou(setup, capsys):
    """voxel-probe (the diagnostic without the generator) trains, prints held-out IoU in [0, 1]
    for the same val split as vaegan, and refuses a bad budget in one line."""
    from train import voxel_probe

    data, gen, renders = setup
    assert train_main(["voxel-probe", "--renders", str(renders), "--init-encoder", str(gen), "--minutes", "0.03",
                       "--every", "2", "--val-chairs", "2", "--val-images", "4", "--threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    final = [line for line in out if line.startswith("final")]
    assert final and 0.0 <= float(final[0].rsplit(" ", 1)[1]) <= 1.0
    assert torch.Size([3, 1, 32, 32, 32]) == voxel_probe.VoxelDecoder(16, 32)(torch.rand(3, 16)).shape
    assert train_main(["voxel-probe", "--renders", str(renders), "--minutes", "0"]) == 2
