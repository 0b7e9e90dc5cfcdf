import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from device_sim import spswhar
from device_sim.dataset import DataError
from device_sim.fetch import Source, fetch, locate


def make_archive(nested=False):
    """An sp-sw-har-like archive: a top folder holding DATA/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        rows = "x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label\n" + "".join(
            f"0,0,9.8,0,0,0,{1000 + 10 * i},SEATED\n" for i in range(200)
        )
        zf.writestr("repo-1408d85/DATA/subjects_info.csv", "subject_id,age\ns01,30\n")
        zf.writestr("repo-1408d85/DATA/s01/s01_01_sw.csv", rows)
    if not nested:
        return buf.getvalue()
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("inner.zip", buf.getvalue())
    return outer.getvalue()


@pytest.fixture
def server():
    """A loopback HTTP server serving bytes put in `files`; counts requests."""
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, hits
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_sha256_unpacks_and_caches(server, tmp_path, monkeypatch):
    base, files, hits = server
    archive = make_archive()
    files["/data.zip"] = archive
    digest = hashlib.sha256(archive).hexdigest()
    monkeypatch.setenv("FEDWEAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FEDWEAR_TEST_DATA", raising=False)
    source = Source("sp-sw-har", base + "/data.zip", "FEDWEAR_TEST_DATA", digest)
    root = locate(source, spswhar.data_root, download=True, show_progress=False)
    assert (root / "subjects_info.csv").is_file()
    assert len(spswhar.load(root).devices) == 1
    # second use: from the cache, no request
    again = locate(source, spswhar.data_root, download=True, show_progress=False)
    assert again == root and hits == ["/data.zip"]
    assert not list((tmp_path / "cache").rglob("*.partial"))


def test_checksum_mismatch_is_refused_and_nothing_is_cached(server, tmp_path):
    base, files, _ = server
    files["/data.zip"] = make_archive()
    source = Source("x", base + "/data.zip", "UNUSED", "0" * 64)
    with pytest.raises(DataError, match="does not match the expected"):
        fetch(source, show_progress=False, root=tmp_path)
    assert not (tmp_path / "x" / "unpacked").exists()


def test_unpinned_download_records_its_checksum_for_later(server, tmp_path):
    base, files, _ = server
    archive = make_archive(nested=True)
    files["/data.zip"] = archive
    source = Source("x", base + "/data.zip", "UNUSED")
    unpacked = fetch(source, show_progress=False, root=tmp_path)
    assert (tmp_path / "x" / "sha256").read_text().strip() == hashlib.sha256(archive).hexdigest()
    assert list(unpacked.rglob("subjects_info.csv"))  # the inner archive was unpacked too
    with pytest.raises(DataError, match="cached copy has sha256"):
        fetch(source, sha256="1" * 64, show_progress=False, root=tmp_path)


def test_failed_download_says_so(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DataError, match="download failed"):
        fetch(Source("x", base + "/missing.zip", "UNUSED"), show_progress=False, root=tmp_path)


def test_archive_escaping_the_cache_is_refused(server, tmp_path):
    base, files, _ = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    files["/evil.zip"] = buf.getvalue()
    with pytest.raises(DataError, match="outside the cache"):
        fetch(Source("x", base + "/evil.zip", "UNUSED"), show_progress=False, root=tmp_path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_no_data_and_no_download_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDWEAR_CACHE", str(tmp_path))
    monkeypatch.delenv("FEDWEAR_TEST_DATA", raising=False)
    with pytest.raises(DataError, match="--data PATH.*FEDWEAR_TEST_DATA.*--download"):
        locate(Source("x", "http://127.0.0.1:9/x.zip", "FEDWEAR_TEST_DATA"), spswhar.data_root)
