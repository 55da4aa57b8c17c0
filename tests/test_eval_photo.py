"""`python -m train eval-photo`: the IKEA <-> our frame mapping (worked out from the data), the
per-voxel AP / IoU protocol, and the command on the real IKEA photos with a tiny random
pipeline. Tests that need ../shared/data skip with the reason when it is absent."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from conftest import tiny_config
from train import photos as photo_data
from train.__main__ import main as train_main
from vaegan.datasets import load_chairs
from train.eval_photo import (MEAN_LEVELS, canonical_yaw, frame_to_ikea, ikea_axes, ikea_to_frame, load_ikea,
                              mean_chair, mean_chair_level, score)
from vaegan import ChairPipeline
from vaegan.voxels import fit_to_frame, read_mat


@pytest.fixture(scope="module")
def mean32():
    from conftest import DATA

    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent")
    grids, _ = load_chairs(DATA / "modelnet10_chair_vol30", "train", 32)
    return mean_chair(grids)


def _ikea_truth(data_dir):
    return {vid: read_mat(data_dir / "ikea_chairs_dev" / "voxels" / f"{vid}.mat", key="grid") > 0
            for vid in ("54", "73", "78")}


# ----------------------------------------------------------------------------- mapping
def test_frame_box_maps_onto_the_whole_ikea_grid():
    cube = np.zeros((32, 32, 32), np.float32)
    cube[4:28, 4:28, 4:28] = 1  # our object box: 24 voxels centred
    assert np.allclose(frame_to_ikea(cube), 1.0)
    outside = np.ones((32, 32, 32), np.float32) - cube
    assert np.allclose(frame_to_ikea(outside), 0.0)  # nothing outside the box reaches the IKEA grid
    # A slab in our voxels [4, 10) (5 IKEA cells of 1.2 voxels) -> IKEA cells 0..4 along axis 0.
    slab = np.zeros((32, 32, 32), np.float32)
    slab[4:10] = 1
    mapped = frame_to_ikea(slab)[:, 10, 10]
    assert np.allclose(mapped[:5], 1) and np.allclose(mapped[5:], 0)
    # 64^3 grids use the same box, [8, 56).
    big = np.zeros((64, 64, 64), np.float32)
    big[8:56, 8:56, 8:56] = 1
    assert np.allclose(frame_to_ikea(big), 1.0)


def test_modelnet_chairs_fill_the_ikea_grid_like_ikea_models(data_dir):
    """Our frame (24 of 32, centred) maps onto IKEA's (20 of 20, centred) for real chairs."""
    grids, _ = load_chairs(data_dir / "modelnet10_chair_vol30", "train", 32)
    for grid in grids[:20]:
        occupied = frame_to_ikea(grid) >= 0.5
        boxes = [np.flatnonzero(occupied.any(axis=tuple(j for j in range(3) if j != a))) for a in range(3)]
        spans = [b[-1] - b[0] + 1 for b in boxes]
        assert max(spans) >= 19  # the largest dimension fills the grid
        for b in boxes:
            assert abs((b[0] + b[-1]) - 19) <= 2  # centred on every axis


def test_round_trip_through_our_frame_keeps_the_ground_truth(data_dir, mean32):
    for vid, raw in _ikea_truth(data_dir).items():
        gt = np.rot90(ikea_axes(raw), canonical_yaw(ikea_axes(raw), mean32), axes=(0, 1))
        back = frame_to_ikea(ikea_to_frame(gt, 32))
        ap, iou = score(back, gt, 0.5)
        assert ap >= 0.97 and iou >= 0.9, (vid, ap, iou)


def test_canonical_yaw_puts_every_backrest_toward_high_axis_0(data_dir, mean32):
    yaws = {}
    for vid, raw in _ikea_truth(data_dir).items():
        up2 = ikea_axes(raw)
        assert up2.shape == (20, 20, 20) and up2[:, :, 0].any() and up2[:, :, 19].any()  # up = axis 2, fills it
        k = yaws[vid] = canonical_yaw(up2, mean32)
        gt = np.rot90(up2, k, axes=(0, 1))
        top = gt[:, :, 12:]  # the upper part: mostly backrest
        centroid = (top.sum((1, 2)) * np.arange(20)).sum() / top.sum()
        assert centroid > 11.5, (vid, k, centroid)  # grid centre 9.5: the back is at high axis 0
    assert len(set(yaws.values())) == 3  # the three dev models do face three different ways


def test_canonical_yaw_undoes_a_known_turn(data_dir, mean32):
    """ModelNet test chairs written out like IKEA grids at each of 4 yaws are turned back.

    Measured: 384 of 400 (96%); the misses are 5 chairs that overlap the mean chair better
    turned, at every yaw (a limit of the heuristic, not of the bookkeeping)."""
    grids, _ = load_chairs(data_dir / "modelnet10_chair_vol30", "test", 32)
    hits = 0
    for grid in grids:
        for k_true in range(4):
            turned = np.rot90(fit_to_frame(grid, 20, 1.0), k_true, axes=(0, 1))
            as_ikea = np.moveaxis(turned, 2, 0)  # IKEA: up = axis 0
            hits += (canonical_yaw(ikea_axes(as_ikea), mean32) + k_true) % 4 == 0
    assert hits / (4 * len(grids)) >= 0.95


def test_score_is_sklearn_ap_and_iou():
    rng = np.random.default_rng(0)
    gt = rng.random((20, 20, 20)) < 0.1
    pred = np.clip(gt * 0.6 + rng.random((20, 20, 20)) * 0.5, 0, 1).astype(np.float32)
    ap, iou = score(pred, gt, 0.5)
    assert ap == pytest.approx(average_precision_score(gt.ravel(), pred.ravel()))
    hit = pred >= 0.5
    assert iou == pytest.approx((hit & gt).sum() / (hit | gt).sum())
    assert score(gt.astype(np.float32), gt)[0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    ChairPipeline.from_config(tiny_config(32), seed=0).save_pretrained(folder)
    return folder


def test_eval_photo_on_the_ikea_photos(data_dir, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert train_main(["eval-photo", "--data", str(data_dir / "ikea_chairs_dev"), "--checkpoint",
                       str(tiny_checkpoint), "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "mean chair" in printed and "AP" in printed
    report = json.loads((out / "eval_photo.json").read_text())
    ikea = report["ikea"]
    assert ikea["n"] == 48 and 0 <= ikea["ap"] <= 100 and 0 <= ikea["iou"] <= 1
    # The mean-chair baseline, per model (AP x100, measured): it is a fixed number of the protocol.
    base = {m.split("/")[0]: v["mean_chair_ap"] for m, v in ikea["by_model"].items()}
    assert base == pytest.approx({"IKEA_chair_INGOLF": 65.9, "IKEA_chair_SNILLE": 19.9, "IKEA_chair_STEFAN": 52.6},
                                 abs=0.5)
    rows = list(csv.DictReader((out / "ikea_photos.csv").open()))
    assert len(rows) == 48 and {r["yaw"] for r in rows} == {"1", "2", "3"}
    assert (out / "ikea_sheet.png").is_file()


def test_eval_photo_reports_held_out_renders_and_candidates(data_dir, tiny_checkpoint, tmp_path, capsys):
    """The shown chair's IoU is generate(encode(photo)) >= 0.5 against the truth; reconstruct's
    AP and the best-of-k candidates IoU sit beside it; the mean chair at its own level."""
    import torch

    from test_photo_encoder import make_chairs

    data = make_chairs(tmp_path / "boxes", n=4)
    renders = photo_data.build(photo_data.PhotoSetConfig(data=str(data), out=str(tmp_path / "photos"), image_size=32,
                                                         views=1, test_views=2, workers=1), progress=False)
    gallery = tmp_path / "gallery"
    pipe = ChairPipeline.from_config(tiny_config(32, e_gallery=4, e_temperature=4.0), seed=0)
    with torch.no_grad():
        torch.nn.init.normal_(pipe.encoder.head.bias)
        pipe.encoder.gallery_codes.copy_(pipe.sample_latents(4, seed=5))
        pipe.encoder.gallery_embeddings.normal_()
    pipe.save_pretrained(gallery)
    out = tmp_path / "eval"
    assert train_main(["eval-photo", "--data", str(data_dir / "ikea_chairs_dev"), "--checkpoint",
                       str(gallery), "--renders", str(renders), "--out", str(out), "--threads", "1",
                       "--threshold", "0.3"]) == 0
    report = json.loads((out / "eval_photo.json").read_text())
    r = report["renders"]
    assert r["n"] == 4 and r["chairs"] == 2 and r["k"] == 4 and report["temperature"] == 4.0
    assert "train voxels" in report["mean_chair"]
    test = photo_data.PhotoSet(renders, "test")
    with torch.inference_mode():
        shown = pipe.generate(pipe.encoder(test.pictures(np.arange(4)))) >= 0.5
    truths = [test.voxels[test.chair[i]] > 0 for i in range(4)]
    expected = np.mean([(s & t).sum() / (s | t).sum() for s, t in zip(shown, truths)])
    assert r["iou"] == pytest.approx(expected)
    assert r["iou"] <= r["iou_best_candidate"] <= 1 and 0 <= r["iou_threshold"] <= 1
    assert r["reconstruct_vs_shown_iou"] > 0.9  # (an untrained G: ties where its logits round to 0)
    level = report["mean_chair_level"]["level"]
    assert level in MEAN_LEVELS and report["ikea"]["mean_level"] == r["mean_level"] == level
    assert 0 <= report["ikea"]["mean_chair_iou_level"] <= 1 and 0 <= r["mean_chair_iou_level"] <= 1
    printed = capsys.readouterr().out
    assert "held-out renders" in printed and "shown chair" in printed and "best of the 4 candidates" in printed


def test_eval_photo_bad_inputs_are_clear(data_dir, tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train_main(["eval-photo", "--data", str(tmp_path / "empty"), "--checkpoint", str(tiny_checkpoint),
                       "--modelnet", str(data_dir / "modelnet10_chair_vol30")]) == 2
    assert "pairs.tsv is missing" in capsys.readouterr().err
    bare = tmp_path / "bare"
    pipe = ChairPipeline.from_config(tiny_config(32))
    pipe.encoder = None
    pipe.save_pretrained(bare)
    assert train_main(["eval-photo", "--data", str(data_dir / "ikea_chairs_dev"), "--checkpoint", str(bare)]) == 2
    assert "no image encoder" in capsys.readouterr().err
    assert train_main(["eval-photo", "--data", str(data_dir / "ikea_chairs_dev"), "--checkpoint", str(tiny_checkpoint),
                       "--k", "3"]) == 2
    assert "--k must be from 1 to 1" in capsys.readouterr().err


def test_load_ikea_pairs_every_photo_with_its_model(data_dir, mean32):
    items = load_ikea(data_dir / "ikea_chairs_dev", mean32)
    assert len(items) == 48 and all(item.image.is_file() for item in items)
    assert {item.voxel_id for item in items} == {"54", "73", "78"}
    assert all(item.gt.shape == (20, 20, 20) and item.gt.dtype == bool for item in items)


def test_mean_chair_level_is_the_best_iou_level():
    """A mean chair of two nested boxes (0.9 inside, 0.3 in a shell): against chairs that fill the
    big box its best level takes the shell (<= 0.3), against the small box only the core (> 0.3)."""
    mean = np.zeros((8, 8, 8), np.float32)
    mean[1:7, 1:7, 1:7] = 0.3
    mean[3:5, 3:5, 3:5] = 0.9
    big, small = np.zeros((2, 8, 8, 8), bool), np.zeros((2, 8, 8, 8), bool)
    big[:, 1:7, 1:7, 1:7] = True
    small[:, 3:5, 3:5, 3:5] = True
    assert mean_chair_level(mean, big) <= 0.3 and score(mean, big[0], mean_chair_level(mean, big))[1] == 1.0
    assert mean_chair_level(mean, small) > 0.3 and score(mean, small[0], mean_chair_level(mean, small))[1] == 1.0


def test_mean_chair_level_is_chosen_on_the_photo_encoders_held_out_chairs(tmp_path):
    from types import SimpleNamespace

    from train.eval_photo import calibration_set
    from train.gan import split_by_id

    names = [f"chair_{i:04d}_1" for i in range(20)]
    photos = SimpleNamespace(names=names, chair=np.repeat(np.arange(20), 2))  # 2 renders per chair
    idx, source = calibration_set(tmp_path, photos)
    assert "no val split" in source and len(idx) == 40
    # the GAN's train_config.json at the root has no photo-encoder split; the encoder's own has
    (tmp_path / "train_config.json").write_text(json.dumps({"val_chairs": 48, "seed": 0}))
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "train_config.json").write_text(json.dumps({"val_chairs": 3, "seed": 1,
                                                                        "code_weight": 1.0}))
    idx, source = calibration_set(tmp_path, photos)
    _, val = split_by_id(names, 3, 1)
    assert "3 held-out val chairs" in source and sorted(set(photos.chair[idx])) == sorted(val)
