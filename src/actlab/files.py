"""Files actlab writes: whole or not at all, readable as the umask says, and one clear line when the
disk (or a file-size limit) refuses them.

`atomic_write` writes a temporary file beside the target and renames it into place, so a reader,
or a run interrupted at any moment, never sees half a file, and the files written before stay
intact. `mkstemp` creates its file 0600; `file_mode` gives the mode the user's umask allows (0644
under umask 022), so colleagues on a shared machine can read the results. A full disk, a quota or
`ulimit -f` (ENOSPC, EDQUOT, EFBIG) and a read-only or forbidden folder become an `ActlabError`
naming the file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from actlab.errors import ActlabError

_REFUSED = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EFBIG: "the file is larger than the limit allowed (ulimit -f)",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.EISDIR: "a folder of that name is in the way"}


def umask() -> int:
    """The process umask, read from /proc where possible (`os.umask` can only read it by setting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from the umask (0644 under umask 022)."""
    return 0o666 & ~umask()


def write_refused(path: Path, exc: OSError) -> ActlabError | None:
    """One line for a write the system refused (full disk, size limit, permissions), else None."""
    why = _REFUSED.get(exc.errno)
    if why is None:
        return None
    fix = {errno.ENOSPC: "free space", errno.EDQUOT: "free space", errno.EFBIG: "raise the limit",
           errno.EISDIR: "remove that folder or write elsewhere",
           errno.EROFS: "use a writable file system"}.get(exc.errno, "make the folder writable")
    return ActlabError(f"cannot write {path}: {why} ({exc.strerror}); {fix} or choose another folder, then run "
                       f"the same command again: the files written before are intact")


def create_folder(path: Path, fix: str = "choose another folder with --out") -> None:
    """`mkdir -p path`, with one line saying why where the system refuses (a read-only parent, a
    file in the way, a path under /proc)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActlabError(f"cannot create the folder {path} ({exc.strerror or exc}); {fix}") from None


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `path` via a temporary file and a rename, so a reader never sees half a file."""
    tmp = None
    create_folder(path.parent, "choose another folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        refused = write_refused(path, exc)
        if refused is None:
            raise
        raise refused from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
