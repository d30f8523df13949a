"""Installing a verified download under the data root: unpack an archive or copy a plain file.

Everything is first unpacked into a staging folder beside its destination (same file system),
then each entry listed in the source's `provides` is renamed into place. An interrupted
install therefore leaves only the staging folder, which the next attempt removes; it never
leaves a half-extracted image folder under its final name.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from tqdm import tqdm

from read_clip.data.manifest import Source

log = logging.getLogger(__name__)


class InstallError(RuntimeError):
    """An archive that cannot be unpacked or lacks the entries its manifest entry lists."""


def check_free_space(folder: Path, needed: int, task: str) -> None:
    """Raise when the file system of `folder` has less than `needed` bytes free for `task`."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise InstallError(f"{task} needs {needed / 1e9:.1f} GB but {folder} has {free / 1e9:.1f} GB free; "
                           "free some space or point data.root (or data.downloads) at a larger disk")


def install(source: Source, download: Path, root: Path) -> int:
    """Unpack or copy `download` into `<root>/<source.into>/`; return the number of files installed."""
    target = root / source.into
    staging = target / f".staging-{source.name}"
    if staging.exists():
        log.info("%s: removing %s left by an interrupted install", source.name, staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)

    try:
        if source.kind == "file":
            shutil.copyfile(download, staging / source.provides[0])
        elif source.kind == "zip":
            _extract_zip(download, staging, source.members)
        else:
            _extract_tar(download, staging, source.members)
        files = _move_into_place(source, staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files


def _extract_zip(archive: Path, staging: Path, members: tuple[str, ...] | None) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = _select(zf.infolist(), members, lambda info: info.filename.rstrip("/"), archive)
            check_free_space(staging, sum(info.file_size for info in infos), f"unpacking {archive.name}")
            # ZipFile.extract drops absolute prefixes and '..' from member names, so nothing lands
            # outside `staging`.
            for info in tqdm(infos, desc=f"unpack {archive.name}", unit="file", mininterval=30):
                zf.extract(info, staging)
    except zipfile.BadZipFile as error:
        raise InstallError(f"{archive}: not a valid zip archive ({error}); delete it and rerun to download it again") from error


def _extract_tar(archive: Path, staging: Path, members: tuple[str, ...] | None) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise InstallError("unpacking tar archives safely needs Python 3.11.4 or newer (tarfile's 'data' filter)")
    try:
        with tarfile.open(archive, "r:*") as tar:
            chosen = _select(tar.getmembers(), members, lambda member: member.name.rstrip("/"), archive)
            check_free_space(staging, sum(member.size for member in chosen), f"unpacking {archive.name}")
            # The "data" filter rejects absolute paths, '..', device files and links that leave `staging`.
            for member in tqdm(chosen, desc=f"unpack {archive.name}", unit="file", mininterval=30):
                tar.extract(member, staging, filter="data")
    except (tarfile.TarError, EOFError) as error:
        raise InstallError(f"{archive}: not a valid tar archive ({error}); delete it and rerun to download it again") from error


def _select(entries: list, members: tuple[str, ...] | None, name_of, archive: Path) -> list:
    """All archive entries, or only the requested members (an error names any that are absent)."""
    if members is None:
        return entries
    by_name = {name_of(entry): entry for entry in entries}
    absent = [name for name in members if name not in by_name]
    if absent:
        raise InstallError(f"{archive}: members {absent} not found in the archive; fix 'members' in the data manifest")
    return [by_name[name] for name in members]


def _move_into_place(source: Source, staging: Path, target: Path) -> int:
    """Rename each provided entry from `staging` into `target`, replacing an older copy.

    Returns the number of files in the provided entries.
    """
    found = sorted(entry.name for entry in staging.iterdir())
    missing = [name for name in source.provides if name not in found]
    if missing:
        raise InstallError(
            f"{source.name}: the download has no {missing} at its top level; it holds {found[:20]}. "
            "Fix 'provides' (or 'into') of this source in the data manifest")
    dropped = [name for name in found if name not in source.provides]
    if dropped:
        log.info("%s: skipping top-level entries the manifest does not list: %s", source.name, dropped)

    files = 0
    for name in source.provides:
        entry = staging / name
        files += sum(1 for path in entry.rglob("*") if path.is_file()) if entry.is_dir() else 1
        destination = target / name
        if destination.is_dir() and not destination.is_symlink():
            log.warning("%s: replacing the existing %s", source.name, destination)
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            log.warning("%s: replacing the existing %s", source.name, destination)
            destination.unlink()
        os.replace(entry, destination)
    return files
