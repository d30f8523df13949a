"""Verification of downloads: size and hashes against the manifest or the pinned checksums.

Most upstream files publish no checksum. For those, the SHA-256 seen at the first download is
pinned in `<root>/checksums.json` and every later download of that source must match it, so
a data set that changes upstream stops the run instead of silently changing the results.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
from pathlib import Path

from read_clip.data.manifest import Source
from read_clip.io import write_json

log = logging.getLogger(__name__)

CHUNK_BYTES = 8 * 1024 * 1024


class ChecksumError(ValueError):
    """A download whose size or hash differs from the expected one."""


class ChecksumRecord:
    """The pinned SHA-256 and size of each source without a published checksum.

    The file maps a source name to {"sha256", "size", "url", "pinned"}. Parallel download jobs
    share it, so every update holds an exclusive lock and replaces the file atomically.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ChecksumError(f"{self.path} is not valid JSON ({error}); restore it from a backup or "
                                "delete it to pin every checksum again at the next download") from error

    def get(self, name: str) -> dict | None:
        return self.read().get(name)

    def pin(self, source: Source, sha256: str, size: int) -> None:
        """Store the hash of the first download of `source`; later calls must pass the same hash."""
        with self._locked():
            pinned = self.read()
            entry = pinned.get(source.name)
            if entry is not None:
                if entry["sha256"] != sha256:
                    raise ChecksumError(f"{source.name}: sha256 {sha256} differs from the pinned {entry['sha256']}")
                return
            pinned[source.name] = {
                "sha256": sha256,
                "size": size,
                "url": source.url or f"gdrive:{source.gdrive_id}",
                "pinned": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            write_json(self.path, dict(sorted(pinned.items())))
        log.info("%s: pinned sha256 %s (%d bytes) in %s", source.name, sha256, size, self.path)

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def file_digests(path: Path) -> tuple[str, str]:
    """SHA-256 and MD5 of a file, read once in 8 MiB chunks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def verify_file(path: Path, source: Source, record: ChecksumRecord, delete_on_failure: bool = False) -> str:
    """Check `path` against the expected size and hashes of `source`; return its SHA-256.

    The expected values come from the manifest when published, else from the pinned record. A
    source with no published SHA-256 and no pin yet gets its hash pinned here. On a mismatch
    the file is deleted when `delete_on_failure` is set, and the ChecksumError message names the fix.
    """
    try:
        return _verify(path, source, record)
    except ChecksumError as error:
        if delete_on_failure:
            path.unlink(missing_ok=True)
            raise ChecksumError(f"{error}. The download {path} was deleted.") from None
        raise


def _verify(path: Path, source: Source, record: ChecksumRecord) -> str:
    pinned = None if source.sha256 else record.get(source.name)
    size = path.stat().st_size
    expected_size = source.size if source.size is not None else (pinned or {}).get("size")
    if expected_size is not None and size != expected_size:
        raise ChecksumError(f"{source.name}: {path} has {size} bytes, expected {expected_size}; "
                            "rerun to download it again")

    sha256, md5 = file_digests(path)
    if source.sha256 is not None and sha256 != source.sha256:
        raise ChecksumError(
            f"{source.name}: {path} has sha256 {sha256}, but the manifest expects {source.sha256}. "
            "Rerun to download it again; if the upstream file changed on purpose, update sha256 in the manifest")
    if source.md5 is not None and md5 != source.md5:
        raise ChecksumError(f"{source.name}: {path} has md5 {md5}, but the manifest expects {source.md5}; "
                            "rerun to download it again")
    if pinned is not None and sha256 != pinned["sha256"]:
        raise ChecksumError(
            f"{source.name}: {path} has sha256 {sha256}, but {record.path} pinned {pinned['sha256']} at the "
            f"first download ({pinned['pinned']}). Either the upstream file changed or the download is corrupt. "
            f"Rerun to download it again; to accept the new file, delete the {source.name!r} entry of "
            f"{record.path}, and say so where you report results")
    if source.sha256 is None and pinned is None:
        record.pin(source, sha256, size)
    return sha256
