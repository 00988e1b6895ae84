"""Output files: atomic writing (a killed process never leaves a half-written file behind) with the permissions the
user's umask gives, as `open()` would, and one clear line when the disk fills up during a save."""

import contextlib
import errno
import os
import shutil
import stat
import tempfile

from .checkpoints import checkpoint_folders, is_complete_checkpoint

# How a full disk shows through the writers that raise no `OSError`: safetensors' Rust error and torch's zip writer
# (whose "unexpected pos" means that fewer bytes reached the file than were written).
_DISK_FULL_MESSAGES = ("No space left on device", "os error 28")
_TORCH_WRITER_FAILURE = "unexpected pos"
_MIB = 2**20


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


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files)


def _save_size(output_dir: str, model) -> tuple[int, str]:
    """`(bytes, how they were estimated)` that one save needs: the newest complete checkpoint's size, else the
    weights plus two AdamW moments of `model`."""
    for path in checkpoint_folders(output_dir):
        if is_complete_checkpoint(path):
            return _folder_bytes(path), f"the size of {os.path.basename(path)}"
    if model is None:
        return 0, "unknown"
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return 3 * weights, "weights and the optimizer's two moments"


def _is_disk_full(error: BaseException, free: int, needed: int) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    message = str(error)
    if any(text in message for text in _DISK_FULL_MESSAGES):
        return True
    return _TORCH_WRITER_FAILURE in message and free < max(needed, _MIB)


@contextlib.contextmanager
def reporting_a_full_disk(output_dir: str, model=None):
    """Turn the errors a full disk raises inside the block (an `OSError` ENOSPC, safetensors' "os error 28", torch's
    "unexpected pos" with the disk out of room) into one `ValueError` line: where, how much is free, how much a save
    needs. The checkpoint being written is left incomplete, so the newest complete one stays the one a rerun resumes
    from. Any other error passes unchanged."""
    try:
        yield
    except Exception as error:  # safetensors' error is no OSError
        free = shutil.disk_usage(output_dir).free if os.path.isdir(output_dir) else 0
        needed, estimate = _save_size(output_dir, model)
        if not _is_disk_full(error, free, needed):
            raise
        need = f"about {needed / _MIB:.1f} MiB ({estimate})" if needed else "an unknown amount"
        raise ValueError(
            f"The disk holding --output_dir {output_dir} is full ({free / _MIB:.1f} MiB free) while saving; a save "
            f"needs {need}. Free some space or pass another --output_dir, then rerun the same command: it resumes "
            "from the newest complete checkpoint."
        ) from None
