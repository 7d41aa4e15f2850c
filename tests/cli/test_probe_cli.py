"""``densegui probe`` on the command line."""

from __future__ import annotations

import json

import pytest

import densegui.core.probe.run as probe_mod
from densegui.cli import main
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.table import layer_table
from densegui.core.probe.profiling import quiet_kineto

TINY = ["--stem", "cifar", "--growth-rate", "4", "--blocks", "2,2", "--num-classes", "10", "--input-size", "16",
        "--device", "cpu", "--repeats", "5"]


def test_json_has_the_documented_keys(capsys):
    assert main(["probe", *TINY, "--batch-size", "3", "--mode", "training", "--memory-efficient", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("device", "mode", "batch_size", "median_ms", "p10_ms", "p90_ms", "throughput",
                "peak_memory_bytes", "achieved_tflops"):
        assert key in out, key
    assert out["device"] == "cpu" and out["mode"] == "training" and out["batch_size"] == 3
    assert out["memory_efficient"] is True and out["config"]["memory_efficient"] is True
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", num_classes=10, input_size=16)
    assert out["flops_per_iteration"] == 3 * 2 * layer_table(cfg).macs * 3
    assert out["p10_ms"] <= out["median_ms"] <= out["p90_ms"]


def test_text_output_names_the_conventions(capsys):
    assert main(["probe", *TINY, "--precision", "bf16", "--channels-last"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and "images/s" in out and "resident" in out and "MACs" in out
    assert "bf16" in out and "channels-last" in out and "dense convs" in out


def test_sweep_json_reports_the_limit(capsys, monkeypatch):
    orig = probe_mod._Step.__call__

    def call(self):
        if self.x.shape[0] > 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes.")
        return orig(self)

    monkeypatch.setattr(probe_mod._Step, "__call__", call)
    assert main(["probe", *TINY, "--sweep", "--max-batch", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["batch_size"] for p in out["points"]] == [1, 2]
    assert out["limit_batch"] == 2 and out["stop_reason"] == "out_of_memory"


@pytest.mark.parametrize("flags, needle", [
    (["--device", "tpu"], "no such device"),
    (["--precision", "fp64"], "unsupported precision"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "100000000"], "--batch-size"),
    (["--batch-size", "40000", "--mode", "training", "--input-size", "512"], "refusing to run"),
])
def test_bad_input_is_one_line_exit_2(capsys, flags, needle):
    assert main(["probe", *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_list_devices(capsys):
    assert main(["probe", "--list-devices", "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)
    assert devices[0]["id"] == "cpu"


def test_stderr_is_clean_in_a_real_process():
    # torch's Kineto prints "USDT: ... profiler_start" on fd 2 whenever the profiler runs;
    # the breakdown must not leak that into a user's terminal, while real stderr output survives
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "densegui", "probe", *TINY, "--json"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    assert json.loads(out.stdout)["breakdown"]


def test_quiet_kineto_keeps_other_stderr_lines(capfd):
    import os

    with quiet_kineto():
        os.write(2, b"USDT:2026 x.cpp:52] profiler_start\nsomething real\n")
    assert capfd.readouterr().err == "something real\n"
