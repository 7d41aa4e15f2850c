"""The background process (densegui/gui/background.py) and the app's jobs: results, errors,
progress, cancellation, crashes. No Qt here: the process layer is plain Python."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from densegui.core.arch.registry import get_preset
from densegui.core.errors import DenseguiError
from densegui.core.arch.densenet.table import layer_table
from densegui.gui import jobs as app_jobs
from densegui.gui.background import BackgroundProcess, CancelToken, JobCancelled

BIG = get_preset("densenet264").replace(growth_rate=64)  # ≈ 0.5 s of torchinfo at depth 4 on 2 cores


# Test jobs: top-level functions, so the spawned child can import them by reference.
def echo(value, *, cancel, progress):
    return value


def fail(*, cancel, progress):
    raise ValueError("bad value\nsecond line")


def count(n, *, cancel, progress):
    for i in range(n):
        progress(i)
    return n


def spin(*, cancel, progress):
    """Runs until cancelled (reports once so the caller knows it started)."""
    progress("started")
    while not cancel():
        time.sleep(0.005)
    raise JobCancelled("stopped")


def die(*, cancel, progress):
    os._exit(3)


def pid(*, cancel, progress):
    return os.getpid()


TEST_JOBS = {"echo": echo, "fail": fail, "count": count, "spin": spin, "die": die, "pid": pid}


@pytest.fixture(scope="module")
def proc():
    p = BackgroundProcess("test", TEST_JOBS)
    assert p.run("echo", 1) == 1  # started
    yield p
    p.close()


@pytest.fixture(scope="module")
def app_proc():
    p = BackgroundProcess("app-test", app_jobs.JOBS)
    yield p
    p.close()


def run_in_thread(proc, name, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {"progress": []}

    def target():
        try:
            outcome["result"] = proc.run(name, *args, progress=outcome["progress"].append, **kwargs)
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_result_error_and_progress(proc):
    assert proc.run("echo", {"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(DenseguiError) as info:
        proc.run("fail")
    assert str(info.value) == "fail failed: ValueError: bad value"  # one line, the job named
    seen = []
    assert proc.run("count", 5, progress=seen.append) == 5
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(DenseguiError, match="unknown background job"):
        proc.run("nope")


def test_cancel_stops_a_running_job_and_keeps_the_child(proc):
    child = proc.run("pid")
    flag = threading.Event()
    thread, outcome = run_in_thread(proc, "spin", cancel=flag.is_set)
    wait_for(lambda: outcome["progress"] == ["started"])
    t0 = time.perf_counter()
    flag.set()
    thread.join(10)
    assert isinstance(outcome.get("error"), JobCancelled), outcome
    assert time.perf_counter() - t0 < 1.0
    assert proc.run("pid") == child  # the same warm child serves the next job


def test_a_cancel_token_sends_the_stop_request_from_the_cancelling_thread(proc):
    """With a CancelToken the waiting caller is not polling: the stop goes out when cancel() is
    called, and a token cancelled after its job ended never stops the next job."""
    token = CancelToken()
    stopped = proc.jobs_stopped
    thread, outcome = run_in_thread(proc, "spin", cancel=token)
    wait_for(lambda: outcome["progress"] == ["started"])
    token.cancel()
    thread.join(10)
    assert isinstance(outcome.get("error"), JobCancelled) and proc.jobs_stopped == stopped + 1
    late = CancelToken()
    assert proc.run("echo", 5, cancel=late) == 5
    late.cancel()  # after its job: nothing in flight belongs to it
    assert proc.run("count", 3) == 3 and proc.jobs_stopped == stopped + 1


def test_a_job_cancelled_before_its_turn_is_never_sent(proc):
    sent, refused = proc.jobs_run, proc.jobs_refused
    with pytest.raises(JobCancelled):
        proc.run("echo", 1, cancel=lambda: True)
    assert (proc.jobs_run, proc.jobs_refused) == (sent, refused + 1)
    # Queued behind a running job and cancelled while waiting: refused when its turn comes.
    stop_first, stop_second = threading.Event(), threading.Event()
    first, out1 = run_in_thread(proc, "spin", cancel=stop_first.is_set)
    wait_for(lambda: out1["progress"] == ["started"])
    second, out2 = run_in_thread(proc, "echo", 2, cancel=stop_second.is_set)
    stop_second.set()
    stop_first.set()
    first.join(10)
    second.join(10)
    assert isinstance(out2.get("error"), JobCancelled)
    assert proc.jobs_refused == refused + 2


def test_a_crashed_child_gives_one_line_and_the_next_job_gets_a_new_one(proc):
    before = proc.run("pid")
    with pytest.raises(DenseguiError, match="background process stopped"):
        proc.run("die")
    after = proc.run("pid")
    assert after != before


def test_kill_unblocks_the_caller_at_once(proc):
    thread, outcome = run_in_thread(proc, "spin")
    wait_for(lambda: outcome["progress"] == ["started"])
    t0 = time.perf_counter()
    proc.kill()
    thread.join(5)
    assert time.perf_counter() - t0 < 2.0
    assert isinstance(outcome.get("error"), DenseguiError) and "stopped" in str(outcome["error"])
    assert proc.run("echo", 3) == 3


def test_closed_process_refuses_jobs():
    p = BackgroundProcess("closing", TEST_JOBS)
    assert p.run("echo", 1) == 1
    child = p._proc
    p.close()
    assert not child.is_alive()
    with pytest.raises(DenseguiError, match="shut down"):
        p.run("echo", 1)


# ------------------------------------------------------------------ the app's jobs
def test_summary_job_matches_the_layer_table_and_is_cancelled_mid_way(app_proc):
    cfg = get_preset("densenet-bc-100-k12")
    result = app_proc.run("summary", cfg.to_dict(), 2)
    assert result.config == cfg and result.total_params == layer_table(cfg).params
    with pytest.raises(DenseguiError, match="too small"):
        app_proc.run("summary", cfg.replace(input_size=2).to_dict(), 2)
    # Stopped in flight (at its next layer; how fast is measured by benchmarks/ui_latency.py).
    stopped = app_proc.jobs_stopped
    flag = threading.Event()
    sent = app_proc.jobs_run
    thread, outcome = run_in_thread(app_proc, "summary", BIG.to_dict(), 4, cancel=flag.is_set)
    wait_for(lambda: app_proc.jobs_run > sent)
    flag.set()
    thread.join(60)
    assert isinstance(outcome.get("error"), JobCancelled), outcome
    assert app_proc.jobs_stopped == stopped + 1
    assert app_proc.run("summary", cfg.to_dict(), 1).depth == 1  # the child stays and serves the next


def test_load_reuse_job_returns_the_reference_matrices_without_the_weights(app_proc, tmp_path):
    # Imported here, not at the top: the spawned child imports this module for the test jobs above
    # and must not pay for torch.
    from helpers.corpus import SMALL_BC, known_state_dict, write_bad, write_good
    from helpers.reference import naive_matrices

    sd = known_state_dict(SMALL_BC, seed=5)
    path = write_good("state_dict", tmp_path / "a.pt", sd, SMALL_BC)
    fractions = []
    loaded, analysis = app_proc.run("load_reuse", str(path), progress=fractions.append)
    assert loaded.state_dict == {} and Path(loaded.path) == path and loaded.inferred
    assert loaded.config.block_depths == SMALL_BC.block_depths
    assert fractions[-1] == (1.0, "done")
    blocks = analysis.measures["weights"]
    assert all(b.noise is not None for b in blocks)
    for got, want in zip(blocks, naive_matrices(sd), strict=True):
        np.testing.assert_allclose(got.matrix, want, rtol=1e-5, equal_nan=True)
    # Bad and hostile files: one-line messages, nothing executed.
    for name in ("hostile-pickle", "truncated", "missing-classifier"):
        bad, phrase = write_bad(name, tmp_path)
        with pytest.raises(DenseguiError) as info:
            app_proc.run("load_reuse", str(bad))
        assert phrase.lower() in str(info.value).lower() and "\n" not in str(info.value)
    assert not (tmp_path / "MARKER").exists()


def test_devices_job_lists_the_cpu(app_proc):
    devices = app_proc.run("devices")
    assert any(d.id == "cpu" for d in devices)


def _write_fork_jobs(folder) -> None:
    """forkjobs.py in ``folder``: an importable job mapping for a script run in a fresh interpreter."""
    (folder / "forkjobs.py").write_text("def echo(value, *, cancel, progress):\n    return value\n\n"
                                        "JOBS = {'echo': echo}\n")


FORK_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from forkjobs import JOBS
from densegui.gui.background import BackgroundProcess, fork_is_safe

assert fork_is_safe()  # Linux, one thread, neither Qt nor torch loaded: the app's start-up
early = BackgroundProcess("early", JOBS)
early.start(fork=True)
print(early._proc._popen.method, early.run("echo", 5))
import PySide6.QtCore  # noqa: E402,F401
assert not fork_is_safe()
late = BackgroundProcess("late", JOBS)
late.start(fork=True)
print(late._proc._popen.method, late.run("echo", 6))
early.close()
late.close()
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="fork is used on Linux only")
def test_the_first_process_is_forked_only_while_that_is_safe(tmp_path):
    """Forking skips a fresh interpreter (the app's explore lane starts before Qt is loaded);
    once Qt is loaded a child is spawned as always, and both serve jobs."""
    import subprocess
    import sys

    _write_fork_jobs(tmp_path)
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["fork", "5", "spawn", "6"]


ORPHAN_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from forkjobs import JOBS
from densegui.gui.background import BackgroundProcess

p = BackgroundProcess("early", JOBS)
p.start(fork=True)
assert p.run("echo", 1) == 1 and p._proc._popen.method == "fork"
print(p.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="fork is used on Linux only")
def test_a_forked_child_exits_when_the_window_process_dies(tmp_path):
    """A forked child must not keep a copy of the window's end of its pipe: with one, it never
    saw the window die (SIGKILL, a crash) and lived on as an orphan."""
    import signal
    import subprocess
    import sys

    _write_fork_jobs(tmp_path)
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the forked child outlived the window process")
