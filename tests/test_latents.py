"""vaegan.latents: interpolation, arithmetic, slider directions and the shareable latent JSON."""

import json
import math

import numpy as np
import pytest

from vaegan import directions, latents
from vaegan.errors import LatentError

Z = 8


def vec(seed: int, n: int = Z) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


# ------------------------------------------------------------------ as_latent
def test_as_latent_accepts_lists_rows_and_tensors():
    import torch

    z = vec(0)
    assert latents.as_latent(z.tolist(), Z).dtype == np.float32
    np.testing.assert_array_equal(latents.as_latent(z[None], Z), z)
    np.testing.assert_array_equal(latents.as_latent(torch.from_numpy(z), Z), z)


@pytest.mark.parametrize("bad, reason", [
    ([], "shape"),
    ([[1.0, 2.0], [3.0, 4.0]], "shape"),
    ([1.0] * (Z - 1), f"needs {Z}"),
    ([float("nan")] * Z, "NaN"),
    ([float("inf")] * Z, "NaN or infinite"),
    (["a"] * Z, "numbers"),
    ([1e6] * Z, "within"),
])
def test_as_latent_rejects_with_a_reason(bad, reason):
    with pytest.raises(LatentError, match=reason):
        latents.as_latent(bad, Z)


def test_latent_error_is_a_value_error():
    assert issubclass(LatentError, ValueError)


# ------------------------------------------------------------------ interpolation, arithmetic
@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolate_hits_both_ends(method):
    a, b = vec(1), vec(2)
    path = latents.interpolate(a, b, 5, method)
    assert path.shape == (5, Z) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)


def test_slerp_keeps_the_norm_where_lerp_shrinks_it():
    a, b = vec(3, 200), vec(4, 200)
    mid_s, mid_l = latents.slerp(a, b, 0.5), latents.lerp(a, b, 0.5)
    typical = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
    assert abs(np.linalg.norm(mid_s) - typical) < 1e-3 * typical
    assert np.linalg.norm(mid_l) < 0.8 * typical  # near-orthogonal in 200-d: ~1/sqrt(2)


def test_slerp_of_parallel_vectors_falls_back_to_lerp():
    a = vec(5)
    np.testing.assert_allclose(latents.slerp(a, 2 * a, 0.5), 1.5 * a, rtol=1e-5)
    np.testing.assert_allclose(latents.slerp(np.zeros(Z), a, 0.25), 0.25 * a, rtol=1e-5)


@pytest.mark.parametrize("steps, method", [(1, "slerp"), (65, "slerp"), (4, "cubic")])
def test_interpolate_rejects_bad_arguments(steps, method):
    with pytest.raises(LatentError):
        latents.interpolate(vec(1), vec(2), steps, method)


def test_interpolate_rejects_mismatched_ends():
    with pytest.raises(LatentError, match="needs 8"):
        latents.interpolate(vec(1), vec(2, 9), 3)


def test_arithmetic():
    a, b, c = vec(1), vec(2), vec(3)
    np.testing.assert_allclose(latents.arithmetic(a, b, c), a - b + c, rtol=1e-6)
    np.testing.assert_allclose(latents.arithmetic(a, a, c), c, rtol=1e-6)


def test_apply_directions():
    base = vec(0)
    dirs = [latents.Direction("x", np.eye(Z, dtype=np.float32)[0]),
            latents.Direction("y", np.eye(Z, dtype=np.float32)[1])]
    out = latents.apply_directions(base, dirs, [1.5, -2.0])
    np.testing.assert_allclose(out - base, [1.5, -2.0] + [0.0] * (Z - 2), atol=1e-6)
    with pytest.raises(LatentError):
        latents.apply_directions(base, dirs, [1.0])
    with pytest.raises(LatentError):
        latents.apply_directions(base, dirs, [math.nan, 0.0])


# ------------------------------------------------------------------ directions
def test_principal_directions_are_orthonormal_sorted_and_deterministic(tiny_pipe):
    d = latents.principal_directions(tiny_pipe.generator, 4)
    assert d.shape == (4, tiny_pipe.z_dim) and d.dtype == np.float32
    np.testing.assert_allclose(d @ d.T, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(d, latents.principal_directions(tiny_pipe.generator, 4))
    # Sorted: the first direction moves the first-layer pre-activations the most.
    w = tiny_pipe.generator.net[0].weight.detach().numpy().reshape(tiny_pipe.z_dim, -1)
    norms = np.linalg.norm(d @ w, axis=1)  # BN is identity-scaled at init (var 1, gamma ~1)
    assert norms[0] >= norms[-1]


def test_principal_direction_changes_the_output_more_than_a_minor_one(tiny_pipe):
    k = tiny_pipe.z_dim
    d = latents.principal_directions(tiny_pipe.generator, k)
    z = np.zeros(k, np.float32)
    base = tiny_pipe.generate(z)
    first = np.abs(tiny_pipe.generate(z + 2 * d[0]) - base).mean()
    last = np.abs(tiny_pipe.generate(z + 2 * d[-1]) - base).mean()
    assert first > last


def test_slider_directions_default_to_named_pcs(tiny_pipe):
    dirs = directions.slider_directions(tiny_pipe, 3)
    assert [d.name for d in dirs] == ["PC 1", "PC 2", "PC 3"]


def test_slider_directions_read_the_checkpoints_direction_files(tiny_pipe, tmp_path):
    from vaegan.directions import DirectionSet, save_directions

    z = tiny_pipe.z_dim
    vectors = np.zeros((2, z), np.float32)
    vectors[0, 0], vectors[1, 1] = 1.0, 1.0
    save_directions(tmp_path, DirectionSet(("armrests", "seat_height"), ("armrests", "seat height"), vectors))
    tiny_pipe.root = tmp_path
    dirs = directions.slider_directions(tiny_pipe, 5)
    assert [d.name for d in dirs] == ["armrests", "seat height"]
    np.testing.assert_allclose(np.linalg.norm([d.vector for d in dirs], axis=1), 1.0, atol=1e-6)
    (tmp_path / "directions.json").write_text("{broken")
    with pytest.raises(LatentError, match="directions.json"):
        directions.slider_directions(tiny_pipe, 5)


# ------------------------------------------------------------------ JSON
def test_json_round_trip_is_exact_and_keeps_metadata(tmp_path):
    z = vec(7, 200)
    path = latents.save_latent(tmp_path / "a" / "chair.json", z, resolution=32, level=0.4, label="seed 7")
    back, meta = latents.load_latent(path, 200)
    np.testing.assert_array_equal(back, z)
    assert meta == {"z_dim": 200, "resolution": 32, "level": 0.4, "label": "seed 7"}


def test_json_accepts_a_bare_list():
    z, meta = latents.latent_from_json(json.dumps(vec(1).tolist()), Z)
    assert z.shape == (Z,) and meta == {}


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("{not json", "not valid JSON"),
    ('{"format": "chair-studio/latent"}', "no \"z\""),
    ('{"z": "abc"}', "list of numbers"),
    ('{"z": [true, false, true, false, true, false, true, false]}', "list of numbers"),
    ('{"z": [1, 2, 3]}', "needs 8"),
    ('{"z": [NaN, 0, 0, 0, 0, 0, 0, 0]}', "NaN"),
    ('{"z": [Infinity, 0, 0, 0, 0, 0, 0, 0]}', "Infinity"),
    ('{"z_dim": 9, "z": [0, 0, 0, 0, 0, 0, 0, 0]}', "says z_dim 9"),
    ('{"format": "something-else", "z": [0, 0, 0, 0, 0, 0, 0, 0]}', "unknown latent format"),
    ("[[1, 2], [3, 4]]", "list of numbers"),
])
def test_json_rejects_bad_documents(text, reason):
    with pytest.raises(LatentError, match=reason):
        latents.latent_from_json(text, Z)


def test_json_rejects_binary_and_huge_files(tmp_path):
    with pytest.raises(LatentError, match="UTF-8"):
        latents.latent_from_json(b"\xff\xfe\x00garbage", Z)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (latents.MAX_JSON_BYTES + 1))
    with pytest.raises(LatentError, match="bytes"):
        latents.load_latent(big, Z)
    with pytest.raises(LatentError, match="cannot read"):
        latents.load_latent(tmp_path / "missing.json", Z)


def test_latents_does_not_import_directions():
    """No import circle: vaegan.directions builds on vaegan.latents, never the other way round."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(latents))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {node.module or "" for node in ast.walk(tree)
                                            if isinstance(node, ast.ImportFrom)}
    assert not any("directions" in name for name in imported), imported
