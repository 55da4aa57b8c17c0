"""The app's output files (GLBs, thumbnails, GIFs, downloads), one folder per session, on
bounded disk.

Every response writes its files into a fresh folder of one *slot* of its session ("view" for
the viewer's GLB, "gallery", "strip", "export", ...). When the response is ready the folder
becomes that slot's current folder and the one it replaces is *retired*: deleted ``grace_s``
later, which is ample for the browser or gradio_client to fetch it (they do so as soon as
the response arrives). So a session holds its current files and the last few seconds of
superseded ones, never a history of every slider move, and a chair on screen keeps its
file for as long as its session lives.

A session ends when the client says so (`close`, from Gradio's unload) or, because API
clients may never say so, after ``idle_s`` seconds without a request; browser tabs stay
alive with a periodic `touch` (the app's keepalive timer). `sweep` does the deleting and a
daemon thread (`start`) runs it every few seconds. A total above ``max_bytes`` deletes
retired folders at once, oldest first, instead of waiting out their grace.

The folder tree is ``root/p<pid>/<session>/<slot>-<id>/``: one subtree per process, so
apps sharing a cache folder never delete each other's files, and the subtree of a process
that is gone is removed when the next one starts. No Gradio here: the app passes session
ids in and hands the paths to its components.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

GRACE_S = 30.0  # a superseded folder lives this long after its replacement is ready
IDLE_S = 180.0  # a session with no request (or keepalive) for this long is removed
MAX_BYTES = 150_000_000  # above this, retired folders go without waiting out their grace
SWEEP_S = 5.0  # how often the background sweeper runs


def folder_size(folder: str | os.PathLike) -> tuple[int, int]:
    """(bytes, files) under ``folder`` (0, 0 when absent); files vanishing mid-walk are skipped."""
    total = count = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                count += 1
            except OSError:
                pass
    return total, count


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@dataclass
class _Session:
    last_seen: float
    in_flight: int = 0  # responses being written now: never removed under them
    closed: bool = False  # the client left while a response was being written
    current: dict[str, tuple[Path, int]] = field(default_factory=dict)  # slot -> (folder, bytes)
    retired: list[tuple[float, Path, int]] = field(default_factory=list)  # (when, folder, bytes)


class SessionFiles:
    """Per-session output folders with bounded lifetime (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, grace_s: float = GRACE_S, idle_s: float = IDLE_S,
                 max_bytes: int = MAX_BYTES, clock=time.monotonic):
        self.parent = Path(root)
        self.root = self.parent / f"p{os.getpid()}"
        self.grace_s, self.idle_s, self.max_bytes = float(grace_s), float(idle_s), int(max_bytes)
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._remove_dead_processes()

    # ------------------------------------------------------------------ public
    @staticmethod
    def key(session: str | None) -> str:
        """A session id as a folder name (Gradio's session hashes are already safe)."""
        safe = "".join(c for c in str(session or "local") if c.isalnum() or c in "-_")[:64]
        return safe or "local"

    @contextmanager
    def output(self, session: str | None, slot: str):
        """A new, empty folder for one response's files of ``slot``. When the block ends
        without an error the folder becomes the slot's current one and the previous current
        folder is retired; on an error it is deleted at once."""
        key = self.key(session)
        folder = self.root / key / f"{slot}-{uuid.uuid4().hex[:10]}"
        with self._lock:
            state = self._sessions.setdefault(key, _Session(self._clock()))
            state.last_seen = self._clock()
            state.in_flight += 1
        try:
            folder.mkdir(parents=True)
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                state.in_flight -= 1
            raise
        size = folder_size(folder)[0]
        with self._lock:
            state.in_flight -= 1
            if not state.closed:
                state.last_seen = self._clock()
            old = state.current.get(slot)
            state.current[slot] = (folder, size)
            if old is not None:
                state.retired.append((self._clock(), *old))

    def touch(self, session: str | None) -> None:
        """The session is still in use (a keepalive from an open browser tab)."""
        key = self.key(session)
        with self._lock:
            if key in self._sessions:
                self._sessions[key].last_seen = self._clock()

    def close(self, session: str | None) -> None:
        """The client has gone: remove the session's files now (unless a response is being
        written for it; then the idle rule removes them later)."""
        key = self.key(session)
        with self._lock:  # held while deleting, so no new response of this session starts under it
            state = self._sessions.get(key)
            if state is not None and state.in_flight:
                state.closed = True  # the next sweep after the response removes it
                return
            self._sessions.pop(key, None)
            shutil.rmtree(self.root / key, ignore_errors=True)

    def stats(self) -> dict:
        """Sessions, folders and bytes held now (current and retired)."""
        with self._lock:
            current = sum(size for s in self._sessions.values() for _, size in s.current.values())
            retired = sum(size for s in self._sessions.values() for *_, size in s.retired)
            return {"sessions": len(self._sessions), "current_bytes": current, "retired_bytes": retired,
                    "retired_folders": sum(len(s.retired) for s in self._sessions.values())}

    def sweep(self) -> int:
        """Delete what is due: retired folders past their grace (all retired ones, oldest
        first, while the total is above ``max_bytes``) and idle sessions. Returns the
        number of folders removed."""
        now = self._clock()
        doomed: list[Path] = []
        with self._lock:
            total = sum(size for s in self._sessions.values()
                        for size in [*(c[1] for c in s.current.values()), *(r[2] for r in s.retired)])
            # Oldest first by time alone: the sort is stable, so equal times keep the order in
            # which each session retired them (sorting whole tuples broke ties by folder name).
            retired = sorted(((when, folder, size) for s in self._sessions.values()
                              for when, folder, size in s.retired), key=lambda r: r[0])
            for when, folder, size in retired:
                if now - when >= self.grace_s or total > self.max_bytes:
                    doomed.append(folder)
                    total -= size
            gone = set(doomed)
            ended = 0
            for key, state in list(self._sessions.items()):
                state.retired = [r for r in state.retired if r[1] not in gone]
                if not state.in_flight and (state.closed or now - state.last_seen >= self.idle_s):
                    del self._sessions[key]
                    # under the lock: a new response of this session must not start mid-delete
                    shutil.rmtree(self.root / key, ignore_errors=True)
                    ended += 1
        for folder in doomed:  # superseded folders: nobody writes into them any more
            shutil.rmtree(folder, ignore_errors=True)
        return len(doomed) + ended

    def start(self, period: float = SWEEP_S) -> "SessionFiles":
        """Run `sweep` every ``period`` seconds in a daemon thread (idempotent)."""
        if self._thread is None:
            def loop():
                while not self._stop.wait(period):
                    self.sweep()

            self._thread = threading.Thread(target=loop, name="session-files-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ internals
    def _remove_dead_processes(self) -> None:
        """Subtrees left by app processes that no longer run (killed, crashed)."""
        if not self.parent.is_dir():
            return
        for child in self.parent.iterdir():
            name = child.name
            if child.is_dir() and name.startswith("p") and name[1:].isdigit() and child != self.root:
                if not _pid_alive(int(name[1:])):
                    shutil.rmtree(child, ignore_errors=True)
