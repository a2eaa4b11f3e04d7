"""One writer per run: a lock on the run's folder for as long as a training writes into it.

The lock is an advisory ``flock`` (POSIX; ``msvcrt.locking`` on Windows) on ``<run>/.lock``, which also holds the
holder's process id and start time. The operating system drops the lock when its process ends, however it ends, so a
lock left by a killed training never blocks the next one: the next one takes it over and says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """Another process is training into the same run folder."""


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class RunLock:
    """``with RunLock(run_dir, name):`` -- refuses with `RunLocked` when another live process holds the run.

    `log` receives the one line said when a lock left by a process that is gone is taken over."""

    def __init__(self, run_dir: str | os.PathLike, name: str, log: Optional[Callable[[str], None]] = print):
        self.path = Path(run_dir) / LOCK_NAME
        self.name, self.log = name, log
        self._fd: Optional[int] = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                holder = _read(fd)
                os.close(fd)
                who = f"process {holder[0]}" if holder else "another process"
                since = f", since {holder[1]}" if holder and len(holder) > 1 else ""
                raise RunLocked(f"run {self.name!r} is being trained by {who}{since} ({self.path.parent}); wait for "
                                f"it to finish, or train under another name")
            # The holder before us may have removed the file between our open and our lock: then we hold a lock on a
            # file nobody else will see. Lock the file the path names now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        before = _read(fd)
        if before and before[0] != str(os.getpid()) and self.log is not None:
            self.log(f"run {self.name!r}: took over the lock left by process {before[0]}, which is no longer running")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:  # an orderly exit leaves no lock file behind; the lock itself goes with the descriptor
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> list:
    """The holder's [pid, 'date time'] as written into the lock file, or [] when it is empty."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 200).decode(errors="replace").strip()
    if not text:
        return []
    pid, _, since = text.partition(" ")
    return [pid, since] if since else [pid]
