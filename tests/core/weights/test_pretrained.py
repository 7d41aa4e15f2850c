"""Published ImageNet DenseNets (core/weights/pretrained.py): the table against torchvision, and downloads
from a loopback HTTP server (never the internet) into a torch hub cache under tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch.hub
from helpers.corpus import SMALL_BASIC, known_state_dict, to_legacy
from helpers.libraries import torchvision_models

from densegui.core.weights import pretrained
from densegui.core.weights.checkpoint import load_checkpoint
from densegui.core.errors import DenseguiError
from densegui.core.weights.pretrained import PRETRAINED, DownloadCancelled, PretrainedError, pretrained_path


def _tiny_file() -> tuple[str, bytes]:
    """A torchvision-style (legacy keys) state_dict of a tiny imagenet-stem DenseNet, named as
    torchvision names its files: ``<name>-<first 8 hex digits of its SHA-256>.pth``."""
    buf = io.BytesIO()
    torch.save(to_legacy(known_state_dict(SMALL_BASIC)), buf)
    data = buf.getvalue()
    return f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth", data


TINY_NAME, TINY = _tiny_file()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.requests.append(self.path)
        name = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
        if name not in server.files:
            self.send_error(404, "Not Found")
            return
        data, mode = server.files[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "cut":  # half the body, then the connection closes
            self.wfile.write(data[: len(data) // 2])
        elif mode == "stall":  # some of it, then nothing until the test ends
            self.wfile.write(data[:1000])
            self.wfile.flush()
            server.release.wait(10)
        elif mode == "slow":  # in small pieces, so a cancel lands mid-body
            for i in range(0, len(data), 4096):
                self.wfile.write(data[i:i + 4096])
                self.wfile.flush()
                time.sleep(0.002)
        else:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(monkeypatch, tmp_path):
    """A loopback server of ``server.files`` ({name: (bytes, mode)}) as DENSEGUI_WEIGHTS_URL, a hub
    cache in tmp_path, and densenet121's table entry swapped for the tiny file."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests, httpd.files, httpd.release = [], {TINY_NAME: (TINY, "ok")}, threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv(pretrained.ENV_BASE_URL, f"http://127.0.0.1:{httpd.server_address[1]}/models/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setitem(PRETRAINED, "densenet121", dataclasses.replace(PRETRAINED["densenet121"], file=TINY_NAME))
    httpd.cache = tmp_path / "hub" / "checkpoints"
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    assert torch.hub.urlopen is urllib.request.urlopen  # the hook is gone


def _one_line_error(exc_info, *parts: str) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text.endswith("."), text
    for part in parts:
        assert part in text, text
    return text


def _cache_files(server) -> list[str]:
    return sorted(p.name for p in server.cache.iterdir()) if server.cache.exists() else []


def test_download_once_then_cached_and_loadable(server):
    reports = []
    path = pretrained_path("densenet121", progress=lambda f, n: reports.append((f, n)))
    assert path == server.cache / TINY_NAME and path.read_bytes() == TINY
    assert server.requests == [f"/models/{TINY_NAME}"]
    assert reports[-1] == (1.0, len(TINY)) and all(0 <= f <= 1 for f, _ in reports)
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)
    loaded = load_checkpoint(path)
    assert loaded.config.growth_rate == SMALL_BASIC.growth_rate
    assert loaded.config.block_depths == SMALL_BASIC.block_depths

    again = []
    assert pretrained_path("DenseNet121", progress=lambda f, n: again.append((f, n)), cancel=lambda: True) == path
    assert len(server.requests) == 1  # no network at all
    assert again == [(1.0, len(TINY))]
    assert _cache_files(server) == [TINY_NAME]


def test_job_returns_the_path_and_reports_fraction_and_text(server):
    from densegui.gui.background import JobCancelled
    from densegui.gui.jobs import JOBS

    reports = []
    path = JOBS["download_pretrained"]("densenet121", cancel=lambda: False, progress=reports.append)
    assert path == str(server.cache / TINY_NAME)
    assert reports[-1][0] == 1.0 and reports[-1][1].startswith("downloading densenet121: ")
    (server.cache / TINY_NAME).unlink()
    with pytest.raises(JobCancelled, match="cancelled"):
        JOBS["download_pretrained"]("densenet121", cancel=lambda: True, progress=reports.append)
    assert _cache_files(server) == []


def test_wrong_hash_keeps_nothing(server, monkeypatch):
    bad = "tinynet-00000000.pth"
    server.files[bad] = (TINY, "ok")
    monkeypatch.setitem(PRETRAINED, "densenet121", dataclasses.replace(PRETRAINED["densenet121"], file=bad))
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet121")
    _one_line_error(exc_info, f"the download of {bad} does not match its published hash 00000000",
                    f"its SHA-256 starts {TINY_NAME[8:16]}", "nothing was kept")
    assert _cache_files(server) == []


def test_http_error_names_the_status(server):
    del server.files[TINY_NAME]
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet121")
    _one_line_error(exc_info, f"could not download {TINY_NAME}", "HTTP 404 Not Found")
    assert _cache_files(server) == []


def test_connection_closed_mid_body_keeps_nothing(server):
    server.files[TINY_NAME] = (TINY, "cut")
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet121")
    _one_line_error(exc_info, f"the download of {TINY_NAME} was interrupted", "the server closed the connection",
                    "nothing was kept")
    assert _cache_files(server) == []


def test_stalled_server_times_out_and_keeps_nothing(server):
    server.files[TINY_NAME] = (TINY, "stall")
    start = time.monotonic()
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet121", timeout=0.3)
    assert time.monotonic() - start < 5
    _one_line_error(exc_info, "was interrupted after 1000 B", "sent nothing for 0.3 s")
    assert _cache_files(server) == []


def test_connection_refused_names_the_host(server, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens there
    monkeypatch.setenv(pretrained.ENV_BASE_URL, f"http://127.0.0.1:{port}/models")
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet121")
    _one_line_error(exc_info, f"could not download {TINY_NAME}: 127.0.0.1:{port} refused the connection",
                    pretrained.ENV_BASE_URL)
    assert _cache_files(server) == []


def test_unresolvable_host_says_offline():
    reason = socket.gaierror(-3, "Temporary failure in name resolution")
    text = str(pretrained._unreachable("x.pth", "download.pytorch.org", reason, 30))
    assert text == ("could not download x.pth: cannot resolve download.pytorch.org (offline?); "
                    "check the network or DENSEGUI_WEIGHTS_URL.")


def test_cancel_mid_download_keeps_nothing(server):
    server.files[TINY_NAME] = (TINY, "slow")
    reports = []
    with pytest.raises(DownloadCancelled) as exc_info:
        pretrained_path("densenet121", progress=lambda f, n: reports.append(n), cancel=lambda: bool(reports))
    assert not isinstance(exc_info.value, PretrainedError) and isinstance(exc_info.value, DenseguiError)
    _one_line_error(exc_info, f"the download of {TINY_NAME} was cancelled; nothing was kept")
    assert 0 < reports[-1] < len(TINY)
    assert _cache_files(server) == []


def test_unknown_name_lists_the_valid_ones(server):
    with pytest.raises(PretrainedError) as exc_info:
        pretrained_path("densenet264")
    assert str(exc_info.value) == ("no published ImageNet weights for 'densenet264'; "
                                   "choose densenet121, densenet161, densenet169 or densenet201.")
    assert server.requests == [] and _cache_files(server) == []


def test_stale_partials_of_killed_downloads_are_removed(server):
    server.cache.mkdir(parents=True)
    stale, fresh = (server.cache / f"{TINY_NAME}.{c * 32}.partial" for c in "ab")
    for p in (stale, fresh):
        p.write_bytes(b"partial")
    old = time.time() - 2 * pretrained.STALE_PARTIAL_S
    os.utime(stale, (old, old))
    pretrained_path("densenet121")
    assert _cache_files(server) == sorted([TINY_NAME, fresh.name])


def test_other_threads_urlopen_is_untouched_during_a_download(server):
    server.files[TINY_NAME] = (TINY, "slow")
    seen = {}

    def other_thread():
        seen["fn"] = torch.hub.urlopen
        with torch.hub.urlopen(f"http://127.0.0.1:{server.server_address[1]}/models/{TINY_NAME}") as r:
            seen["bytes"] = len(r.read())  # the plain response: reads everything at once

    def progress(_f, _n):
        if "thread" not in seen:
            seen["thread"] = threading.Thread(target=other_thread)
            seen["thread"].start()
            seen["thread"].join(5)

    pretrained_path("densenet121", progress=progress)
    assert seen["fn"] is not urllib.request.urlopen and seen["bytes"] == len(TINY)


def test_table_matches_installed_torchvision():
    models = torchvision_models()
    if models is None:
        pytest.skip("torchvision is not installed")
    for name, w in PRETRAINED.items():
        weights = getattr(models, f"DenseNet{name.removeprefix('densenet')}_Weights").IMAGENET1K_V1
        assert w.url == weights.url
        assert w.file == Path(urllib.parse.urlsplit(weights.url).path).name
        assert w.hash_prefix == w.file.split("-")[1][:8] and len(w.hash_prefix) == 8
        meta = weights.meta
        assert (w.params, w.gflops, w.size_mib) == (meta["num_params"], meta["_ops"], meta["_file_size"])
        assert (w.top1, w.top5) == (meta["_metrics"]["ImageNet-1K"]["acc@1"], meta["_metrics"]["ImageNet-1K"]["acc@5"])
