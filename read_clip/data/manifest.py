"""The data manifest (`workflow/data_manifest.yaml`): every file the paper recipe downloads.

Each source is one upstream file: where it comes from (a URL or a Google Drive id), what it must
be (size, sha256, md5 where published), what kind of file it is and where its contents go under
the data root. The workflow reads the manifest at parse time to build one download job per
source; the `download` command reads it to fetch, verify and unpack one source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

from read_clip.config import REPO_ROOT

MANIFEST_PATH = REPO_ROOT / "workflow" / "data_manifest.yaml"
KINDS = ("file", "zip", "tar.gz")
ROLES = ("annotations", "images", "weights")
# `used_by` values besides the benchmark names: the training set, and files kept for users
# that no pipeline step reads (the COCO caption annotations), and published model checkpoints.
USERS = ("training", "reference", "checkpoints", "sugarcrepe", "sugarcrepe_pp", "whatsup", "valse", "crepe")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
REQUIRED = ("name", "size", "sha256", "kind", "into", "provides", "role", "used_by", "licence")
OPTIONAL = ("url", "gdrive_id", "file", "md5", "members", "karpathy_splits", "note")


class ManifestError(ValueError):
    """A data manifest entry that is missing a field or has an invalid value."""


@dataclass(frozen=True)
class Source:
    """One downloadable upstream file and where its contents go under the data root.

    `provides` lists the entries (files or folders) that installing the source creates directly
    inside `<root>/<into>/`: the top-level entries of an archive, or the file name of a plain
    file. `members`, when set, restricts extraction to those archive members.
    """

    name: str
    url: str | None
    gdrive_id: str | None
    file: str
    size: int | None
    sha256: str | None
    md5: str | None
    kind: str
    into: str
    provides: tuple[str, ...]
    members: tuple[str, ...] | None
    role: str
    used_by: tuple[str, ...]
    karpathy_splits: tuple[str, ...]
    licence: str
    note: str | None = None

    def installed_paths(self) -> list[str]:
        """Paths, relative to the data root, of the entries installing this source creates."""
        return [f"{self.into}/{entry}" for entry in self.provides]

    def as_record(self) -> dict:
        """The entry as plain data, for the workflow's params and the install record."""
        return {
            "name": self.name, "url": self.url, "gdrive_id": self.gdrive_id, "file": self.file,
            "size": self.size, "sha256": self.sha256, "md5": self.md5, "kind": self.kind,
            "into": self.into, "provides": list(self.provides),
            "members": list(self.members) if self.members is not None else None,
        }


def download_path(source: Source, downloads: str | Path) -> Path:
    """Where the verified download of `source` is kept: `<downloads>/<name>/<file>`."""
    return Path(downloads) / source.name / source.file


def install_record_path(source: Source, root: str | Path) -> Path:
    """The record written once `source` is installed: `<root>/installed/<name>.json`."""
    return Path(root) / "installed" / f"{source.name}.json"


def checksums_path(root: str | Path) -> Path:
    """The pinned checksums of the sources without a published one: `<root>/checksums.json`."""
    return Path(root) / "checksums.json"


def load_manifest(path: str | Path = MANIFEST_PATH) -> dict[str, Source]:
    """Read and check every entry of a manifest file, keyed by source name in file order."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise ManifestError(f"{path}: expected a mapping with a 'sources' list")

    sources: dict[str, Source] = {}
    for index, entry in enumerate(data["sources"]):
        where = f"{path}: sources[{index}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: expected a mapping, got {type(entry).__name__}")
        if isinstance(entry.get("name"), str):
            where = f"{where} ({entry['name']})"
        source = _parse_source(entry, where)
        if source.name in sources:
            raise ManifestError(f"{where}: name {source.name!r} is used twice; names must be unique")
        sources[source.name] = source
    _check_no_overlap(sources.values(), path)
    return sources


def _parse_source(entry: dict, where: str) -> Source:
    missing = [key for key in REQUIRED if key not in entry]
    unknown = [key for key in entry if key not in REQUIRED + OPTIONAL]
    if missing or unknown:
        raise ManifestError(f"{where}: missing fields {missing}, unknown fields {unknown}; "
                            f"an entry has {list(REQUIRED)} and optionally {list(OPTIONAL)}")
    if not NAME_PATTERN.match(str(entry["name"])):
        raise ManifestError(f"{where}: name must match {NAME_PATTERN.pattern} (used in file names)")
    if (entry.get("url") is None) == (entry.get("gdrive_id") is None):
        raise ManifestError(f"{where}: give exactly one of 'url' and 'gdrive_id'")
    _check_choice(entry["kind"], KINDS, "kind", where)
    _check_choice(entry["role"], ROLES, "role", where)
    for user in entry["used_by"]:
        _check_choice(user, USERS, "used_by", where)
    _check_hash(entry["sha256"], HEX64, "sha256", where)
    _check_hash(entry.get("md5"), HEX32, "md5", where)
    if entry["size"] is not None and (not isinstance(entry["size"], int) or entry["size"] < 1):
        raise ManifestError(f"{where}: size must be a positive number of bytes or null, got {entry['size']!r}")
    provides = tuple(entry["provides"])
    if not provides or any(not _is_relative_name(name) for name in provides):
        raise ManifestError(f"{where}: provides must list entry names inside 'into' (no '/', '..' or absolute paths)")
    if entry["kind"] == "file" and len(provides) != 1:
        raise ManifestError(f"{where}: a plain file provides exactly one name, got {list(provides)}")
    if not _is_relative_path(str(entry["into"])):
        raise ManifestError(f"{where}: into must be a relative folder under the data root, got {entry['into']!r}")

    members = entry.get("members")
    return Source(
        name=entry["name"],
        url=entry.get("url"),
        gdrive_id=entry.get("gdrive_id"),
        file=_download_name(entry, where),
        size=entry["size"],
        sha256=entry["sha256"],
        md5=entry.get("md5"),
        kind=entry["kind"],
        into=str(entry["into"]).strip("/"),
        provides=provides,
        members=tuple(members) if members is not None else None,
        role=entry["role"],
        used_by=tuple(entry["used_by"]),
        karpathy_splits=tuple(entry.get("karpathy_splits") or ()),
        licence=str(entry["licence"]),
        note=entry.get("note"),
    )


def _download_name(entry: dict, where: str) -> str:
    """The file name of the download: `file` if given, else the last segment of the URL path."""
    name = entry.get("file")
    if name is None and entry.get("url"):
        name = PurePosixPath(urlsplit(entry["url"]).path).name
    if not name or not _is_relative_name(name):
        raise ManifestError(f"{where}: cannot tell the download's file name; add a 'file' field")
    return name


def _check_choice(value, choices, field: str, where: str) -> None:
    if value not in choices:
        raise ManifestError(f"{where}: {field} {value!r} is not one of {list(choices)}")


def _check_hash(value, pattern: re.Pattern, field: str, where: str) -> None:
    if value is not None and not (isinstance(value, str) and pattern.match(value)):
        raise ManifestError(f"{where}: {field} must be lowercase hex ({pattern.pattern}) or null, got {value!r}")


def _is_relative_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def _is_relative_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts


def _check_no_overlap(sources, path: Path) -> None:
    """Reject two sources that would install the same entry, because one would replace the other."""
    owner: dict[str, str] = {}
    for source in sources:
        for installed in source.installed_paths():
            if installed in owner:
                raise ManifestError(f"{path}: {source.name} and {owner[installed]} both install {installed}")
            owner[installed] = source.name


def sources_used_by(sources: dict[str, Source], user: str, role: str | None = None) -> list[Source]:
    """The sources a benchmark (or "training", "reference") needs, optionally of one role."""
    return [s for s in sources.values() if user in s.used_by and (role is None or s.role == role)]


def sources_for_folder(sources: dict[str, Source], folder: str) -> list[Source]:
    """The image sources that install into `folder` (relative to the data root) or below it.

    An image set of the config names a folder, e.g. `coco/val2017` or `visual_genome`; the
    sources that fill it are those whose installed entries lie inside it or contain it.
    """
    folder_parts = PurePosixPath(folder.strip("/")).parts
    matched = []
    for source in sources.values():
        if source.role != "images":
            continue
        for installed in source.installed_paths():
            parts = PurePosixPath(installed).parts
            shorter = min(len(parts), len(folder_parts))
            if parts[:shorter] == folder_parts[:shorter]:
                matched.append(source)
                break
    return matched


def training_sources(sources: dict[str, Source], splits: list[str]) -> list[Source]:
    """The image sources that hold the images of the given Karpathy splits."""
    return [s for s in sources.values() if set(s.karpathy_splits) & set(splits)]
