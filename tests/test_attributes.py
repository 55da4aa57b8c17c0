"""vaegan.attributes: every definition measured on hand-built chairs with known answers."""

import numpy as np
import pytest

from vaegan import attributes
from vaegan.errors import VoxelError

BOTTOM = 4


def make_chair(seat_z: int = 14, back: int = 10, arms: bool = False, legs: int = 4, leg_side: int = 2,
               x0: int = 8, x1: int = 23, y0: int = 8, y1: int = 23) -> np.ndarray:
    """A 32^3 chair in the project frame: a one-voxel seat at ``seat_z`` over [x0, x1] x [y0, y1],
    a 2-voxel-deep backrest at the high-x edge rising ``back`` voxels, ``legs`` (4 corner legs,
    or 1 central post) of side ``leg_side`` from z = BOTTOM, optional armrest bars 6 voxels
    above the seat with front posts."""
    g = np.zeros((32, 32, 32), np.float32)
    g[x0:x1 + 1, y0:y1 + 1, seat_z] = 1
    g[x1 - 1:x1 + 1, y0:y1 + 1, seat_z + 1:seat_z + back + 1] = 1
    s = leg_side
    if legs == 4:
        for x in (x0, x1 - s + 1):
            for y in (y0, y1 - s + 1):
                g[x:x + s, y:y + s, BOTTOM:seat_z] = 1
    elif legs == 1:
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        g[cx:cx + s, cy:cy + s, BOTTOM:seat_z] = 1
    if arms:
        for y in (y0, y1 - 1):
            g[x0:x1 - 1, y:y + 2, seat_z + 6] = 1
            g[x0:x0 + 2, y:y + 2, seat_z + 1:seat_z + 6] = 1
    return g


def test_every_attribute_of_a_plain_chair():
    chair = make_chair()
    got = attributes.measure(chair)
    assert list(got) == list(attributes.NAMES)
    assert got["seat_height"] == 14 + 1 - BOTTOM
    assert got["backrest_height"] == 10
    assert (got["seat_width"], got["seat_depth"]) == (16, 16)
    assert got["armrests"] == 0
    assert got["leg_count"] == 4 and got["leg_thickness"] == pytest.approx(2.0)
    assert got["mass"] == pytest.approx(chair.sum() / 32**3)


@pytest.mark.parametrize("kwargs, name, expected", [
    (dict(seat_z=10), "seat_height", 7),
    (dict(seat_z=18, back=6), "seat_height", 15),
    (dict(back=4), "backrest_height", 4),
    (dict(back=0), "backrest_height", 0),
    (dict(y0=10, y1=21), "seat_width", 12),
    (dict(x0=11), "seat_depth", 13),
    (dict(arms=True), "armrests", 1.0),
    (dict(legs=1, leg_side=3), "leg_count", 1.0),
    (dict(legs=1, leg_side=3), "leg_thickness", 3.0),
    (dict(leg_side=3), "leg_thickness", 3.0),
])
def test_each_attribute_follows_its_definition(kwargs, name, expected):
    assert attributes.measure(make_chair(**kwargs))[name] == pytest.approx(expected)


def test_armrests_do_not_move_the_other_geometry():
    plain, armed = attributes.measure(make_chair()), attributes.measure(make_chair(arms=True))
    for name in ("seat_height", "backrest_height", "seat_width", "seat_depth", "leg_count", "leg_thickness"):
        assert plain[name] == armed[name], name


def test_a_thick_cushion_counts_as_seat():
    chair = make_chair()
    chair[8:22, 8:24, 15:17] = 1  # two more seat slices: the sitting surface is 2 voxels higher
    got = attributes.measure(chair)
    assert got["seat_height"] == 14 + 3 - BOTTOM and got["backrest_height"] == 8 and got["armrests"] == 0


def test_floating_specks_and_probabilities_are_cleaned():
    chair = make_chair()
    noisy = chair * 0.9 + 0.05  # probabilities: 0.95 / 0.05
    noisy[1, 1, 30] = noisy[30, 2, 2] = 0.9  # specks away from the chair
    assert attributes.measure(noisy) == attributes.measure(chair)


def test_resolutions_map_to_the_canonical_grid():
    chair = make_chair()
    big = chair.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # 64^3
    assert attributes.measure(big) == attributes.measure(chair)
    small = np.zeros((16, 16, 16), np.float32)
    small[4:12, 4:12, 6] = 1
    assert attributes.canonical_grid(small).shape == (32, 32, 32)
    assert attributes.measure(small)["seat_width"] == 16  # lengths in 32^3 voxels


def test_empty_and_bad_grids():
    empty = attributes.measure(np.zeros((32, 32, 32)))
    assert all(np.isnan(v) for v in empty.values())
    with pytest.raises(VoxelError, match="cubic"):
        attributes.measure(np.zeros((32, 32, 30)))
    with pytest.raises(VoxelError, match="stack"):
        attributes.measure_batch(np.zeros((32, 32, 32)))
    with pytest.raises(VoxelError, match="not a power-of-two"):
        attributes.measure(np.zeros((24, 24, 24)))


def test_measure_batch_matches_measure():
    chairs = np.stack([make_chair(), make_chair(seat_z=10, arms=True), np.zeros((32, 32, 32), np.float32)])
    table = attributes.measure_batch(chairs)
    assert table.shape == (3, len(attributes.NAMES))
    assert list(table[1]) == list(attributes.measure(chairs[1]).values())
    assert np.isnan(table[2]).all()


def test_every_attribute_is_documented():
    for a in attributes.ATTRIBUTES:
        assert a.unit and a.definition and a.label
        assert a.name in attributes.__doc__
