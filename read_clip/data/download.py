"""The `download` command: fetch one source of the data manifest, verify it, install it.

Steps for one source:

1. Fetch into `<downloads>/<name>/<file>.part` with curl (HTTP, resumed with Range requests) or
   gdown (Google Drive). A broken transfer is resumed from where it stopped on the next attempt.
2. Verify the size and hashes: the manifest's sha256 and md5 when published; otherwise the sha256
   pinned in `<root>/checksums.json` at the first download (written then).
3. Rename the `.part` file onto its final name, so a final name never contains a partial file.
4. Install: unpack the archive (or copy the file) into `<root>/<into>/` (see `unpack.py`), then
   write the install record `<root>/installed/<name>.json`, the workflow's output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from read_clip.data.checksums import ChecksumError, ChecksumRecord, verify_file
from read_clip.data.manifest import (
    MANIFEST_PATH,
    Source,
    checksums_path,
    download_path,
    install_record_path,
    load_manifest,
)
from read_clip.data.unpack import check_free_space, install
from read_clip.io import write_json

log = logging.getLogger(__name__)

# curl exit codes after which the transfer resumes from the bytes already received. They are
# 7 connection failed, 16 HTTP/2 error, 18 partial file, 28 timeout or stalled, 35 TLS connect,
# 52 empty reply, 55 send failure, 56 receive failure and 92 HTTP/2 stream error.
RESUMABLE_CURL_CODES = {7, 16, 18, 28, 35, 52, 55, 56, 92}
# curl exit code when the server ignores the Range header (it sent the whole file again).
CURL_RANGE_NOT_SUPPORTED = 33
# Seconds between progress lines in the log while curl runs (it prints none into a log file).
PROGRESS_INTERVAL = 60.0


class DownloadError(RuntimeError):
    """A source that could not be fetched after every attempt."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="Name of the manifest entry to download.")
    parser.add_argument("--root", required=True, type=Path, help="Data root (config data.root).")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH,
                        help="Data manifest (default: the repository's workflow/data_manifest.yaml).")
    parser.add_argument("--downloads", type=Path, default=None,
                        help="Folder for the downloaded files (default: ROOT/downloads).")
    parser.add_argument("--keep-download", action=argparse.BooleanOptionalAction, default=True,
                        help="Keep the verified download after installing it (default: keep).")
    parser.add_argument("--retries", type=int, default=5,
                        help="Attempts after the first, each resuming the transfer (also curl's --retry).")
    parser.add_argument("--retry-delay", type=float, default=10.0,
                        help="Seconds to wait before each new attempt.")
    parser.add_argument("--from-file", type=Path, default=None,
                        help="Verify and install this local copy instead of fetching (for example a file "
                             "downloaded in a browser when Google Drive rejects gdown).")
    parser.add_argument("--adopt", action="store_true",
                        help="Record an existing copy under ROOT as installed without downloading; "
                             "checks only that the entries the source provides exist.")
    parser.add_argument("--base-url", default=None,
                        help="Replace the scheme and host of the source URL with this one "
                             "(for tests against a local server; never needed for the real sources).")


def main(args: argparse.Namespace) -> int:
    sources = load_manifest(args.manifest)
    if args.source not in sources:
        raise SystemExit(f"source {args.source!r} is not in {args.manifest}; known sources: {', '.join(sources)}")
    source = sources[args.source]
    downloads = args.downloads or args.root / "downloads"
    checksums = ChecksumRecord(checksums_path(args.root))
    record_path = install_record_path(source, args.root)

    if args.adopt:
        write_json(record_path, adopt(source, args.root))
        log.info("%s: recorded the existing copy under %s as installed", source.name, args.root)
        return 0

    if args.from_file is not None:
        archive, sha256 = take_local_copy(source, args.from_file, downloads, checksums)
    else:
        archive, sha256 = fetch_verified(source, downloads, checksums, args.retries, args.retry_delay,
                                         args.base_url)
    files = install(source, archive, args.root)

    record = {
        **source.as_record(),
        "sha256_seen": sha256,
        "installed": source.installed_paths(),
        "files": files,
        "adopted": False,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if not args.keep_download:
        archive.unlink()
        log.info("%s: removed the download %s (--no-keep-download)", source.name, archive)
    write_json(record_path, record)
    log.info("%s: installed %d files into %s", source.name, files, args.root / source.into)
    return 0


def fetch_verified(source: Source, downloads: Path, checksums: ChecksumRecord, retries: int,
                   retry_delay: float, base_url: str | None = None) -> tuple[Path, str]:
    """Return the verified download of `source` and its SHA-256, fetching it unless a verified copy exists."""
    final = download_path(source, downloads)
    if final.exists():
        try:
            sha256 = verify_file(final, source, checksums)
            log.info("%s: reusing the verified download %s", source.name, final)
            return final, sha256
        except ChecksumError as error:
            log.warning("%s: the existing download fails verification, fetching it again: %s", source.name, error)
            final.unlink(missing_ok=True)

    part = final.with_name(final.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    if source.size is not None:
        check_free_space(part.parent, source.size - _size(part), f"downloading {source.name}")
    started = time.monotonic()
    if source.gdrive_id is not None:
        fetch_with_gdown(source.gdrive_id, part, retries, retry_delay)
    else:
        with log_progress(part, source.size):
            fetch_with_curl(resolve_url(source.url, base_url), part, source.size, retries, retry_delay)
    elapsed = time.monotonic() - started
    log.info("%s: fetched %.1f MB in %.0f s", source.name, _size(part) / 1e6, elapsed)

    # verify_file deletes a file that fails, so a bad download is never resumed or reused.
    sha256 = verify_file(part, source, checksums, delete_on_failure=True)
    os.replace(part, final)
    return final, sha256


def take_local_copy(source: Source, local: Path, downloads: Path, checksums: ChecksumRecord) -> tuple[Path, str]:
    """Verify a copy the user fetched by hand and store it as the download of `source`."""
    if not local.is_file():
        raise FileNotFoundError(f"--from-file {local}: no such file")
    final = download_path(source, downloads)
    part = final.with_name(final.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(local, part)
    sha256 = verify_file(part, source, checksums, delete_on_failure=True)
    os.replace(part, final)
    return final, sha256


def adopt(source: Source, root: Path) -> dict:
    """Build the install record of a copy that is already in place under `root`."""
    missing = [path for path in source.installed_paths() if not (root / path).exists()]
    if missing:
        raise FileNotFoundError(
            f"cannot adopt {source.name}: {', '.join(str(root / p) for p in missing)} not found; "
            "run without --adopt to download it")
    return {
        **source.as_record(),
        "sha256_seen": None,
        "installed": source.installed_paths(),
        "files": None,
        "adopted": True,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def log_progress(part: Path, size: int | None, interval: float = PROGRESS_INTERVAL):
    """Log how much of `part` has arrived every `interval` seconds until the block ends."""
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(interval):
            share = f" of {size / 1e6:.1f} MB ({100 * _size(part) / size:.0f}%)" if size else ""
            log.info("%s: %.1f MB%s", part.name, _size(part) / 1e6, share)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def resolve_url(url: str, base_url: str | None) -> str:
    """`url` with its scheme and host replaced by those of `base_url` (tests only)."""
    if base_url is None:
        return url
    base = urlsplit(base_url)
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


def curl_command(url: str, part: Path, retries: int, retry_delay: float) -> list[str]:
    """The curl call for one attempt: resume at the end of `part`, retry transient HTTP errors.

    `--retry-all-errors` is left out on purpose: curl 7.88 restarts a retried transfer at the
    offset the call began with and drops what the failed try received. A broken transfer
    instead ends the call, and the next attempt resumes at the current end of `part`.
    """
    progress = ["--progress-bar"] if sys.stderr.isatty() else ["--silent", "--show-error"]
    return [
        "curl", "--fail", "--location", "--continue-at", "-",
        "--retry", str(retries), "--retry-connrefused", "--retry-delay", str(max(1, round(retry_delay))),
        "--connect-timeout", "60",
        # A transfer slower than 1 kB/s for 2 minutes counts as stalled (exit 28) and is resumed.
        "--speed-limit", "1024", "--speed-time", "120",
        *progress, "--write-out", "%{http_code}", "--output", str(part), url,
    ]


def fetch_with_curl(url: str, part: Path, size: int | None, retries: int, retry_delay: float) -> None:
    """Fetch `url` into `part`, resuming after broken transfers, `retries` times at most."""
    if shutil.which("curl") is None:
        raise DownloadError("curl not found on PATH; install curl (for example apt-get install curl)")
    for attempt in range(1, retries + 2):
        if size is not None and _size(part) == size:
            log.info("%s already contains all %d bytes", part, size)
            return
        if size is not None and _size(part) > size:
            log.warning("%s is larger than the expected %d bytes; starting over", part, size)
            part.unlink()
        if _size(part):
            log.info("resuming %s at byte %d (attempt %d)", url, _size(part), attempt)
        else:
            log.info("fetching %s (attempt %d)", url, attempt)

        result = subprocess.run(curl_command(url, part, retries, retry_delay),
                                stdout=subprocess.PIPE, text=True)
        status = result.stdout.strip()
        if result.returncode == 0:
            return
        if status == "416" or result.returncode == CURL_RANGE_NOT_SUPPORTED:
            # The server rejects the resume offset or ignores Range: only a fresh start works.
            log.warning("%s: server cannot resume at byte %d (HTTP %s, curl exit %d); starting over",
                        url, _size(part), status, result.returncode)
            part.unlink(missing_ok=True)
        elif result.returncode not in RESUMABLE_CURL_CODES:
            resume_hint = f" The partial file {part} is kept, and a rerun resumes it." if _size(part) else ""
            response = f"HTTP status {status}" if status not in ("", "000") else "no HTTP response"
            raise DownloadError(f"curl failed on {url} with exit code {result.returncode} ({response}); "
                                f"see curl's message above.{resume_hint}")
        else:
            log.warning("%s: transfer broken at byte %d (curl exit %d)", url, _size(part), result.returncode)
        if attempt <= retries:
            time.sleep(retry_delay)
    raise DownloadError(f"gave up on {url} after {retries + 1} attempts; {part} keeps "
                        f"{_size(part)} bytes, and a rerun resumes from there")


def fetch_with_gdown(file_id: str, part: Path, retries: int, retry_delay: float) -> None:
    """Fetch a Google Drive file into `part` with gdown, which handles Drive's confirmation page.

    NOTE: gdown is not in requirements.lock yet, and this path has never run against Google Drive
    from the development machines. gdown keeps its own partial file beside `part` and resumes it
    with --continue.
    """
    gdown = shutil.which("gdown")
    if gdown is None:
        raise DownloadError(
            f"gdown is needed for Google Drive file {file_id} but is not installed; run "
            f"`pip install gdown`, or open https://drive.google.com/uc?id={file_id} in a browser and "
            "install the file with `read-clip download --source NAME --root ROOT --from-file FILE`")
    quiet = [] if sys.stderr.isatty() else ["--quiet"]
    for attempt in range(1, retries + 2):
        log.info("fetching Google Drive file %s (attempt %d)", file_id, attempt)
        result = subprocess.run([gdown, "--continue", *quiet, "--output", str(part), file_id])
        if result.returncode == 0 and part.exists():
            return
        log.warning("gdown exited with %d for %s", result.returncode, file_id)
        if attempt <= retries:
            time.sleep(retry_delay)
    raise DownloadError(
        f"gdown could not fetch Google Drive file {file_id} after {retries + 1} attempts. Drive "
        f"limits downloads of popular files; try later, or open https://drive.google.com/uc?id={file_id} "
        "in a browser and install the file with `read-clip download --source NAME --root ROOT --from-file FILE`")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
