"""Output folders that never destroy a user's files.

Every folder obliviate writes (an unlearned model, a benchmark's saved models) is filled in a
temporary sibling and renamed into place when complete, and carries a marker file,
``.obliviate-output``. An existing path is replaced only when it is an empty folder or holds that
marker (an earlier obliviate output), or when the caller passes ``overwrite=True``; a file at the
path is never replaced by a folder. `check_output_dir` applies the same rule before any work
starts, together with a write probe, so a bad ``--out`` fails in a second rather than after
training. Files and folders are created with the permissions the user's umask gives (temporary
files are created 0600/0700 and would otherwise keep that).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from obliviate.errors import OutputError

MARKER = ".obliviate-output"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read is a set-and-restore
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the permissions a plain
    ``open``/``mkdir`` would have had under the current umask: 0666 / 0777 minus the umask."""
    mask = current_umask()
    p = Path(path)
    todo = [p]
    while todo:
        q = todo.pop()
        if q.is_symlink():
            continue
        if q.is_dir():
            os.chmod(q, 0o777 & ~mask)
            todo.extend(q.iterdir())
        else:
            os.chmod(q, (0o777 if os.stat(q).st_mode & stat.S_IXUSR else 0o666) & ~mask)


def swap_into_place(tmp: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rename the finished folder ``tmp`` to ``dest``. An existing ``dest`` (already checked to be
    replaceable by the caller) is first renamed aside to ``.NAME.old`` and removed only after the
    new folder is in place, so at every moment one complete folder exists under one of the names."""
    import shutil

    tmp, dest = Path(tmp), Path(dest)
    if not dest.exists():
        os.replace(tmp, dest)
        return dest
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def save_state_atomic(module, path: str | os.PathLike) -> Path:
    """Save ``module``'s state dict to the safetensors file ``path`` through a temporary sibling and
    a rename, so a killed process never leaves a half-written cache file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def is_obliviate_output(path: str | os.PathLike) -> bool:
    return (Path(path) / MARKER).is_file()


def marker_text() -> str:
    from obliviate import __version__

    return json.dumps({"written_by": f"obliviate {__version__}",
                       "note": "this folder was written by obliviate; a later run may replace it"}) + "\n"


def refusal(path: str | os.PathLike, *, option: str = "output directory") -> str | None:
    """Why ``path`` may not be replaced by a new output (None when it may): it is a file, or a
    non-empty folder without the obliviate marker."""
    p = Path(path)
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        return (f"{option} {p} is a file, not a folder; obliviate will not replace a file with a model "
                "folder. Choose a new folder path.")
    if p.is_dir() and any(p.iterdir()) and not is_obliviate_output(p):
        some = sorted(x.name for x in p.iterdir())[:3]
        return (f"{option} {p} already exists and holds files obliviate did not write ({', '.join(some)}"
                f"{' ...' if len(some) == 3 else ''}); choose a new or empty folder, or pass --overwrite "
                f"(overwrite=True) to replace it and everything in it.")
    return None


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, option: str = "output directory") -> Path:
    """Refuse an output path before any work is done: a file, a foreign non-empty folder (unless
    ``overwrite``), or a place the process cannot write to. Nothing is left behind."""
    p = Path(path)
    why = refusal(p, option=option)
    if why and (not overwrite or not p.is_dir()):
        raise OutputError(why)
    probe_writable(p.parent if str(p.parent) else Path("."), option=option, target=p)
    return p


def probe_writable(folder: Path, *, option: str, target: Path) -> None:
    """Create and remove a temporary folder in ``folder`` (or in its nearest existing ancestor, where
    the missing folders would be made): the one reliable writability test, root included."""
    base = folder
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if base.exists() and not base.is_dir():
        raise OutputError(f"{option} {target}: {base} is a file, so no folder can be made under it")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".obliviate-probe.", dir=base))
    except OSError as e:
        raise OutputError(f"{option} {target}: cannot write in {base} ({e.strerror or e}); choose a folder "
                          "you can write to") from None


def checkpoint_dir_for(out: str | os.PathLike) -> Path:
    """Where a run writing ``out`` keeps its resumable checkpoints: a hidden sibling
    ``.<name>.checkpoints``, outside the folder that is renamed into place at the end, so a killed
    run's checkpoints survive and the same command resumes from them."""
    p = Path(out)
    return p.parent / f".{p.name}.checkpoints"


def check_output_file(path: str | os.PathLike, *, option: str = "output file") -> Path:
    """Refuse a report path that is a folder or sits where nothing can be written, before any work.
    (An existing report file is replaced: reports are regenerated, never hand-edited outputs.)"""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{option} {p} is a folder; give a file path for the report (e.g. {p / 'report.json'})")
    probe_writable(p.parent if str(p.parent) else Path("."), option=option, target=p)
    return p
