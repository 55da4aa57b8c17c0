"""vaegan.directions: fitting, conditioning, GANSpace, editing by name, the files, and
`python -m train directions`; the shipped checkpoint's directions behind the slow marker."""

import json

import numpy as np
import pytest

from conftest import SHIPPED, tiny_config
from vaegan import ChairPipeline, attributes
from vaegan import directions as dirs
from vaegan.errors import LatentError



def unit(v):
    return v / np.linalg.norm(v)


def toy_set(z_dim: int = 8) -> dirs.DirectionSet:
    vectors = np.eye(z_dim, dtype=np.float32)[:3]
    return dirs.DirectionSet(("seat_height", "armrests", "mass"), ("seat height", "armrests", "mass"), vectors)


# ------------------------------------------------------------------ fitting maths
def test_fit_linear_recovers_planted_directions():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3000, 16))
    u, v = unit(rng.standard_normal(16)), unit(rng.standard_normal(16))
    values = np.stack([3 * z @ u + 0.1 * rng.standard_normal(3000), 5 - z @ v], axis=1)
    values[::50, 0] = np.nan  # unmeasurable chairs are dropped
    normals, mean, std, r2 = dirs.fit_linear(z, values)
    assert normals[0] @ u > 0.999
    assert normals[1] @ v < -0.999  # the attribute falls along v
    assert r2[0] > 0.99 and r2[1] > 0.99
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    assert mean[1] == pytest.approx(5, abs=0.1)


def test_fit_linear_needs_enough_samples():
    with pytest.raises(LatentError, match="too few"):
        dirs.fit_linear(np.zeros((5, 8)), np.zeros((5, 2)))


def test_condition_projects_off_the_other_normals_but_not_off_mass():
    rng = np.random.default_rng(1)
    normals = np.stack([unit(rng.standard_normal(10)) for _ in range(3)])
    normals[1] = unit(normals[0] + 0.3 * normals[1])  # correlated with the first
    out = dirs.condition(normals, ("a", "b", "mass"))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    assert abs(out[0] @ normals[1]) < 1e-9 and abs(out[1] @ normals[0]) < 1e-9
    assert abs(out[0] @ normals[2]) > 1e-3  # nothing is conditioned on mass ...
    assert abs(out[2] @ normals[0]) < 1e-9 and abs(out[2] @ normals[1]) < 1e-9  # ... but mass is on all


def test_coupled_attributes_are_not_conditioned_on_each_other():
    rng = np.random.default_rng(2)
    normals = np.stack([unit(rng.standard_normal(10)) for _ in range(3)])
    names = ("seat_height", "backrest_height", "seat_width")
    out = dirs.condition(normals, names)
    assert abs(out[0] @ normals[2]) < 1e-9 and abs(out[0] @ normals[1]) > 1e-3
    assert dirs.conditioning_set("seat_height", names + ("mass",)) == ["seat_width"]
    assert dirs.conditioning_set("mass", names + ("mass",)) == list(names)


def test_ganspace_directions_are_unit_sorted_and_deterministic(tiny_pipe):
    d, ratio = dirs.ganspace_directions(tiny_pipe, k=4, n=256)
    assert d.shape == (4, tiny_pipe.z_dim) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(ratio) <= 1e-12) and 0 < ratio.sum() <= 1
    np.testing.assert_array_equal(d, dirs.ganspace_directions(tiny_pipe, k=4, n=256)[0])
    with pytest.raises(LatentError, match="block"):
        dirs.ganspace_directions(tiny_pipe, k=2, n=64, block=7)


def test_measure_effects_shape(tiny_pipe):
    z = np.asarray(tiny_pipe.sample_latents(4, seed=2))
    effects = dirs.measure_effects(tiny_pipe, z, np.eye(tiny_pipe.z_dim, dtype=np.float32)[:2])
    assert effects.shape == (2, len(attributes.NAMES))


# ------------------------------------------------------------------ editing by name
def test_edit_by_name_and_label():
    dset = toy_set()
    z = np.zeros(8, np.float32)
    out = dirs.edit(z, dset, {"seat_height": 1.5, "armrests": -2})
    np.testing.assert_allclose(out[:3], [1.5, -2.0, 0.0])
    np.testing.assert_allclose(dirs.edit(z, dset, {"seat height": 1.0})[:1], [1.0])


@pytest.mark.parametrize("strengths, reason", [
    ({"armrest": 1.0}, "unknown direction 'armrest'; this checkpoint has: seat_height, armrests, mass"),
    ({"armrests": 3.5}, "between -3 and 3"),
    ({"armrests": -10}, "between -3 and 3"),
    ({"armrests": float("nan")}, "between -3 and 3"),
    ({"armrests": "lots"}, "must be a number"),
])
def test_edit_rejects_unknown_names_and_out_of_range_strengths(strengths, reason):
    with pytest.raises(LatentError, match=reason.replace("(", r"\(")):
        dirs.edit(np.zeros(8), toy_set(), strengths)


def test_edit_checks_the_latent():
    with pytest.raises(LatentError, match="needs 8"):
        dirs.edit(np.zeros(5), toy_set(), {"mass": 1})


# ------------------------------------------------------------------ files
def test_save_and_load_round_trip(tmp_path):
    dset = toy_set()
    dset.principal = np.eye(8, dtype=np.float32)[3:5]
    dset.meta = {"directions": [{"name": "mass", "r2": float("nan")}], "fit": {"n": 10}}
    t, m = dirs.save_directions(tmp_path, dset)
    doc = json.loads(m.read_text())
    assert doc["format"] == dirs.FORMAT and doc["max_strength"] == 3.0 and doc["z_dim"] == 8
    assert [d["name"] for d in doc["directions"]] == list(dset.names) and doc["directions"][2]["r2"] is None
    back = dirs.load_directions(tmp_path, 8)
    assert back.names == dset.names and back.labels == dset.labels
    np.testing.assert_array_equal(back.vectors, dset.vectors)
    np.testing.assert_array_equal(back.principal, dset.principal)
    assert dirs.has_directions(tmp_path) and not dirs.has_directions(tmp_path / "nope")


def test_load_rejects_broken_files(tmp_path):
    dirs.save_directions(tmp_path, toy_set())
    with pytest.raises(LatentError, match="this model's z has 16"):
        dirs.load_directions(tmp_path, 16)
    meta = json.loads((tmp_path / dirs.META_FILE).read_text())
    meta["directions"] = meta["directions"][:2]
    (tmp_path / dirs.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(LatentError, match="one row per entry"):
        dirs.load_directions(tmp_path)
    (tmp_path / dirs.TENSORS_FILE).write_bytes(b"junk")
    with pytest.raises(LatentError, match="unreadable"):
        dirs.load_directions(tmp_path)
    (tmp_path / dirs.META_FILE).write_text('{"format": "other"}')
    with pytest.raises(LatentError, match="not a chair-studio/directions file"):
        dirs.load_directions(tmp_path)


def test_effects_markdown_marks_the_own_attribute():
    table = [{"name": "a", "label": "A", "unit": "voxels"}, {"name": "mass", "label": "mass", "unit": "f"},
             {"name": "b", "label": "B", "unit": "voxels"}]
    rows = [{"label": "A", "attribute": "a", "effect": {"a": 0.9, "mass": 0.01, "b": 0.2},
             "effect_sigma": {"a": 0.5, "mass": 0.4, "b": -0.1}}]
    text = dirs.effects_markdown(rows, table)
    assert "| A | **+0.50** | +0.40 | -0.10 | +0.9 voxels | 0.20 |" in text  # leakage ignores mass


class BoxPipe:
    """A stand-in generator with a known answer: a cube whose side is 8 + 2 z[0] voxels."""

    def generate(self, z, batch_size=64):
        out = np.zeros((len(z), 32, 32, 32), np.float32)
        for grid, code in zip(out, z):
            side = int(round(8 + 2 * code[0]))
            grid[4:4 + side, 4:4 + side, 4:4 + side] = 1.0
        return out


def test_slider_figures_measure_the_own_change_and_what_is_kept():
    z = np.zeros((3, 4), np.float32)
    along = np.eye(4, dtype=np.float32)[:1]  # grows the cube
    rows = dirs.slider_figures(BoxPipe(), z, np.concatenate([along, np.zeros_like(along)]),
                               ["seat_width", "seat_width"], strength=2.0)
    grow, still = rows
    assert grow["plus"]["change"] == pytest.approx(4.0) and grow["minus"]["change"] == pytest.approx(-4.0)
    assert grow["plus"]["change_percent"] == pytest.approx(50.0)
    assert grow["plus"]["iou"] == pytest.approx(8 ** 3 / 12 ** 3) and grow["plus"]["replaced"] == 1.0
    assert grow["minus"]["iou"] == pytest.approx(4 ** 3 / 8 ** 3)
    assert still["plus"] == {"change": 0.0, "change_percent": 0.0, "iou": 1.0, "replaced": 0.0}
    table = dirs.slider_markdown(rows, [{"name": "seat_width", "label": "seat width", "unit": "voxels"}])
    assert "| seat width | +4 voxels (+50 %) | -4 voxels (-50 %) | 0.30 | 0.12 | 100% |" in table


# ------------------------------------------------------------------ the command
def test_train_directions_writes_loadable_files_the_app_uses(tmp_path, capsys):
    from train.__main__ import main

    pipe = ChairPipeline.from_config(tiny_config(16), seed=0)
    pipe.save_pretrained(tmp_path / "ckpt")
    report = tmp_path / "report.md"
    code = main(["directions", "--checkpoint", str(tmp_path / "ckpt"), "--n", "120", "--eval-n", "3",
                 "--principal", "2", "--principal-n", "64", "--compare-raw", "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| seat height |" in out and "GANSpace" in out and report.read_text().strip() in out
    dset = dirs.load_directions(tmp_path / "ckpt", pipe.z_dim)
    doc = json.loads((tmp_path / "ckpt" / dirs.META_FILE).read_text())
    # An untrained net makes one blob per latent: some attributes never vary and get no direction.
    assert set(dset.names) | set(doc["fit"]["constant"]) == set(attributes.NAMES) and "mass" in dset.names
    assert dset.principal.shape == (2, pipe.z_dim)
    assert {"r2", "cos_raw", "effect", "effect_sigma", "unit", "definition"} <= set(doc["directions"][0])
    assert len(doc["raw"]) == len(doc["directions"]) and doc["fit"]["n"] == 120
    assert len(doc["attributes"]) == len(attributes.NAMES)
    assert [r["name"] for r in doc["sliders"]] == list(dset.names) and "IoU before/after +6" in out
    loaded = ChairPipeline.from_pretrained(tmp_path / "ckpt")
    sliders = dirs.slider_directions(loaded, 5, named_k=8)
    assert [d.name for d in sliders] == list(dset.labels)
    # the sliders' range comes with the file: the app's sliders and `edit` both honour it
    assert doc["max_strength"] == 8.0 and dirs.slider_range(loaded) == 8.0
    dirs.edit(np.zeros(pipe.z_dim), dset, {"mass": 7.5})
    with pytest.raises(LatentError, match="between -8 and 8"):
        dirs.edit(np.zeros(pipe.z_dim), dset, {"mass": 8.5})
    assert dirs.slider_range(ChairPipeline.from_config(tiny_config(16), seed=0)) == dirs.MAX_STRENGTH
    assert main(["directions", "--checkpoint", str(tmp_path / "ckpt"), "--slider-strength", "9"]) == 2


def test_train_directions_refuses_a_missing_folder(tmp_path, capsys):
    from train.__main__ import main

    assert main(["directions", "--checkpoint", str(tmp_path / "none")]) == 2
    assert "local checkpoint folder" in capsys.readouterr().err


# ------------------------------------------------------------------ the shipped checkpoint
@pytest.mark.slow
def test_shipped_directions_move_their_attribute_the_right_way():
    if not (SHIPPED / "generator" / "config.json").is_file():
        pytest.skip(f"no trained checkpoint at {SHIPPED}")
    assert dirs.has_directions(SHIPPED), \
        f"{SHIPPED} has no directions: run python -m train directions --checkpoint {SHIPPED}"
    pipe = ChairPipeline.from_pretrained(SHIPPED)
    dset = dirs.load_directions(SHIPPED, pipe.z_dim)
    z = np.asarray(pipe.sample_latents(48, seed=123), dtype=np.float32)
    before = attributes.measure_batch(pipe.generate(z))
    step = 0.75 * dirs.slider_range(pipe)  # the slider table's step (6 of chair32 v3's ±8)
    for name in dset.names:
        after = attributes.measure_batch(pipe.generate(z + step * dset.vector(name)))
        change = np.nanmean(after[:, attributes.NAMES.index(name)] - before[:, attributes.NAMES.index(name)])
        assert change > 0, f"+{step:g} along {name!r} changed it by {change:.3g}"
