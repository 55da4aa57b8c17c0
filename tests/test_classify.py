"""`python -m train classify` (issue 6): D features + linear SVM on ModelNet10, at tiny scale.

A synthetic .npz of three box-shaped classes at 30^3 (the layout of modelnet10_vox30.npz)
and a tiny random 32^3 pipeline; the real file is only read where it exists.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import tiny_config
from train import classify
from train.__main__ import main as train_main
from vaegan import ChairPipeline, ModelConfig
from vaegan.models import Discriminator, Generator


def make_npz(path: Path, n_train: int = 12, n_test: int = 6, seed: int = 0, drop=()) -> Path:
    """Three classes of boxes in a 30^3 grid, jittered: 0 flat slab, 1 tall pillar, 2 cube."""
    rng = np.random.default_rng(seed)

    def shape(label: int) -> np.ndarray:
        g = np.zeros((30, 30, 30), np.int32)
        a, b = rng.integers(3, 6, size=2)
        if label == 0:
            h = rng.integers(8, 14)
            g[a:a + 22, b:b + 22, h:h + 3] = 1
        elif label == 1:
            g[12 + a - 4:16 + a - 4, 12 + b - 4:16 + b - 4, 3:27] = 1
        else:
            s = rng.integers(10, 14)
            g[a + 5:a + 5 + s, b + 5:b + 5 + s, 3:3 + s] = 1
        return g

    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.repeat(np.arange(3), n)
        arrays[f"X_{split}"] = np.stack([shape(int(l)) for l in y])
        arrays[f"y_{split}"] = y.astype(np.int64)
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def tiny_checkpoint(folder: Path, resolution: int = 32, discriminator: bool = True) -> Path:
    pipe = ChairPipeline.from_config(tiny_config(resolution), seed=0)
    if not discriminator:
        pipe = ChairPipeline(pipe.generator)
    pipe.save_pretrained(folder)
    return folder


def test_end_to_end_writes_json_and_pngs(tmp_path, capsys):
    npz = make_npz(tmp_path / "tiny.npz")
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "out"
    assert train_main(["classify", "--data", str(npz), "--checkpoint", str(ckpt), "--raw", "--random-d",
                       "--c-grid", "0.01", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "raw voxels 32^3" in printed and "3D-GAN paper (reported)" in printed and "0.910" in printed
    result = json.loads((out / "results.json").read_text())
    names = [s["name"] for s in result["sets"]]
    assert names == ["ckpt", "random D (4-4-8)", "raw voxels 32^3"]
    for s in result["sets"]:
        assert isinstance(s["accuracy"], float) and 0.0 <= s["accuracy"] <= 1.0
        assert 0.0 <= s["balanced_accuracy"] <= 1.0 and s["C"] in (0.01, 1.0)
        assert np.array(s["confusion"]).shape == (3, 3) and np.sum(s["confusion"]) == 18
        assert set(s["per_class_accuracy"]) == {"class 0", "class 1", "class 2"}
        png = Path(s["confusion_png"])
        assert png.is_file() and png.parent == out
        with Image.open(png) as im:
            assert im.format == "PNG" and im.width > 150 and im.height > 150
    d_set = result["sets"][0]
    assert d_set["layers"] == [1, 2, 3] and d_set["map_sizes"] == [16, 8, 4]
    assert d_set["n_features"] == 8 * (4 + 4 + 8)  # tiny D widths, each block pooled to 2^3
    raw = result["sets"][2]
    assert raw["n_features"] == 32 ** 3 and raw["standardized"] is False
    assert raw["accuracy"] >= 0.9  # the synthetic classes are linearly separable in voxel space
    assert result["paper"]["accuracy"] == 0.91
    for s in result["sets"]:
        lo, hi = s["accuracy_ci95"]
        assert lo <= s["accuracy"] <= hi and len(s["predictions"]) == 18
    assert [(t["a"], t["b"]) for t in result["paired_tests"]] == [
        ("ckpt", "random D (4-4-8)"), ("ckpt", "raw voxels 32^3"), ("random D (4-4-8)", "raw voxels 32^3")]
    assert all(0.0 <= t["p_value"] <= 1.0 for t in result["paired_tests"])
    assert result["settings"]["n_train"] == 36 and result["settings"]["n_test"] == 18


def test_layers_pool_and_names(tmp_path):
    npz = make_npz(tmp_path / "tiny.npz")
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "out"
    assert train_main(["classify", "--data", str(npz), "--checkpoints", str(ckpt), "--names", "late blocks",
                       "--layers", "2", "3", "--pool", "1", "--c-grid", "0.1", "--no-paper", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    (s,) = result["sets"]
    assert s["name"] == "late blocks" and s["layers"] == [2, 3] and s["n_features"] == 4 + 8
    assert (out / "confusion_late-blocks.png").is_file() and result["paper"] is None


def test_wilson_and_mcnemar():
    lo, hi = classify.wilson_interval(80, 100)
    assert 0.71 < lo < 0.72 and 0.86 < hi < 0.87
    y = np.zeros(20, int)
    t = classify.mcnemar(y, np.zeros(20, int), np.r_[np.ones(10, int), np.zeros(10, int)])
    assert t["only_a_right"] == 10 and t["only_b_right"] == 0 and t["p_value"] < 0.01


def test_features_are_max_pooled_block_activations():
    torch.manual_seed(0)
    pipe = ChairPipeline.from_config(tiny_config(32), seed=0)
    disc = pipe.discriminator
    grids = (np.random.default_rng(0).random((5, 32, 32, 32)) > 0.7).astype(np.uint8)
    feats = classify.discriminator_features(disc, grids, [1, 2, 3], pool=2, batch_size=2)
    with torch.inference_mode():
        _, blocks = disc(torch.from_numpy(grids).float()[:, None], return_features=True)
    # Block 1 is 16^3: pooled to 2^3, each output is the max over an 8^3 octant.
    b1 = blocks[0].numpy()  # (5, 4, 16, 16, 16)
    assert np.allclose(feats[:, 0], b1[:, 0, :8, :8, :8].max(axis=(1, 2, 3)), atol=1e-5)
    expected = torch.cat([F.adaptive_max_pool3d(b, 2).flatten(1) for b in blocks], 1).numpy()
    assert feats.shape == (5, 128) and feats.dtype == np.float32
    assert np.allclose(feats, expected, atol=1e-5)
    assert classify.resolve_layers(None, 3) == [1, 2, 3] and classify.resolve_layers(None, 4) == [2, 3, 4]
    with pytest.raises(ValueError, match="out of range"):
        classify.resolve_layers([0, 4], 3)


def test_bad_npz_is_a_clear_error(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    npz = make_npz(tmp_path / "bad.npz", drop=("X_test", "y_test"))
    assert train_main(["classify", "--data", str(npz), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "lacks array(s) ['X_test', 'y_test']" in err and "X_train, y_train, X_test, y_test" in err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert train_main(["classify", "--data", str(tmp_path / "junk.npz"), "--raw", "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert train_main(["classify", "--data", str(tmp_path), "--raw", "--out", str(tmp_path / "o")]) == 2
    assert "must be an .npz" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_wrong_resolution_or_missing_discriminator_is_a_clear_error(tmp_path, capsys):
    npz = make_npz(tmp_path / "tiny.npz")
    small = tiny_checkpoint(tmp_path / "r16", resolution=16)
    assert train_main(["classify", "--data", str(npz), "--checkpoint", str(small), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint resolution 16 does not match" in err and "Traceback" not in err
    no_d = tiny_checkpoint(tmp_path / "gen_only", discriminator=False)
    assert train_main(["classify", "--data", str(npz), "--checkpoint", str(no_d), "--out", str(tmp_path / "o")]) == 2
    assert "has no discriminator" in capsys.readouterr().err
    assert train_main(["classify", "--data", str(npz), "--out", str(tmp_path / "o")]) == 2
    assert "nothing to classify" in capsys.readouterr().err


def test_64_checkpoint_loads_the_data_at_64(tmp_path):
    """A 64^3 D sees each ModelNet voxel as a 2^3 block; default blocks are its last three."""
    npz = make_npz(tmp_path / "tiny.npz", n_train=4, n_test=2)
    cfg = ModelConfig(resolution=64, z_dim=8, g_widths=(4, 4, 4, 4), image_size=32, e_width=0.25)
    torch.manual_seed(0)
    ChairPipeline(Generator(cfg), Discriminator(cfg)).save_pretrained(tmp_path / "r64")
    out = tmp_path / "out"
    assert train_main(["classify", "--data", str(npz), "--checkpoint", str(tmp_path / "r64"), "--c-grid", "1",
                       "--out", str(out)]) == 0
    (s,) = json.loads((out / "results.json").read_text())["sets"]
    assert s["resolution"] == 64 and s["layers"] == [2, 3, 4] and s["map_sizes"] == [16, 8, 4]
    assert s["n_features"] == 8 * (4 + 4 + 4)


def test_real_modelnet10_npz_layout(data_dir):
    data = classify.load_npz_splits(data_dir / "modelnet10_vox30.npz", 32)
    assert data["x_train"].shape == (3991, 32, 32, 32) and data["x_test"].shape == (908, 32, 32, 32)
    assert data["class_names"][2] == "chair" and len(data["class_names"]) == 10
    assert np.bincount(data["y_test"]).tolist() == [50, 100, 100, 86, 86, 100, 86, 100, 100, 100]
