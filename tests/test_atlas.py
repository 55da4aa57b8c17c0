"""vaegan.atlas (2-D maps of latent codes, their files and figures) and `python -m train atlas`
on a small fake ModelNet folder."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHIPPED, tiny_config
from test_attributes import make_chair
from vaegan import ChairPipeline, attributes, latents
from vaegan import atlas as atl
from vaegan.errors import LatentError



GENERATOR = ChairPipeline.from_config(tiny_config(), seed=0).generator  # z_dim 8


def toy_atlas(n: int = 12, z_dim: int = 8) -> atl.Atlas:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, z_dim)).astype(np.float32)
    values = rng.random((n, len(attributes.NAMES)))
    coords = {m: atl.embed(z, m, generator=GENERATOR) for m in atl.METHODS}
    return atl.Atlas(tuple(f"chair_{i:09d}_1" for i in range(n)), z, coords, values,
                     rng.random(n).astype(np.float32), {"note": "toy"})


def test_embed_shapes_and_errors():
    z = np.random.default_rng(1).standard_normal((40, 8))
    for method in atl.METHODS:
        xy = atl.embed(z, method, generator=GENERATOR)
        assert xy.shape == (40, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    pca = atl.embed(z, "pca")
    assert pca[:, 0].var() >= pca[:, 1].var()  # the first axis carries the most variance
    gpca = atl.embed(z, "gpca", generator=GENERATOR)  # the generator's own first two principal axes
    dirs, var = latents.principal_directions(GENERATOR, 2, return_variance=True)
    np.testing.assert_allclose(gpca, z @ dirs.T * np.sqrt(var), rtol=1e-4, atol=1e-5)
    with pytest.raises(LatentError, match="needs the generator"):
        atl.embed(z, "gtsne")
    with pytest.raises(LatentError, match="unknown embedding 'umap'"):
        atl.embed(z, "umap")
    with pytest.raises(LatentError, match="at least 3"):
        atl.embed(z[:2], "pca")


def test_knn_r2_sees_structure_and_its_absence():
    rng = np.random.default_rng(2)
    points = rng.random((400, 2))
    assert atl.knn_r2(points, points[:, 0]) > 0.95  # the attribute is a coordinate: full structure
    assert atl.knn_r2(points, rng.random(400)) < 0.1  # unrelated: none
    values = points[:, 1].copy()
    values[::7] = np.nan
    assert atl.knn_r2(points, values) > 0.95  # NaN chairs are left out


def test_structure_scores_cover_every_map_and_attribute():
    scores = atl.structure_scores(toy_atlas(30), generator=GENERATOR)
    assert set(scores) == {*atl.METHODS, "z", "gz"}
    assert all(set(s) == set(attributes.NAMES) for s in scores.values())


def test_save_and_load_round_trip(tmp_path):
    atlas = toy_atlas()
    atl.save_atlas(tmp_path, atlas)
    doc = json.loads((tmp_path / atl.META_FILE).read_text())
    assert doc["format"] == atl.FORMAT and doc["names"] == list(atlas.names) and doc["note"] == "toy"
    back = atl.load_atlas(tmp_path, 8)
    assert back.names == atlas.names and set(back.coords) == set(atlas.coords)
    np.testing.assert_array_equal(back.z, atlas.z)
    np.testing.assert_allclose(back.attributes, atlas.attributes, rtol=1e-6)
    np.testing.assert_array_equal(back.latent(3), atlas.z[3])
    with pytest.raises(LatentError, match="between 1 and 12"):
        back.latent(12)
    with pytest.raises(LatentError, match="this model's z has 16"):
        atl.load_atlas(tmp_path, 16)
    (tmp_path / atl.TENSORS_FILE).write_bytes(b"junk")
    with pytest.raises(LatentError, match="unreadable"):
        atl.load_atlas(tmp_path)


def test_atlas_figure_points_carry_their_index():
    atlas = toy_atlas()
    fig = atl.atlas_figure(atlas, "t-SNE", "seat height")
    trace = fig.data[0]
    assert list(trace.customdata) == list(range(12)) and len(trace.x) == 12
    assert "#4 chair_000000003_1" in trace.text[3] and "armrests" in trace.text[3]
    assert "projection IoU" in trace.text[3]  # the toy atlas has no record: projected codes, as v1/v2
    np.testing.assert_allclose(trace.marker.color, atlas.attributes[:, 0])
    assert atl.atlas_figure(atlas, "pca", "mass").data[0].marker.colorbar.title.text.startswith("mass")
    with pytest.raises(LatentError, match="unknown attribute 'colour'"):
        atl.atlas_figure(atlas, "pca", "colour")
    with pytest.raises(LatentError, match="unknown embedding"):
        atl.atlas_figure(atlas, "mds", "mass")


def test_atlas_png(tmp_path):
    path = atl.atlas_png(toy_atlas(), tmp_path / "a.png", colors=("seat_height", "armrests"), size=100)
    with Image.open(path) as im:
        assert im.size == (200, len(atl.METHODS) * 136)


def write_modelnet(folder: Path, n_train: int = 10, n_test: int = 3) -> Path:
    """A fake ModelNet chair folder: chairs from make_chair, cropped to the 30^3 `instance` grid."""
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    for split, n in (("train", n_train), ("test", n_test)):
        (folder / split).mkdir(parents=True)
        for i in range(n):
            chair = make_chair(seat_z=int(rng.integers(10, 16)), back=int(rng.integers(4, 12)), arms=bool(i % 2))
            savemat(folder / split / f"chair_{i:09d}_1.mat", {"instance": chair[1:31, 1:31, 1:31].astype(np.int8)})
    return folder


def test_train_atlas_writes_the_atlas_the_app_reads(tmp_path, capsys):
    from train.__main__ import main

    pipe = ChairPipeline.from_config(tiny_config(32), seed=0)
    pipe.save_pretrained(tmp_path / "ckpt")
    data = write_modelnet(tmp_path / "data")
    code = main(["atlas", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(data), "--steps", "3",
                 "--test-steps", "3", "--bank", "16", "--report", str(tmp_path / "atlas.md")])
    assert code == 0
    out = capsys.readouterr().out
    assert "| test | 3 | 3 |" in out and "| train | 10 | 3 |" in out and "| seat height |" in out
    assert f"full z ({pipe.z_dim}-d)" in out  # the table names the checkpoint's own code size
    atlas = atl.load_atlas(tmp_path / "ckpt", pipe.z_dim)
    assert len(atlas) == 10 and set(atlas.coords) == set(atl.METHODS)
    assert atlas.names[0] == "chair_000000000_1" and atlas.attributes[1, attributes.NAMES.index("armrests")] == 1.0
    assert atlas.meta["projection"]["test"]["n"] == 3 and (tmp_path / "ckpt" / atl.PNG_FILE).is_file()
    assert atlas.meta["projection"]["start"] == "encoder"  # the checkpoint has a shape encoder
    assert "from the shape encoder's codes" in out
    assert main(["atlas", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(data), "--steps", "2",
                 "--no-test", "--bank", "16", "--start", "bank"]) == 0
    assert atl.load_atlas(tmp_path / "ckpt", pipe.z_dim).meta["projection"]["start"] == "bank"


def test_train_atlas_needs_data(tmp_path, capsys):
    from train.__main__ import main

    ChairPipeline.from_config(tiny_config(32)).save_pretrained(tmp_path / "ckpt")
    assert main(["atlas", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_atlas_loads_and_draws():
    if not (SHIPPED / "generator" / "config.json").is_file():
        pytest.skip(f"no trained checkpoint at {SHIPPED}")
    if not atl.has_atlas(SHIPPED):
        # Fitting it takes ~8 min here; it is not shipped yet (issue 7 stays open for it).
        pytest.skip(f"{SHIPPED} has no atlas yet: python -m train atlas --checkpoint {SHIPPED} --data ...")
    import json

    z_dim = json.loads((SHIPPED / "generator" / "config.json").read_text())["z_dim"]
    atlas = atl.load_atlas(SHIPPED, z_dim)
    # chair32 v3: the atlas codes are the autoencoder's own codes of the training chairs
    assert len(atlas) == 888 and np.nanmean(atlas.iou) > 0.9
    trace = atl.atlas_figure(atlas, "t-SNE", "armrests").data[0]
    assert len(trace.x) == 888
    # its codes are one encoder pass: the hover line says reconstruction, not projection
    assert "reconstruction IoU" in trace.text[0] and "projection" not in trace.text[0]


def test_the_atlas_tab_says_how_its_codes_were_found():
    """chair32 v3's atlas holds the shape encoder's one-pass codes (--steps 0): the tab says so,
    not "projection" (which v2's atlas used and older files without the record still get)."""
    from vaegan.atlas import codes_description, encoder_codes, projection_start

    encoder = {"projection": {"start": "encoder", "config": {"steps": 0, "bank": 2048}, "train": {"steps": 0}}}
    assert codes_description(encoder) == "the shape encoder's codes of them"
    refined = {"projection": {"start": "encoder", "config": {"steps": 200, "bank": 2048}, "train": {"steps": 200}}}
    assert codes_description(refined) == "found by 200 projection steps through the generator from the shape encoder's codes"
    bank = {"projection": {"start": "bank", "config": {"steps": 300, "bank": 2048}}}
    assert projection_start(bank) == "the best of 2048 prior samples"
    assert codes_description(bank) == "found by 300 projection steps through the generator from the best of 2048 prior samples"
    assert codes_description({}) == "found by projection through the generator"
    assert encoder_codes(encoder) and not encoder_codes(refined) and not encoder_codes(bank) and not encoder_codes({})
    shipped = SHIPPED / "atlas.json"
    if shipped.is_file():
        assert codes_description(json.loads(shipped.read_text())) == "the shape encoder's codes of them"
