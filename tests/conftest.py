"""Shared fixtures: tiny seeded models, and the real data folder (skipped where absent)."""

import os
from pathlib import Path

import pytest
import torch

from vaegan import ChairPipeline, ModelConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The checkpoint the slow tests score: the shipped one, or a candidate staged elsewhere
# (CHAIR_STUDIO_CHECKPOINT=runs/v2/chair32v2 pytest -m slow ...) before it replaces it.
SHIPPED = Path(os.environ.get("CHAIR_STUDIO_CHECKPOINT")
               or Path(__file__).resolve().parents[1] / "checkpoints" / "chair32").resolve()


def tiny_config(resolution: int = 16, **overrides) -> ModelConfig:
    """A model small enough for a unit test: 16^3 grids, a few channels, 32 px photos, a quarter-width
    photo backbone."""
    widths = {8: (8,), 16: (8, 4), 32: (8, 4, 4)}[resolution]
    values = dict(resolution=resolution, z_dim=8, g_widths=widths, image_size=32, e_width=0.25)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture
def tiny_pipe() -> ChairPipeline:
    return ChairPipeline.from_config(tiny_config(), seed=0)


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent (see DEVELOPERS.md, Data)")
    return DATA


@pytest.fixture(autouse=True)
def _fixed_threads():
    # Determinism of float reductions depends on the thread count: pin it per test.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
