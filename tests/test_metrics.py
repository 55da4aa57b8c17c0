"""Tests for train.metrics (distances, COV/MMD/1-NNA, validity, novelty) and the plumbing of
train.eval_gen.evaluate on tiny synthetic grids with a fake pipeline."""

import json

import numpy as np
import pytest
import torch

from train import metrics

# ----------------------------------------------------------------------------- helpers


def _box(res, lo, hi):
    g = np.zeros((res, res, res), dtype=bool)
    g[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return g


def _random_grids(n, res=8, p=0.3, seed=0):
    return np.random.default_rng(seed).random((n, res, res, res)) < p


# ----------------------------------------------------------------------------- IoU


def test_iou_matrix_matches_direct_numpy():
    a, b = _random_grids(5, seed=1), _random_grids(7, seed=2)
    a[0] = False  # an empty grid
    b[0] = False
    got = metrics.iou_matrix(a, b)
    assert got.shape == (5, 7) and got.dtype == np.float32
    for i in range(5):
        for j in range(7):
            inter = np.logical_and(a[i], b[j]).sum()
            union = np.logical_or(a[i], b[j]).sum()
            want = inter / union if union else 1.0
            assert got[i, j] == pytest.approx(want, abs=1e-6)
    assert got[0, 0] == 1.0  # empty vs empty
    assert (got[0, 1:] == 0).all()  # empty vs non-empty


def test_iou_matrix_identical_and_blocked(monkeypatch):
    a = _random_grids(6, seed=3)
    full = metrics.iou_matrix(a, a)
    np.testing.assert_allclose(np.diag(full), 1.0)
    np.testing.assert_allclose(full, full.T)
    monkeypatch.setattr(metrics, "_IOU_BLOCK_ELEMENTS", 2 * a[0].size)  # 2 grids per block
    np.testing.assert_array_equal(metrics.iou_matrix(a.reshape(6, -1), a), full)


def test_coverage_iou_is_best_iou_per_reference():
    iou = np.array([[0.2, 0.9], [0.5, 0.1]])
    assert metrics.coverage_iou(iou) == pytest.approx((0.5 + 0.9) / 2)


# ----------------------------------------------------------------------------- Chamfer


def _lattice(step=0.1):
    ax = np.arange(0, 1 + 1e-9, step)
    return np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)  # (P, 3)


def test_chamfer_identical_is_zero_and_translation():
    cloud = _lattice()
    t = np.array([0.01, -0.02, 0.005])
    d = metrics.chamfer_matrix(cloud[None], (cloud + t)[None])
    # spacing 0.1 >> |t|: every point's nearest neighbour is its own translate
    assert d[0, 0] == pytest.approx(2 * np.sum(t**2), rel=1e-4)
    assert metrics.chamfer_matrix(cloud[None], cloud[None].copy())[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_chamfer_matches_brute_force_and_is_symmetric():
    rng = np.random.default_rng(0)
    pa = rng.random((4, 50, 3)).astype(np.float32)
    pb = rng.random((3, 60, 3)).astype(np.float32)
    d = metrics.chamfer_matrix(pa, pb)
    assert d.shape == (4, 3) and d.dtype == np.float32
    for i in range(4):
        for j in range(3):
            sq = ((pa[i][:, None].astype(np.float64) - pb[j][None]) ** 2).sum(-1)
            assert d[i, j] == pytest.approx(sq.min(1).mean() + sq.min(0).mean(), rel=1e-5)
    np.testing.assert_allclose(metrics.chamfer_matrix(pb, pa), d.T, rtol=1e-6)
    sym = metrics.chamfer_matrix(pa)  # the half-cost symmetric path
    np.testing.assert_allclose(sym, metrics.chamfer_matrix(pa, pa.copy()), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sym, sym.T)
    assert (np.diag(sym) == 0).all()


def test_chamfer_empty_shapes():
    rng = np.random.default_rng(1)
    clouds = [rng.random((30, 3)), None, rng.random((40, 3)), None]
    d = metrics.chamfer_matrix(clouds)
    assert np.isinf(d[1, 0]) and np.isinf(d[0, 3]) and d[1, 3] == 0
    assert np.isfinite(d[0, 2]) and d[0, 2] > 0
    d2 = metrics.chamfer_matrix(clouds, [clouds[0]])
    assert d2[0, 0] == 0 and np.isinf(d2[1, 0])


# ----------------------------------------------------------------------------- COV / MMD / 1-NNA


def _euclid(x, y):
    return np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))


def test_cov_mmd_when_samples_are_the_references():
    r = np.random.default_rng(0).normal(size=(20, 2))
    d = _euclid(r, r)
    out = metrics.coverage_mmd_1nna(d, d, d)
    assert out["cov"] == 1.0 and out["mmd"] == 0.0
    assert out["nna"] == 0.0  # each shape's nearest neighbour is its copy in the other set


def test_1nna_iid_is_about_half_and_far_apart_is_one():
    rng = np.random.default_rng(0)
    s, r = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    out = metrics.coverage_mmd_1nna(_euclid(s, r), _euclid(s, s), _euclid(r, r))
    assert abs(out["nna"] - 0.5) < 0.06
    far = s + 100.0
    out = metrics.coverage_mmd_1nna(_euclid(far, r), _euclid(far, far), _euclid(r, r))
    assert out["nna"] == 1.0 and out["nna_samples"] == 1.0 and out["nna_refs"] == 1.0


def test_single_repeated_sample_covers_one_reference():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(25, 2))
    s = np.repeat(r[:1] + 0.01, 10, axis=0)
    out = metrics.coverage_mmd_1nna(_euclid(s, r), _euclid(s, s), _euclid(r, r))
    assert out["cov"] == pytest.approx(1 / 25)
    assert out["mmd"] == pytest.approx(_euclid(s[:1], r).mean())


def test_1nna_ties_and_infinite_rows():
    # sample 1 is at +inf from everything (an empty shape under Chamfer): counted as "told apart"
    d_sr = np.array([[1.0, 2.0], [np.inf, np.inf]])
    d_ss = np.array([[0.0, np.inf], [np.inf, 0.0]])
    d_rr = np.array([[0.0, 1.0], [1.0, 0.0]])
    out = metrics.coverage_mmd_1nna(d_sr, d_ss, d_rr)
    assert out["cov"] == 0.5  # the infinite sample covers nothing
    # sample 0: nearest ref 0 (wrong); sample 1: inf row (right); ref 0: tie sample0/ref1 (0.5);
    # ref 1: nearest ref 0 (right)
    assert out["nna"] == pytest.approx((0 + 1 + 0.5 + 1) / 4)
    with pytest.raises(ValueError):
        metrics.coverage_mmd_1nna(d_sr, d_ss, np.zeros((3, 3)))


# ----------------------------------------------------------------------------- validity


def test_validity_pieces_and_occupancy():
    one = _box(8, (2, 2, 2), (5, 5, 5))  # 27 / 512 = 0.053
    two = one | _box(8, (6, 6, 6), (8, 8, 8))  # a separate block
    edge = _box(8, (1, 1, 1), (3, 3, 3)) | _box(8, (3, 3, 1), (5, 5, 3))  # share an edge only
    corner = _box(8, (1, 1, 1), (3, 3, 3)) | _box(8, (3, 3, 3), (5, 5, 5))  # share a corner only
    grids = np.stack([one, two, edge, corner, np.zeros_like(one)])
    got = metrics.validity(grids, occupancy_range=(0.001, 0.5))
    np.testing.assert_array_equal(got, [True, False, True, False, False])
    np.testing.assert_array_equal(metrics.n_components(grids), [1, 2, 1, 2, 0])
    # occupancy out of range
    assert not metrics.validity(one[None], occupancy_range=(0.06, 0.5))[0]
    assert not metrics.validity(one[None], occupancy_range=(0.001, 0.05))[0]
    # probabilities are thresholded at the level
    probs = one.astype(np.float32) * 0.6
    assert metrics.validity(probs[None], level=0.5, occupancy_range=(0.001, 0.5))[0]
    assert not metrics.validity(probs[None], level=0.7, occupancy_range=(0.001, 0.5))[0]


def test_connectivity_matches_meshing():
    meshing = pytest.importorskip("vaegan.meshing")
    np.testing.assert_array_equal(metrics.CONNECTIVITY, meshing._STRUCTURE)
    grids = _random_grids(20, res=8, p=0.15, seed=4)
    one_piece = metrics.n_components(grids) == 1
    kept_all = np.array([meshing.keep_largest_component(g).sum() == g.sum() for g in grids])
    np.testing.assert_array_equal(one_piece, kept_all & grids.reshape(20, -1).any(1))


def test_occupancy_range_from():
    grids = np.stack([_box(8, (0, 0, 0), (2, 2, 2)), _box(8, (0, 0, 0), (4, 4, 4))])
    lo, hi = metrics.occupancy_range_from(grids)
    assert lo == pytest.approx(0.5 * 8 / 512) and hi == pytest.approx(2 * 64 / 512)


# ----------------------------------------------------------------------------- novelty


def test_nearest_iou_and_near_copies():
    train = _random_grids(6, seed=5)
    samples = train[[1, 3]].copy()
    samples[1, 0, 0, :] = ~samples[1, 0, 0, :]  # a small edit: still a near-copy
    nearest = metrics.nearest_iou(samples, train)
    assert nearest.dtype == np.float32 and nearest[0] == 1.0 and 0.9 < nearest[1] < 1.0
    assert metrics.near_copy_fraction(nearest, 0.9) == 1.0
    assert metrics.near_copy_fraction(np.array([0.95, 0.5, 0.2, 0.91]), 0.9) == 0.5
    # leave-self-out for training chairs
    loo = metrics.nearest_iou(train[[1, 3]], train, exclude=np.array([1, 3]))
    assert (loo < 1.0).all()


# ----------------------------------------------------------------------------- evaluate end to end


class FakePipe:
    """The ChairPipeline surface evaluate uses: boxes whose size depends on z (+ a speck)."""

    resolution = 16
    z_dim = 4

    def sample_latents(self, n, seed=0):
        return torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))

    def generate(self, z, batch_size=64):
        z = np.asarray(z)
        out = np.full((len(z), 16, 16, 16), 0.1, dtype=np.float32)
        for i, zi in enumerate(z):
            h = 2 + int(abs(zi[0]) * 3) % 6
            w = 3 + int(abs(zi[1]) * 3) % 5
            out[i, 8 - w // 2:8 + (w + 1) // 2, 5:11, 3:3 + h] = 0.9
            if zi[2] > 0:
                out[i, 0, 0, 15] = 0.8  # a floating speck: invalid raw, valid after cleaning
        return out


def _chairs(n, seed):
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, 16, 16, 16), dtype=np.uint8)
    for g in grids:
        h, w, d = rng.integers(2, 8), rng.integers(3, 8), rng.integers(3, 8)
        g[8 - w // 2:8 + (w + 1) // 2, 8 - d // 2:8 + (d + 1) // 2, 3:3 + h] = 1
    return grids


@pytest.fixture(scope="module")
def eval_result():
    pytest.importorskip("vaegan.meshing")
    from train.eval_gen import evaluate

    return evaluate(FakePipe(), _chairs(20, 0), _chairs(10, 1), seeds=[0, 1], n=6, n_points=64)


def test_evaluate_end_to_end(eval_result):
    res = eval_result
    assert set(res["generator"]["per_seed"]) == {"0", "1"}
    assert set(res["baselines"]) == {"train-6", "mean-chair"}
    for key in ("validity_raw", "validity_clean", "iou_cov", "iou_mmd", "iou_nna", "cd_cov",
                "cd_mmd", "cd_nna", "coverage_iou", "nearest_train_iou_mean", "near_copy_fraction",
                "mesh_pieces_mean", "one_mesh_piece"):
        assert key in res["generator"]["mean"] and key in res["generator"]["std"]
        for r in [*res["generator"]["per_seed"].values(), *res["baselines"].values()]:
            assert np.isfinite(r["metrics"][key])
    m = res["generator"]["per_seed"]["0"]["metrics"]
    assert 0 <= m["iou_cov"] <= 1 and 0 <= m["iou_nna"] <= 1 and m["cd_mmd"] >= 0
    assert m["coverage_iou"] == pytest.approx(1 - m["iou_mmd"], abs=1e-6)
    assert m["validity_clean"] >= m["validity_raw"]
    assert m["mesh_pieces_mean"] == 1.0 and m["one_mesh_piece"] == 1.0  # boxes, specks cleaned off
    # mean-chair: n identical shapes -> covers at most one reference under IoU
    mc = res["baselines"]["mean-chair"]["metrics"]
    assert mc["iou_cov"] == pytest.approx(1 / 10)
    # train baseline novelty excludes self, so no trivial 1.0
    assert res["baselines"]["train-6"]["metrics"]["nearest_train_iou_mean"] < 1.0
    assert res["settings"]["n"] == 6 and res["settings"]["seeds"] == [0, 1]


def test_evaluate_json_and_table(eval_result, tmp_path):
    from train.eval_gen import format_table, write_json

    table = format_table(eval_result)
    assert "generator (2 seeds)" in table and "train-6" in table and "mean-chair" in table
    path = write_json(tmp_path / "sub" / "eval.json", eval_result)
    loaded = json.loads(path.read_text())
    assert loaded["generator"]["mean"]["iou_nna"] == pytest.approx(eval_result["generator"]["mean"]["iou_nna"])
    assert not list(path.parent.glob(".*.tmp"))


def test_evaluate_all_empty_samples():
    pytest.importorskip("vaegan.meshing")
    from train.eval_gen import evaluate

    class EmptyPipe(FakePipe):
        def generate(self, z, batch_size=64):
            return np.zeros((len(z), 16, 16, 16), dtype=np.float32)

    res = evaluate(EmptyPipe(), _chairs(8, 0), _chairs(5, 1), seeds=[3], n=4, n_points=32,
                   baselines=False)
    m = res["generator"]["per_seed"]["3"]["metrics"]
    assert m["validity_raw"] == 0 and m["empty_fraction"] == 1.0
    assert m["cd_cov"] == 0 and np.isinf(m["cd_mmd"]) and m["iou_mmd"] == 1.0
    assert m["mesh_pieces_mean"] == 0.0


def test_cli_reports_missing_data(tmp_path, capsys):
    from train.__main__ import main

    code = main(["eval-gen", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "nope")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_without_cleaning():
    pytest.importorskip("vaegan.meshing")
    from train.eval_gen import evaluate

    res = evaluate(FakePipe(), _chairs(8, 0), _chairs(5, 1), seeds=[0], n=6, n_points=32,
                   clean=False, baselines=False)
    m = res["generator"]["per_seed"]["0"]["metrics"]
    assert m["occupancy_mean"] == m["occupancy_raw_mean"]  # the specks stay in
    assert m["validity_raw"] < m["validity_clean"]  # FakePipe adds a speck to some samples
    assert m["mesh_pieces_mean"] > 1.0 and m["one_mesh_piece"] < 1.0  # ... which the mesh shows
    assert res["baselines"] == {} and res["settings"]["clean"] is False


def test_evaluate_scores_the_truncated_draws_the_app_shows():
    """--truncation t reaches sample_latents (the app's truncation slider) and is recorded;
    at 1 the pipeline is called as before, without the argument."""
    pytest.importorskip("vaegan.meshing")
    from train.eval_gen import evaluate, prior_draws

    calls = []

    class TruncPipe(FakePipe):
        def sample_latents(self, n, seed=0, truncation=1.0):
            calls.append(truncation)
            return super().sample_latents(n, seed) * truncation

    pipe = TruncPipe()
    res = evaluate(pipe, _chairs(8, 0), _chairs(5, 1), seeds=[0], n=4, n_points=32, baselines=False, truncation=0.5)
    assert calls == [0.5] and res["settings"]["truncation"] == 0.5
    torch.testing.assert_close(prior_draws(pipe, 3, 2, 0.5), 0.5 * FakePipe().sample_latents(3, 2))
    assert torch.equal(prior_draws(FakePipe(), 3, 2), FakePipe().sample_latents(3, 2))  # no truncation argument


def test_cli_reports_missing_checkpoint(tmp_path, capsys):
    from train.__main__ import main

    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
    code = main(["eval-gen", "--checkpoint", str(tmp_path / "no" / "ckpt"), "--data", str(tmp_path / "data")])
    assert code == 2
    assert "checkpoint" in capsys.readouterr().err


def test_cli_refuses_a_bad_truncation(tmp_path, capsys):
    from train.__main__ import main

    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
    code = main(["eval-gen", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "data"), "--truncation", "0"])
    assert code == 2 and "--truncation in (0, 3]" in capsys.readouterr().err


def test_surface_clouds_count_the_solids_the_viewer_shows():
    """A hollow box meshes as two closed surfaces (outer wall and the cavity's inner wall) but
    is one solid; two boxes apart are two; an empty grid has none."""
    pytest.importorskip("vaegan.meshing")
    from train.eval_gen import surface_clouds

    hollow = np.zeros((12, 12, 12), np.float32)
    hollow[2:10, 2:10, 2:10] = 1.0
    hollow[4:8, 4:8, 4:8] = 0.0
    apart = np.zeros((12, 12, 12), np.float32)
    apart[1:4, 1:4, 1:4] = apart[7:10, 7:10, 7:10] = 1.0
    clouds, pieces = surface_clouds(np.stack([hollow, apart, np.zeros_like(apart)]), 0.5, False, 32)
    assert pieces.tolist() == [1, 2, 0]
    assert clouds[0].shape == (32, 3) and clouds[2] is None
