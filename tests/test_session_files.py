"""vaegan.session_files: per-session output folders on bounded disk."""

import os
import threading
from pathlib import Path

import pytest

from vaegan.session_files import SessionFiles


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def files(tmp_path):
    clock = Clock()
    store = SessionFiles(tmp_path / "sessions", grace_s=10, idle_s=100, max_bytes=10_000, clock=clock)
    store.clock = clock
    return store


def write(files, session, slot, size=100) -> Path:
    with files.output(session, slot) as folder:
        path = folder / "f.bin"
        path.write_bytes(b"x" * size)
    return path


def test_superseded_files_go_after_the_grace_and_the_current_ones_stay(files):
    first = write(files, "a", "view")
    gallery = write(files, "a", "gallery")
    second = write(files, "a", "view")
    files.sweep()
    assert first.is_file()  # within its grace: a client may still be fetching it
    files.clock.now += 11
    files.sweep()
    assert not first.exists() and second.is_file() and gallery.is_file()
    assert files.stats()["retired_folders"] == 0


def test_stale_session_is_reclaimed_without_unload_and_a_live_one_is_kept(files):
    stale = write(files, "stale", "view")
    live = write(files, "live", "view")
    files.clock.now += 60
    files.touch("live")  # an open tab's keepalive
    files.clock.now += 50
    files.sweep()
    assert not stale.exists() and not (files.root / "stale").exists()
    assert live.is_file()
    assert files.stats()["sessions"] == 1


def test_close_removes_the_session_now(files):
    path = write(files, "gone", "export")
    other = write(files, "stays", "export")
    files.close("gone")
    assert not path.exists() and other.is_file()


def test_a_failed_response_leaves_nothing_and_keeps_the_previous_files(files):
    before = write(files, "a", "view")
    with pytest.raises(RuntimeError):
        with files.output("a", "view") as folder:
            (folder / "half.glb").write_bytes(b"half")
            raise RuntimeError("meshing failed")
    assert not folder.exists() and before.is_file()
    files.clock.now += 11
    files.sweep()
    assert before.is_file()  # still the current chair


def test_over_the_byte_cap_retired_files_go_at_once_oldest_first(files):
    paths = [write(files, "a", "view", size=3000) for _ in range(5)]  # 15 KB > the 10 KB cap
    files.sweep()
    alive = [p.is_file() for p in paths]
    assert alive[-1] and not alive[0]
    assert sum(p.stat().st_size for p in paths if p.exists()) <= 10_000


def test_a_session_is_not_removed_under_a_response_being_written(files):
    old = write(files, "busy", "view")
    inside, release = threading.Event(), threading.Event()

    def slow():
        with files.output("busy", "view") as folder:
            inside.set()
            release.wait(5)
            (folder / "f.bin").write_bytes(b"new")

    worker = threading.Thread(target=slow)
    worker.start()
    inside.wait(5)
    files.clock.now += 1000
    files.close("busy")
    files.sweep()
    assert (files.root / "busy").is_dir()
    release.set()
    worker.join(5)
    files.sweep()  # closed while busy: reclaimed by the idle rule once the response is done
    assert not (files.root / "busy").exists() and not old.exists()


def test_session_names_cannot_escape_the_root(files):
    path = write(files, "../../etc", "view")
    assert files.root in path.parents and ".." not in path.relative_to(files.root).parts
    assert SessionFiles.key(None) == "local" and SessionFiles.key("///") == "local"


def test_a_dead_process_subtree_is_removed_at_start_and_a_live_one_kept(tmp_path):
    root = tmp_path / "sessions"
    dead = root / "p999999999" / "s" / "view-1"
    live = root / f"p{os.getppid()}" / "s" / "view-1"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "chair.glb").write_bytes(b"x")
    SessionFiles(root)
    assert not dead.parent.parent.exists() and live.is_dir()


def test_the_sweeper_thread_runs(tmp_path):
    store = SessionFiles(tmp_path, grace_s=0, idle_s=0)
    path = write(store, "a", "view")
    store.start(period=0.05)
    try:
        for _ in range(100):
            if not path.exists():
                break
            threading.Event().wait(0.05)
    finally:
        store.stop()
    assert not path.exists()
