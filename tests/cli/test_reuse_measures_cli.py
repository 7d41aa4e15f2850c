"""``densegui reuse --measure/--data/--prune-curve/--pretrained``: the JSON shape of every measure on
the shipped checkpoints, the pruning curve, one-line errors (exit 2) and a loopback download."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import torch.hub
from helpers.cli import run
from helpers.corpus import SMALL_BASIC, known_state_dict, to_legacy

from densegui.core.analysis.reuse import MEASURES
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.resources import resource_path
from densegui.core.train.data import load_digits
from densegui.core.weights.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = ("densenet40-digits.pt", "densenet-digits.pt")
FAST = ["--max-images", "60", "--noise-seeds", "1"]
TINY = DenseNetConfig(growth_rate=4, block_depths=(3, 2), compression=0.5, bottleneck=False, init_features=6,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8)



def one_line_error(argv, capsys, *phrases: str) -> str:
    code, out, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "error:" in lines[0], err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert out == ""
    return lines[0]


def tiny_checkpoint(path, cfg: DenseNetConfig = TINY, dataset: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    from densegui.core.arch.densenet.model import build_model

    sd = build_model(cfg).state_dict()
    metadata = {"dataset": load_digits().to_metadata(), "normalize": {"mean": [0.3], "std": [0.4], "scale": 16.0}}
    return save_checkpoint(path, sd, cfg, metadata if dataset else {})


def connected(depths) -> list[list[list[bool]]]:
    """Per block: True where source s feeds target t (layer targets see the sources before them)."""
    return [[[s <= t or t == d for t in range(d + 1)] for s in range(d + 1)] for d in depths]


def check_blocks(blocks: list, measure: str, depths) -> None:
    """Every block: the structural nulls in the matrix, the noise floor and the extra matrices."""
    assert [b["block"] for b in blocks] == list(range(1, len(depths) + 1))
    for b, pattern in zip(blocks, connected(depths)):
        assert b["measure"] == measure
        assert [[v is not None for v in row] for row in b["matrix"]] == pattern
        floor = b["noise_floor"]
        assert floor["kind"] == ("standard-error" if measure in ("activation", "ablation") else "untrained-spread")
        assert [[v is not None for v in row] for row in floor["within_noise"]] == pattern
        assert floor["cells"] == sum(map(sum, pattern))
        if measure == "ablation":
            for extra in ("delta_accuracy", "stderr", "stderr_accuracy"):
                assert [[v is not None for v in row] for row in b[extra]] == pattern
        if measure == "activation":
            assert [[v is not None for v in row] for row in b["stderr"]] == pattern


def check_shape(out: dict, measure: str, depths, images: int | None) -> None:
    assert out["measure"] == measure and out["metric"]
    check_blocks(out["blocks"], measure, depths)
    if images is None:
        assert "data" not in out and "baseline" not in out
    else:
        assert out["data"]["images"] == images and out["data"]["spec"] == "digits"
        assert out["data"]["normalize"]["scale"] == 16.0
    if measure == "ablation":
        base = out["baseline"]
        assert base["images"] == images and 0 <= base["accuracy"] <= 1 and base["loss"] > 0
        assert base["accuracy"] > 0.8  # trained nets
    else:
        assert "baseline" not in out
    assert "agreement" not in out and "prune_curve" not in out


# Ablation of the L=40 net is 273 cuts: ~9 s at one thread (≈2 min at two on a busy 2-core box),
# too slow for this file; its cuts are the same code as the small net's (63 cuts).
@pytest.mark.parametrize("name", SHIPPED)
def test_every_measure_on_the_shipped_checkpoints(name, capsys):
    path = resource_path(name)
    if not path.exists():
        pytest.skip(f"resources/{name} is not available")
    measures = [m for m in MEASURES if not (m == "ablation" and name == "densenet40-digits.pt")]
    depths = None
    for measure in measures:
        data = measure in ("activation", "ablation")
        code, out, err = run(["reuse", str(path), "--measure", measure, "--json", *FAST], capsys)
        assert code == 0, err
        out = json.loads(out)
        depths = depths or out["config"]["block_depths"]
        assert out["inferred"] is False
        check_shape(out, measure, depths, 60 if data else None)
        if data:
            assert "Traceback" not in err and err.strip().splitlines()[-1].endswith("100%")
        else:
            assert err == ""
    assert depths == ([12, 12, 12] if name.startswith("densenet40") else [5, 5, 5])


def test_prune_curve_json_and_text(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    code, out, err = run(["reuse", str(path), "--prune-curve", "--json", "--max-images", "40"], capsys)
    assert code == 0, err
    out = json.loads(out)
    assert out["measure"] == "weights" and out["data"]["images"] == out["baseline"]["images"] == 40
    check_blocks(out["blocks"], "weights", TINY.block_depths)
    assert [a["block"] for a in out["agreement"]] == [1, 2]
    for a in out["agreement"]:
        assert set(a["spearman"]) == {"weights", "bn-weights", "activation"}
        assert all(rho is None or -1 <= rho <= 1 for rho in a["spearman"].values())
    curve = out["prune_curve"]
    assert curve["fractions"] == pytest.approx([i / 10 for i in range(10)])
    assert curve["connections"] == 16 and curve["images"] == 40
    assert set(curve["curves"]) == {*MEASURES, "random"}
    for name, c in curve["curves"].items():
        assert len(c["accuracy"]) == len(c["loss"]) == 10
        assert c["accuracy"][0] == pytest.approx(out["baseline"]["accuracy"])
        if name != "random":
            assert len(c["params_saved"]) == len(c["macs_saved"]) == 10 and c["params_saved"][0] == 0
    assert curve["curves"]["random"]["orders"] == 3
    assert set(out["measures"]) == set(MEASURES)
    for name, blocks in out["measures"].items():
        check_blocks(blocks, name, TINY.block_depths)
    code, text, err = run(["reuse", str(path), "--prune-curve", "--max-images", "40", "--measure", "ablation"],
                          capsys)
    assert code == 0, err
    assert "Rank agreement with ablation" in text and "Pruning curve" in text and "Uncut: held-out loss" in text


# ------------------------------------------------------------------ bad input
def test_data_measure_without_a_recorded_dataset(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "nodata.pt", dataset=False)
    for measure in ("activation", "ablation"):
        one_line_error(["reuse", str(path), "--measure", measure, "--json"], capsys,
                       "needs images", "records no bundled dataset", "--data")
    code, out, _ = run(["reuse", str(path), "--measure", "bn-weights", "--json"], capsys)
    assert code == 0 and "data" not in json.loads(out)  # the weight measures need none


def test_data_that_does_not_fit_the_network(tmp_path, capsys):
    rgb = tiny_checkpoint(tmp_path / "rgb.pt", TINY.replace(in_channels=3), dataset=False)
    one_line_error(["reuse", str(rgb), "--measure", "activation", "--data", "digits", "--json"], capsys,
                   "the data has 1 channel per image, the checkpoint's network takes 3.")
    five = tiny_checkpoint(tmp_path / "five.pt", TINY.replace(num_classes=5), dataset=False)
    one_line_error(["reuse", str(five), "--measure", "ablation", "--data", "digits", "--json"], capsys,
                   "the data has 10 classes, the checkpoint's classifier 5.")
    recorded = tiny_checkpoint(tmp_path / "five-recorded.pt", TINY.replace(num_classes=5))
    one_line_error(["reuse", str(recorded), "--measure", "activation", "--json"], capsys, "10 classes")


def test_unusable_data_folders(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    one_line_error(["reuse", str(path), "--measure", "activation", "--data", "/nonexistent", "--json"], capsys,
                   "'/nonexistent' does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(["reuse", str(path), "--measure", "ablation", "--data", str(tmp_path / "empty"), "--json"],
                   capsys, "cannot tell what dataset")
    one_line_error(["reuse", str(path), "--measure", "activation", "--data", str(path), "--json"], capsys,
                   "is not a folder")


def test_usage_errors(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    one_line_error(["reuse", str(path), "--measure", "gradient", "--json"], capsys, "invalid choice", "gradient")
    for n in ("1", "0", "-3"):
        one_line_error(["reuse", str(path), "--measure", "activation", "--max-images", n, "--json"], capsys,
                       "--max-images must be at least 2")
    one_line_error(["reuse", str(path), "--noise-seeds", "-1", "--json"], capsys, "cannot be negative")
    one_line_error(["reuse", str(path), "--pretrained", "densenet121", "--json"], capsys,
                   "give a CHECKPOINT or --pretrained, not both.")
    one_line_error(["reuse", "--pretrained", "densenet264"], capsys, "invalid choice")


# ------------------------------------------------------------------ --pretrained from a loopback server
def _tiny_file() -> tuple[str, bytes]:
    """A torchvision-style (legacy keys) tiny DenseNet, named ``<name>-<sha256[:8]>.pth`` like torchvision's."""
    buf = io.BytesIO()
    torch.save(to_legacy(known_state_dict(SMALL_BASIC, seed=4)), buf)
    data = buf.getvalue()
    return f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth", data


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        name = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(monkeypatch, tmp_path):
    from densegui.core.weights import pretrained

    name, data = _tiny_file()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests, httpd.files, httpd.tiny = [], {name: data}, name
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv(pretrained.ENV_BASE_URL, f"http://127.0.0.1:{httpd.server_address[1]}/models/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    entry = pretrained.PRETRAINED["densenet121"]
    monkeypatch.setitem(pretrained.PRETRAINED, "densenet121", dataclasses.replace(entry, file=name))
    httpd.use = lambda file: monkeypatch.setitem(pretrained.PRETRAINED, "densenet121",
                                                 dataclasses.replace(entry, file=file))
    httpd.cache = tmp_path / "hub" / "checkpoints"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    assert torch.hub.urlopen is urllib.request.urlopen  # the download's hook is gone


def _cache(server) -> list[str]:
    return sorted(p.name for p in server.cache.iterdir()) if server.cache.exists() else []


def test_pretrained_bn_weights_from_a_loopback_server(server, capsys):
    code, out, err = run(["reuse", "--pretrained", "densenet121", "--json", "--measure", "bn-weights"], capsys)
    assert code == 0, err
    out = json.loads(out)
    assert out["checkpoint"] == str(server.cache / server.tiny)
    assert server.requests == [f"/models/{server.tiny}"] and _cache(server) == [server.tiny]
    assert out["inferred"] is True
    assert out["config"]["growth_rate"] == SMALL_BASIC.growth_rate
    assert out["config"]["block_depths"] == list(SMALL_BASIC.block_depths)
    check_shape(out, "bn-weights", SMALL_BASIC.block_depths, None)
    assert "densenet121" in err and "Traceback" not in err  # progress of the download
    # Cached: a second run does not touch the network.
    code, again, _ = run(["reuse", "--pretrained", "densenet121", "--json", "--measure", "bn-weights"], capsys)
    assert code == 0 and json.loads(again)["blocks"] == out["blocks"]
    assert len(server.requests) == 1


def test_pretrained_wrong_hash_keeps_nothing(server, capsys):
    bad = "tinynet-00000000.pth"
    server.files[bad] = server.files[server.tiny]
    server.use(bad)
    code, out, err = run(["reuse", "--pretrained", "densenet121", "--json", "--measure", "bn-weights"], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    errors = [line for line in lines if "error" in line]
    # One error line; the rest is the download's progress (a line per 10 %, stderr not a terminal).
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    assert all(line.startswith("downloading densenet121: ") for line in lines[:-1]), err
    assert f"the download of {bad} does not match its published hash 00000000" in errors[0]
    assert "nothing was kept" in errors[0]
    assert _cache(server) == []


# ------------------------------------------------------------------ no noise floor
def test_no_noise_seeds_claims_no_cell_within_noise(tmp_path, capsys):
    """``--noise-seeds 0`` measures no untrained net, so there is no floor: no cell of a column with
    several sources may be called within noise, and the text may not say there is no such column."""
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    code, out, err = run(["reuse", str(path), "--noise-seeds", "0", "--json"], capsys)
    assert code == 0, err
    for b in json.loads(out)["blocks"]:
        assert b["noise_floor"]["seeds"] == []
        within, matrix = b["noise_floor"]["within_noise"], b["matrix"]
        for t in range(len(b["targets"])):
            rows = [s for s in range(len(matrix)) if matrix[s][t] is not None]
            if len(rows) >= 2:
                assert not any(within[s][t] is True for s in rows), (b["block"], t)
    code, text, _ = run(["reuse", str(path), "--noise-seeds", "0"], capsys)
    assert code == 0 and "no column with two sources" not in text
