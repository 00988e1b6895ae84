"""Output files: atomic writing (a killed process never leaves a half-written file behind) with the permissions the
user's umask gives, as `open()` would."""

import contextlib
import os
import stat
import tempfile


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no portable getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path next to `path`; when the block succeeds the file is moved onto `path` with
    `os.replace` (atomic on POSIX), otherwise it is deleted. The file gets `0o666 & ~umask`, like a file made by
    `open()`, not `mkstemp`'s 0600 (a colleague on a shared cluster could not read it)."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    os.chmod(temporary, 0o666 & ~current_umask())
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)


def share_output_files(output_dir: str | os.PathLike) -> None:
    """Give every file under `output_dir` at least the read/write bits the umask allows (`0o666 & ~umask`), never
    removing any. Called at the end of a run: transformers' `save_pretrained` leaves `model.safetensors` at 0600."""
    allowed = 0o666 & ~current_umask()
    for root, _, files in os.walk(output_dir):
        for name in files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode) and (mode & allowed) != allowed:
                os.chmod(path, stat.S_IMODE(mode) | allowed)
