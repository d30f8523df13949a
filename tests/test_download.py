"""download: the real curl path against a loopback server that drops, fails and serves ranges.

The server binds 127.0.0.1 only and is started and stopped by the `server` fixture. It serves
archives built here in the real layouts: a COCO-style zip with a greyscale, a CMYK and a
truncated JPEG, the Karpathy zip, a tar.gz and benchmark JSON files.
"""

import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from read_clip.cli import main
from read_clip.config import REPO_ROOT
from read_clip.data.checksums import ChecksumError
from read_clip.data.download import DownloadError, log_progress
from read_clip.data.manifest import (
    MANIFEST_PATH,
    ManifestError,
    load_manifest,
    sources_for_folder,
    sources_used_by,
)
from read_clip.data.unpack import InstallError

COCO_URL = "http://images.cocodataset.org/zips"


# --- fixture data in the upstream layouts ---------------------------------------------------

def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def coco_train_zip() -> bytes:
    """train2014.zip: an RGB, a greyscale, a CMYK and a truncated JPEG, plus macOS junk."""
    rgb = jpeg_bytes(Image.new("RGB", (48, 32), (200, 30, 30)))
    grey = jpeg_bytes(Image.new("L", (32, 48), 90))
    cmyk = jpeg_bytes(Image.new("CMYK", (40, 40), (0, 255, 255, 0)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train2014/COCO_train2014_000000000001.jpg", rgb)
        zf.writestr("train2014/COCO_train2014_000000000002.jpg", grey)
        zf.writestr("train2014/COCO_train2014_000000000003.jpg", cmyk)
        zf.writestr("train2014/COCO_train2014_000000000004.jpg", rgb[: len(rgb) // 2])
        zf.writestr("__MACOSX/train2014/._COCO_train2014_000000000001.jpg", b"junk")
    return buffer.getvalue()


def karpathy_zip() -> bytes:
    images = [
        {"filepath": "train2014", "filename": f"COCO_train2014_{i:012d}.jpg", "cocoid": i,
         "split": "train", "sentences": [{"raw": f"caption {i}", "sentid": 10 * i}]}
        for i in range(1, 5)
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("dataset_coco.json", json.dumps({"images": images, "dataset": "coco"}))
        zf.writestr("dataset_flickr8k.json", json.dumps({"images": []}))
    return buffer.getvalue()


def vg_tar() -> bytes:
    buffer = io.BytesIO()
    payload = jpeg_bytes(Image.new("RGB", (16, 16), (0, 0, 255)))
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("vg_images/2345.jpg")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


SUGARCREPE = json.dumps({"0": {"filename": "000000000001.jpg", "caption": "a red square",
                               "negative_caption": "a blue square"}}).encode()


def entry(name, url, payload, kind, into, provides, sha256=True, **extra):
    """A manifest entry for `payload`; sha256=True publishes its hash, None leaves it to pinning."""
    return {
        "name": name, "url": url, "size": len(payload), "kind": kind, "into": into,
        "sha256": hashlib.sha256(payload).hexdigest() if sha256 is True else sha256,
        "provides": provides, "role": "images", "used_by": ["training"], "licence": "test", **extra,
    }


@pytest.fixture(scope="module")
def payloads():
    return {
        "/zips/train2014.zip": coco_train_zip(),
        "/people/karpathy/deepimagesent/caption_datasets.zip": karpathy_zip(),
        "/whatsup/vg_images.tar.gz": vg_tar(),
        "/RAIVNLab/sugar-crepe/main/data/add_att.json": SUGARCREPE,
    }


@pytest.fixture
def manifest(tmp_path, payloads):
    entries = [
        entry("coco_train2014", f"{COCO_URL}/train2014.zip", payloads["/zips/train2014.zip"], "zip",
              "coco", ["train2014"], sha256=None, karpathy_splits=["train"]),
        entry("karpathy_split", "http://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
              payloads["/people/karpathy/deepimagesent/caption_datasets.zip"], "zip", "coco", ["dataset_coco.json"],
              members=["dataset_coco.json"]),
        entry("whatsup_vg_images", "https://example.org/whatsup/vg_images.tar.gz",
              payloads["/whatsup/vg_images.tar.gz"], "tar.gz", "whatsup", ["vg_images"]),
        entry("sugarcrepe_add_att", "https://raw.githubusercontent.com/RAIVNLab/sugar-crepe/main/data/add_att.json",
              SUGARCREPE, "file", "sugarcrepe", ["add_att.json"]),
        {**entry("whatsup_coco_qa_one_obj", None, b"", "file", "whatsup", ["coco_qa_one_obj.json"], sha256=None),
         "url": None, "gdrive_id": "1RsMdpE9mmwnK4zzMPpC1-wTU_hNis-dq", "file": "coco_qa_one_obj.json",
         "size": None},
    ]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"sources": entries}, sort_keys=False))
    return path


# --- loopback server with Range support and scripted faults ----------------------------------

class RangeServer(http.server.ThreadingHTTPServer):
    """Serves `payloads` by URL path, honours `Range: bytes=N-`, and plays `faults` per path.

    A fault is consumed by one request: ("drop", n) sends the headers of the full response and
    n bytes of the body, then closes the connection; ("status", code) answers with that code;
    ("no_range",) ignores the Range header and sends the whole file with status 200.
    """

    def __init__(self, payloads):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.payloads = dict(payloads)
        self.faults: dict[str, list] = {}
        self.requests: list[tuple[str, str | None]] = []

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        path = self.path.split("?")[0]
        server.requests.append((path, self.headers.get("Range")))
        fault = server.faults.get(path, []).pop(0) if server.faults.get(path) else None
        if path not in server.payloads or (fault and fault[0] == "status"):
            code = fault[1] if fault else 404
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return

        body = server.payloads[path]
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if fault and fault[0] == "no_range":
            start = 0
        if start >= len(body) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if fault and fault[0] == "drop":
            self.wfile.write(body[start:start + fault[1]])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server(payloads):
    httpd = RangeServer(payloads)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def download(manifest, root, server, source, *extra):
    return main(["download", "--source", source, "--root", str(root), "--manifest", str(manifest),
                 "--base-url", server.base_url, "--retries", "2", "--retry-delay", "0", *extra])


# --- downloads ---------------------------------------------------------------------------------

def test_clean_download_installs(tmp_path, manifest, server, payloads):
    root = tmp_path / "data"
    assert download(manifest, root, server, "coco_train2014") == 0

    images = sorted(p.name for p in (root / "coco" / "train2014").iterdir())
    assert images == [f"COCO_train2014_{i:012d}.jpg" for i in range(1, 5)]
    assert not (root / "coco" / "__MACOSX").exists()
    assert not (root / "coco" / ".staging-coco_train2014").exists()
    archive = root / "downloads" / "coco_train2014" / "train2014.zip"
    assert archive.read_bytes() == payloads["/zips/train2014.zip"]
    assert not archive.with_name("train2014.zip.part").exists()
    record = json.loads((root / "installed" / "coco_train2014.json").read_text())
    assert record["files"] == 4
    assert record["sha256_seen"] == hashlib.sha256(payloads["/zips/train2014.zip"]).hexdigest()
    assert server.requests == [("/zips/train2014.zip", None)]


def test_unpublished_checksum_pinned(tmp_path, manifest, server, payloads):
    root = tmp_path / "data"
    download(manifest, root, server, "coco_train2014")
    pinned = json.loads((root / "checksums.json").read_text())
    assert pinned["coco_train2014"]["sha256"] == hashlib.sha256(payloads["/zips/train2014.zip"]).hexdigest()
    assert pinned["coco_train2014"]["size"] == len(payloads["/zips/train2014.zip"])


def test_dropped_transfer_resumed(tmp_path, manifest, server, payloads):
    root = tmp_path / "data"
    server.faults["/zips/train2014.zip"] = [("drop", 1000)]
    assert download(manifest, root, server, "coco_train2014") == 0

    archive = root / "downloads" / "coco_train2014" / "train2014.zip"
    assert archive.read_bytes() == payloads["/zips/train2014.zip"]
    assert server.requests == [("/zips/train2014.zip", None), ("/zips/train2014.zip", "bytes=1000-")]


def test_killed_download_resumed(tmp_path, manifest, server, payloads):
    """A .part left by a killed run is continued with a Range request, not fetched again."""
    root = tmp_path / "data"
    body = payloads["/zips/train2014.zip"]
    part = root / "downloads" / "coco_train2014" / "train2014.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:700])
    assert download(manifest, root, server, "coco_train2014") == 0
    assert server.requests == [("/zips/train2014.zip", "bytes=700-")]
    assert (root / "downloads" / "coco_train2014" / "train2014.zip").read_bytes() == body


def test_resume_without_range_support(tmp_path, manifest, server, payloads):
    """A server that ignores Range makes the download start over instead of appending garbage."""
    root = tmp_path / "data"
    body = payloads["/zips/train2014.zip"]
    part = root / "downloads" / "coco_train2014" / "train2014.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:700])
    server.faults["/zips/train2014.zip"] = [("no_range",)]
    assert download(manifest, root, server, "coco_train2014") == 0
    assert (root / "downloads" / "coco_train2014" / "train2014.zip").read_bytes() == body
    assert server.requests == [("/zips/train2014.zip", "bytes=700-"), ("/zips/train2014.zip", None)]


def test_server_error_retried(tmp_path, manifest, server):
    root = tmp_path / "data"
    server.faults["/RAIVNLab/sugar-crepe/main/data/add_att.json"] = [("status", 503)]
    assert download(manifest, root, server, "sugarcrepe_add_att") == 0
    assert (root / "sugarcrepe" / "add_att.json").read_bytes() == SUGARCREPE
    assert len(server.requests) == 2


def test_persistent_error_fails(tmp_path, manifest, server):
    root = tmp_path / "data"
    server.faults["/RAIVNLab/sugar-crepe/main/data/add_att.json"] = [("status", 404)] * 5
    with pytest.raises(DownloadError, match="HTTP status 404"):
        download(manifest, root, server, "sugarcrepe_add_att")
    assert not (root / "installed" / "sugarcrepe_add_att.json").exists()


def test_checksum_mismatch_rejected(tmp_path, manifest, server):
    data = yaml.safe_load(manifest.read_text())
    data["sources"][3]["sha256"] = "0" * 64
    manifest.write_text(yaml.safe_dump(data))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="manifest expects 0000") as error:
        download(manifest, root, server, "sugarcrepe_add_att")
    assert hashlib.sha256(SUGARCREPE).hexdigest() in str(error.value)
    folder = root / "downloads" / "sugarcrepe_add_att"
    assert list(folder.iterdir()) == []
    assert not (root / "sugarcrepe" / "add_att.json").exists()
    assert not (root / "installed" / "sugarcrepe_add_att.json").exists()


def test_changed_upstream_file_rejected(tmp_path, manifest, server, payloads):
    """A source without a published hash must keep the hash pinned at its first download."""
    root = tmp_path / "data"
    download(manifest, root, server, "coco_train2014")
    (root / "installed" / "coco_train2014.json").unlink()
    (root / "downloads" / "coco_train2014" / "train2014.zip").unlink()

    changed = bytearray(payloads["/zips/train2014.zip"])
    changed[-1] ^= 0xFF
    server.payloads["/zips/train2014.zip"] = bytes(changed)
    with pytest.raises(ChecksumError, match="checksums.json pinned"):
        download(manifest, root, server, "coco_train2014")
    assert not (root / "downloads" / "coco_train2014" / "train2014.zip").exists()


def test_verified_download_reused(tmp_path, manifest, server):
    root = tmp_path / "data"
    download(manifest, root, server, "coco_train2014")
    (root / "installed" / "coco_train2014.json").unlink()
    assert download(manifest, root, server, "coco_train2014") == 0
    assert len(server.requests) == 1


def test_download_removed_when_not_kept(tmp_path, manifest, server):
    root = tmp_path / "data"
    download(manifest, root, server, "coco_train2014", "--no-keep-download")
    assert not (root / "downloads" / "coco_train2014" / "train2014.zip").exists()
    assert (root / "coco" / "train2014" / "COCO_train2014_000000000001.jpg").is_file()


def test_zip_members_filtered(tmp_path, manifest, server):
    root = tmp_path / "data"
    download(manifest, root, server, "karpathy_split")
    assert sorted(p.name for p in (root / "coco").iterdir()) == ["dataset_coco.json"]


def test_tar_installed(tmp_path, manifest, server):
    root = tmp_path / "data"
    download(manifest, root, server, "whatsup_vg_images")
    with Image.open(root / "whatsup" / "vg_images" / "2345.jpg") as image:
        assert image.size == (16, 16)


def test_wrong_layout_named(tmp_path, manifest, server):
    data = yaml.safe_load(manifest.read_text())
    data["sources"][0]["provides"] = ["images"]
    manifest.write_text(yaml.safe_dump(data))
    root = tmp_path / "data"
    with pytest.raises(InstallError, match=r"holds \['__MACOSX', 'train2014'\]"):
        download(manifest, root, server, "coco_train2014")
    assert list((root / "coco").iterdir()) == []


def test_existing_copy_replaced(tmp_path, manifest, server):
    root = tmp_path / "data"
    stale = root / "coco" / "train2014" / "stale.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    download(manifest, root, server, "coco_train2014")
    assert not stale.exists()


def test_gdrive_without_gdown(tmp_path, manifest, server, monkeypatch):
    monkeypatch.setattr("read_clip.data.download.shutil.which", lambda name: None)
    with pytest.raises(DownloadError, match="pip install gdown") as error:
        download(manifest, tmp_path / "data", server, "whatsup_coco_qa_one_obj")
    assert "--from-file" in str(error.value)


def test_local_copy_installed(tmp_path, manifest, server):
    local = tmp_path / "coco_qa_one_obj.json"
    local.write_text(json.dumps([[397133, "a dog left of a cat", "a dog right of a cat"]]))
    root = tmp_path / "data"
    assert download(manifest, root, server, "whatsup_coco_qa_one_obj", "--from-file", str(local)) == 0
    assert (root / "whatsup" / "coco_qa_one_obj.json").read_bytes() == local.read_bytes()
    assert "whatsup_coco_qa_one_obj" in json.loads((root / "checksums.json").read_text())
    assert server.requests == []


def test_adopt_existing_copy(tmp_path, manifest, server):
    root = tmp_path / "data"
    (root / "coco" / "train2014").mkdir(parents=True)
    assert download(manifest, root, server, "coco_train2014", "--adopt") == 0
    assert json.loads((root / "installed" / "coco_train2014.json").read_text())["adopted"] is True
    assert server.requests == []


def test_adopt_missing_copy_fails(tmp_path, manifest, server):
    with pytest.raises(FileNotFoundError, match="train2014"):
        download(manifest, tmp_path / "data", server, "coco_train2014", "--adopt")


def test_downloaded_images_prepared(tmp_path, manifest, server):
    """The images of the served COCO zip become RGB shards; the truncated one is reported."""
    root = tmp_path / "data"
    download(manifest, root, server, "karpathy_split")
    download(manifest, root, server, "coco_train2014")
    settings = json.dumps({"seed": 0, "train_splits": ["train"], "max_train_images": None, "image_size": 24})
    out = tmp_path / "shards"
    for shard in range(2):
        assert main(["prepare-images", "shard", "--karpathy", str(root / "coco" / "dataset_coco.json"),
                     "--settings", settings, "--shard", str(shard), "--shards", "2",
                     "--out-images", str(out / f"{shard}.npy"), "--out-index", str(out / f"{shard}.parquet")]) == 0
    assert main(["prepare-images", "report", "--images", str(out / "0.npy"), str(out / "1.npy"),
                 "--indexes", str(out / "0.parquet"), str(out / "1.parquet"), "--out", str(out / "report.json")]) == 0

    first, second = np.load(out / "0.npy"), np.load(out / "1.npy")
    assert first.shape == (2, 24, 24, 3)
    assert second.shape == (1, 24, 24, 3)
    # Red RGB, then grey (equal channels), then CMYK (0, 255, 255, 0) which is red in RGB.
    assert np.abs(first[0, 12, 12].astype(int) - [200, 30, 30]).max() <= 3
    assert len(set(first[1, 12, 12].tolist())) == 1
    assert np.abs(second[0, 12, 12].astype(int) - [255, 0, 0]).max() <= 3
    index = pq.read_table(out / "1.parquet").to_pylist()
    assert [row["row"] for row in index] == [0, -1]
    report = json.loads((out / "report.json").read_text())
    assert report["decoded"] == 3
    assert [image["image_id"] for image in report["corrupt_images"]] == [4]


# --- the real manifest -------------------------------------------------------------------------

def test_manifest_covers_benchmarks():
    sources = load_manifest(MANIFEST_PATH)
    for benchmark in ("sugarcrepe", "sugarcrepe_pp", "whatsup", "valse", "crepe"):
        assert sources_used_by(sources, benchmark, role="annotations"), benchmark
        assert sources_used_by(sources, benchmark, role="images"), benchmark


def test_manifest_annotation_counts():
    sources = load_manifest(MANIFEST_PATH)
    counts = {b: len(sources_used_by(sources, b, role="annotations"))
              for b in ("sugarcrepe", "sugarcrepe_pp", "whatsup", "valse", "crepe")}
    assert counts == {"sugarcrepe": 7, "sugarcrepe_pp": 5, "whatsup": 6, "valse": 11, "crepe": 1}


def test_every_image_root_has_source():
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    sources = load_manifest(MANIFEST_PATH)
    for image_set, folder in config["eval"]["image_roots"].items():
        assert sources_for_folder(sources, folder), image_set


def test_shared_annotation_hashes_match(annotations_dir):
    """The pinned SugarCrepe and VALSE hashes are those of the real upstream files."""
    sources = load_manifest(MANIFEST_PATH)
    for source in sources.values():
        copy = annotations_dir / source.into / source.provides[0]
        if source.kind == "file" and source.sha256 and copy.is_file():
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == source.sha256, source.name
            assert copy.stat().st_size == source.size, source.name


def test_bad_manifest_entry_named(tmp_path):
    bad = tmp_path / "manifest.yaml"
    bad.write_text(yaml.safe_dump({"sources": [
        {"name": "x", "url": "http://example.org/x.zip", "size": 1, "sha256": "abc", "kind": "zip",
         "into": "x", "provides": ["x"], "role": "images", "used_by": ["training"], "licence": "test"}]}))
    with pytest.raises(ManifestError, match=r"sources\[0\] \(x\): sha256"):
        load_manifest(bad)


def test_unsafe_into_rejected(tmp_path):
    bad = tmp_path / "manifest.yaml"
    bad.write_text(yaml.safe_dump({"sources": [
        {"name": "x", "url": "http://example.org/x.zip", "size": None, "sha256": None, "kind": "zip",
         "into": "../outside", "provides": ["x"], "role": "images", "used_by": ["training"], "licence": "test"}]}))
    with pytest.raises(ManifestError, match="into must be a relative folder"):
        load_manifest(bad)


def test_unknown_source_named(tmp_path, manifest):
    with pytest.raises(SystemExit, match="coco_val2099"):
        main(["download", "--source", "coco_val2099", "--root", str(tmp_path), "--manifest", str(manifest)])


def test_real_urls_unchanged():
    """Without --base-url every URL is the real upstream one (tests only ever override it)."""
    sources = load_manifest(MANIFEST_PATH)
    hosts = {Path(s.url.split("://")[1]).parts[0] for s in sources.values() if s.url}
    assert "127.0.0.1" not in hosts
    assert "images.cocodataset.org" in hosts


def test_dry_run_lists_data_jobs():
    """`snakemake -n all` with the recipe config plans one job per source and per image shard."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "all", "--quiet", "rules"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.MULTILINE))
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    assert counts["download_source"] == str(len(load_manifest(MANIFEST_PATH)) - 1)
    assert counts["download_karpathy_split"] == "1"
    assert counts["prepare_images"] == str(config["data"]["image_shards"])
    assert counts["report_prepared_images"] == "1"
    assert counts["report_leakage"] == "1"


def test_progress_logged(tmp_path, caplog):
    part = tmp_path / "big.zip.part"
    part.write_bytes(b"x" * 500_000)
    with caplog.at_level("INFO", logger="read_clip.data.download"):
        with log_progress(part, 1_000_000, interval=0.02):
            time.sleep(0.1)
    assert "big.zip.part: 0.5 MB of 1.0 MB (50%)" in caplog.text
