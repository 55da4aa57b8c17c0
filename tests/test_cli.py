"""`python -m vaegan`: the batch CLI, and the checkpoint-or-fallback rule the app shares."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import tiny_config
from vaegan import ChairPipeline, cli, latents, voxels
from vaegan.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(monkeypatch):
    """Make the CLI load a tiny random pipeline whatever --checkpoint says."""
    pipe = ChairPipeline.from_config(tiny_config(), seed=0)
    monkeypatch.setattr(cli, "load_pipeline", lambda checkpoint, fallback=True: (pipe, ""))
    monkeypatch.setattr(cli, "random_pipeline", lambda seed=0: pipe)
    return pipe


def test_sample_writes_every_format(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["sample", "--n", "3", "--seed", "5", "--format", "glb,obj,stl,ply,binvox,vox,npy,json",
                     "--level", "0.45", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 * 8 and "seed5_000.glb" in names and "seed5_002.json" in names
    z = np.asarray(tiny.sample_latents(3, seed=5))
    back, meta = latents.load_latent(out / "seed5_001.json", tiny.z_dim)
    np.testing.assert_array_equal(back, z[1])
    assert meta["seed"] == 5 and meta["level"] == 0.45 and meta["source"] == "seed5_001"
    vox = tiny.generate(z[1])[0]
    np.testing.assert_array_equal(np.load(out / "seed5_001.npy"), vox)
    np.testing.assert_array_equal(voxels.read_binvox(out / "seed5_001.binvox"), vox >= 0.45)
    assert len(trimesh.load(out / "seed5_001.stl", force="mesh").faces) == len(tiny.mesh(vox, 0.45).faces)
    assert "3 chair(s) written" in capsys.readouterr().err


def test_latent_round_trip_and_interpolate(tiny, tmp_path):
    assert cli.main(["sample", "--n", "2", "--format", "json", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    files = sorted(str(p) for p in (tmp_path / "a").glob("*.json"))
    assert cli.main(["latent", *files, "--format", "npy", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    z = np.asarray(tiny.sample_latents(2, seed=0))
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "seed0_000.npy"), tiny.generate(z[0])[0])
    assert cli.main(["interpolate", "--from-seed", "1", "--to-seed", "2", "--steps", "4", "--format", "json",
                     "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert len(list((tmp_path / "c").glob("interp1-2_*.json"))) == 4


def test_photo_command(tiny, tmp_path):
    from PIL import Image

    photo = tmp_path / "chair.png"
    Image.new("RGB", (40, 40), (120, 80, 40)).save(photo)
    assert cli.main(["photo", str(photo), "--format", "json", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    z, _ = latents.load_latent(tmp_path / "o" / "chair.json", tiny.z_dim)
    np.testing.assert_allclose(z, np.asarray(tiny.encode(str(photo)))[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["sample", "--format", "fbx"], "unknown format fbx"),
    (["sample", "--n", "0"], "n must be an integer from 1 to 4096"),
    (["sample", "--truncation", "9"], "truncation must be"),
    (["sample", "--level", "1.5"], "iso-level must be"),
    (["latent", "missing.json"], "cannot read missing.json"),
    (["photo", "missing.png"], "cannot open missing.png"),
])
def test_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys, argv, message):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_empty_chairs_are_skipped_not_fatal(tiny, tmp_path, capsys):
    assert cli.main(["sample", "--n", "2", "--level", "0.999", "--format", "glb", "--out", str(tmp_path)]) == 1
    assert "skipped seed0_000: nothing to mesh" in capsys.readouterr().err


def test_load_pipeline_fallback_only_for_the_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no checkpoints/chair32 here
    monkeypatch.delenv(cli.CHECKPOINT_ENV, raising=False)
    pipe, notice = cli.load_pipeline(None)
    assert "randomly initialised" in notice and pipe.resolution == 32 and pipe.encoder is not None
    with pytest.raises(CheckpointError, match="--random-init"):
        cli.load_pipeline(None, fallback=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        cli.load_pipeline("nowhere/at/all")
    monkeypatch.setenv(cli.CHECKPOINT_ENV, str(tmp_path / "missing"))
    with pytest.raises(CheckpointError):
        cli.load_pipeline(None)  # an explicit env var is never silently replaced


def test_load_pipeline_reads_a_saved_checkpoint(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(cli.CHECKPOINT_ENV, raising=False)
    ChairPipeline.from_config(tiny_config(), seed=1).save_pretrained(tmp_path / "checkpoints" / "chair32")
    pipe, notice = cli.load_pipeline(None)
    assert notice == "" and pipe.resolution == 16


def test_python_dash_m_vaegan_end_to_end(tmp_path):
    """The real entry point, with the real untrained 32^3 fallback network."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "vaegan", "sample", "--random-init", "--n", "2", "--seed", "0",
           "--level", "0.507", "--format", "glb,json", "--out", str(tmp_path)]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0_000.glb", "seed0_000.json",
                                                          "seed0_001.glb", "seed0_001.json"]
    assert json.loads((tmp_path / "seed0_000.json").read_text())["z_dim"] == 200
    run = subprocess.run([sys.executable, "-m", "vaegan", "sample", "--out", str(tmp_path), "--checkpoint",
                          str(tmp_path / "nope")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "does not exist" in run.stderr
