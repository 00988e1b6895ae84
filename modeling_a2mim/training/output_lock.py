"""One live run per output folder: an `fcntl` lock on `<output_dir>/.a2mim.lock`, held while the run lives."""

import atexit
import fcntl
import os
import socket
import time

LOCK_NAME = ".a2mim.lock"
_held: dict[str, "OutputDirLock"] = {}  # realpath of the output folder -> this process's lock on it


class OutputDirLock:
    """An exclusive `flock` on `<output_dir>/.a2mim.lock`, which holds the owner's pid, host and start time.

    The kernel drops the lock when the owning process dies, so a folder left by a killed run is free again (its stale
    lock file is simply taken over). `release()` (also run at exit) deletes the file and unlocks.
    """

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_NAME)
        os.makedirs(output_dir, exist_ok=True)
        while True:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                raise ValueError(
                    f"--output_dir {output_dir} is in use by another run ({self._holder()}): wait for it to finish, "
                    "or pass another --output_dir."
                ) from None
            try:
                same_file = os.fstat(handle).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # its holder released (deleted) it between our open and flock
                same_file = False
            if same_file:
                break
            os.close(handle)
        os.ftruncate(handle, 0)
        os.write(handle, f"pid {os.getpid()} on host {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self.handle = handle

    def _holder(self) -> str:
        try:
            with open(self.path) as lock_file:
                return lock_file.read().strip() or "holder unknown"
        except OSError:
            return "holder unknown"

    def release(self) -> None:
        if self.handle is None:
            return
        try:
            os.remove(self.path)  # before unlocking: a waiting process then sees a new file, never a deleted one
        except FileNotFoundError:
            pass
        os.close(self.handle)
        self.handle = None
        _held.pop(os.path.realpath(self.output_dir), None)


def lock_output_dir(output_dir: str, main_process: bool = True) -> OutputDirLock | None:
    """Lock `output_dir` for this run, or raise a one-line `ValueError` naming the live run that holds it.

    Only the main process of a multi-process run locks (`main_process`); the other ranks get `None`. A process that
    already holds the folder's lock (e.g. a script's `main` called twice in one process) gets the same lock back.
    """
    if not main_process:
        return None
    key = os.path.realpath(output_dir)
    if key not in _held:
        _held[key] = OutputDirLock(output_dir)
    return _held[key]


@atexit.register
def _release_all() -> None:
    for lock in list(_held.values()):
        lock.release()
