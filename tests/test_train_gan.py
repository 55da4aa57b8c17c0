"""`python -m train gan` on a tiny synthetic dataset: dry run, outputs, exact resume,
resume after SIGKILL, bad data, and DDP under torchrun with 2 CPU processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from train.__main__ import main as train_main
from vaegan import ChairPipeline

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--g-widths", "8", "4", "4", "--z-dim", "8", "--batch-size", "4", "--val-chairs", "2",
        "--eval-every", "2", "--log-every", "1", "--ema-start", "1", "--threads", "1",
        "--sheet-samples", "4"]


def make_chairs(folder: Path, n: int = 12, seed: int = 0) -> Path:
    """A 3D ShapeNets-style folder of box 'chairs': seat, back and four legs, in a 30^3 grid."""
    rng = np.random.default_rng(seed)
    (folder / "train").mkdir(parents=True)
    for i in range(n):
        g = np.zeros((30, 30, 30), np.int8)
        h = rng.integers(8, 14)
        g[3:27, 3:27, h:h + 2] = 1                       # seat
        g[24:27, 3:27, h:27] = 1                         # backrest at high axis 0
        for x, y in ((3, 3), (3, 24), (24, 3), (24, 24)):
            g[x:x + 3, y:y + 3, 3:h] = 1                 # legs
        for k in (1, 2):
            scipy.io.savemat(folder / "train" / f"chair_{i:09d}_{k}.mat", {"instance": g})
    return folder


def run(args, **kw):
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)


def test_dry_run_prints_resolved_config(tmp_path, capsys):
    assert train_main(["gan", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--dry-run", *TINY]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["g_widths"] == [8, 4, 4] and cfg["batch_size"] == 4 and cfg["g_lr"] == 2.5e-3


def test_train_writes_run_folder_and_pipeline(tmp_path):
    data = make_chairs(tmp_path / "data")
    out = tmp_path / "run"
    assert train_main(["gan", "--data", str(data), "--out", str(out), "--steps", "4", *TINY]) == 0
    assert json.loads((out / "config.json").read_text())["steps"] == 4
    assert len((out / "metrics.csv").read_text().splitlines()) == 5
    assert len((out / "eval.csv").read_text().splitlines()) == 3
    assert list((out / "samples").glob("step_000004.png"))
    pipe = ChairPipeline.from_pretrained(out / "checkpoint")
    assert pipe.resolution == 32 and pipe.discriminator is not None
    assert pipe.generate(pipe.sample_latents(2)).shape == (2, 32, 32, 32)
    # the best monitor evaluation is kept as a pipeline of its own, with its figures
    coverage = [float(row.split(",")[3]) for row in (out / "eval.csv").read_text().splitlines()[1:]]
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["coverage_iou"] == pytest.approx(max(coverage), abs=1e-4) and best["step"] in (2, 4)
    assert ChairPipeline.from_pretrained(out / "best").resolution == 32


def test_resume_continues_exactly(tmp_path):
    data = make_chairs(tmp_path / "data")
    common = ["--data", str(data), *TINY, "--ckpt-every-min", "0"]
    assert train_main(["gan", "--out", str(tmp_path / "a"), "--steps", "6", *common]) == 0
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "3", *common]) == 0
    assert train_main(["gan", "--out", str(tmp_path / "b"), "--steps", "6", "--resume", *common]) == 0
    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for key in ("generator", "discriminator", "ema"):
        for name, tensor in a[key].items():
            assert torch.allclose(tensor.float(), b[key][name].float(), atol=1e-6), (key, name)


def test_resume_after_sigkill(tmp_path):
    data = make_chairs(tmp_path / "data")
    args = ["gan", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--ckpt-every-min", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "train", *args, "--steps", "100000"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    state = tmp_path / "run" / "state.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and torch.load(state, weights_only=True)["step"] >= 3):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=True)["step"]
    assert killed_at >= 3
    out = run([*args, "--steps", str(killed_at + 2), "--resume"])
    assert out.returncode == 0, out.stderr
    assert torch.load(state, weights_only=True)["step"] == killed_at + 2
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_bad_data_and_bad_resume_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    out = run(["gan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), *TINY])
    assert out.returncode == 2 and "no usable voxel files" in out.stderr and "Traceback" not in out.stderr
    out = run(["gan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "none"), "--resume", *TINY])
    assert out.returncode == 2 and "no run to continue" in out.stderr
    data = make_chairs(tmp_path / "data")
    assert train_main(["gan", "--data", str(data), "--out", str(tmp_path / "r2"), "--steps", "1", *TINY,
                       "--ckpt-every-min", "0"]) == 0
    bad = [a if a != "4" else "6" for a in TINY]  # other widths/batch: incompatible
    out = run(["gan", "--data", str(data), "--out", str(tmp_path / "r2"), "--steps", "2", "--resume", *bad])
    assert out.returncode == 2 and "was trained with" in out.stderr
    out = run(["gan", "--data", str(data), "--out", str(tmp_path / "r3"), "--resolution", "48", *TINY])
    assert out.returncode == 2 and "unsupported resolution 48" in out.stderr


def test_corrupt_file_is_skipped_and_counted(tmp_path, caplog):
    data = make_chairs(tmp_path / "data", n=10)
    (data / "train" / "chair_000000099_1.mat").write_bytes(b"MATLAB 5.0 truncated")
    from vaegan.datasets import load_chairs
    grids, names = load_chairs(data, "train")
    assert len(grids) == 10 and "chair_000000099_1" not in names
    assert "skipped 1 corrupt file(s) of 11" in caplog.text


def test_torchrun_two_cpu_processes(tmp_path):
    data = make_chairs(tmp_path / "data")
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "train", "gan", "--data", str(data),
         "--out", str(tmp_path / "ddp"), "--steps", "3", *TINY, "--ckpt-every-min", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert torch.load(tmp_path / "ddp" / "state.pt", weights_only=True)["step"] == 3
    assert len(torch.load(tmp_path / "ddp" / "state.pt", weights_only=True)["rng"]) == 2
    assert ChairPipeline.from_pretrained(tmp_path / "ddp" / "checkpoint").resolution == 32


def test_shapenet_binvox_folder_works_as_data(data_dir, tmp_path):
    out = tmp_path / "sn"
    assert train_main(["gan", "--data", str(data_dir / "shapenet_chair_binvox64"), "--out", str(out),
                       "--steps", "2", *TINY]) == 0
    assert ChairPipeline.from_pretrained(out / "checkpoint").resolution == 32


def test_paper_64_config_resolves(tmp_path, capsys):
    """The paper's 64^3 model goes through the same command (it trains on a GPU: --device auto)."""
    assert train_main(["gan", "--data", str(tmp_path), "--resolution", "64", "--g-widths", "512", "256", "128", "64",
                       "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["resolution"] == 64 and cfg["device"] == "auto"
    # The 64^3 code path really trains (tiny widths, CPU): data, step, checkpoint.
    data = make_chairs(tmp_path / "data", n=6)
    tiny64 = [a for a in TINY]
    tiny64[tiny64.index("--g-widths") + 1:tiny64.index("--g-widths") + 4] = ["4", "4", "4", "4"]
    assert train_main(["gan", "--data", str(data), "--out", str(tmp_path / "r64"), "--resolution", "64",
                       "--steps", "1", "--device", "cpu", *tiny64]) == 0
    assert ChairPipeline.from_pretrained(tmp_path / "r64" / "checkpoint").resolution == 64


def test_export_writes_a_loadable_pipeline_from_a_run(tmp_path):
    data = make_chairs(tmp_path / "data")
    run_dir = tmp_path / "run"
    assert train_main(["gan", "--data", str(data), "--out", str(run_dir), "--steps", "3", *TINY,
                       "--ckpt-every-min", "0"]) == 0
    assert train_main(["gan", "--out", str(run_dir), "--export", str(tmp_path / "exported")]) == 0
    a = ChairPipeline.from_pretrained(run_dir / "checkpoint")
    b = ChairPipeline.from_pretrained(tmp_path / "exported")
    z = a.sample_latents(2)
    assert np.array_equal(a.generate(z), b.generate(z))
    out = run(["gan", "--out", str(tmp_path / "nothing"), "--export", str(tmp_path / "x")])
    assert out.returncode == 2 and "not a training run folder" in out.stderr
