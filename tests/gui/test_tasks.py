"""The task runner (densegui/gui/tasks.py): latest wins, one-line failures, cancel, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from densegui.gui.background import ProcessPool
from densegui.gui.tasks import TaskRunner

TIMEOUT = 30_000


def slow_echo(value, delay, *, cancel, progress):
    progress(("start", value))
    end = time.monotonic() + delay
    while time.monotonic() < end:
        if cancel():
            return ("stopped", value)
        time.sleep(0.005)
    progress(("end", value))
    return value


def boom(*, cancel, progress):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore detail")


def blocked(release, *, cancel, progress):
    release.wait(10)  # ignores cancel: the kind of step a background process is killed for
    return "late"


@pytest.fixture
def runner(qtbot):
    r = TaskRunner(report_cancel=True)
    got = {"done": [], "failed": [], "progress": [], "cancelled": 0}
    r.done.connect(got["done"].append)
    r.failed.connect(got["failed"].append)
    r.progress.connect(got["progress"].append)
    r.cancelled.connect(lambda: got.__setitem__("cancelled", got["cancelled"] + 1))
    r.got = got
    yield r
    r.shutdown()
    assert r.threads_alive() == 0


def test_only_the_latest_task_reaches_the_owner(qtbot, runner):
    runner.start(slow_echo, "old", 0.3)
    qtbot.waitUntil(lambda: runner.got["progress"] == [("start", "old")], timeout=TIMEOUT)
    runner.start(slow_echo, "new", 0.05)
    qtbot.waitUntil(lambda: runner.got["done"] == ["new"], timeout=TIMEOUT)
    qtbot.waitUntil(lambda: runner.threads_alive() == 0, timeout=TIMEOUT)
    qtbot.wait(50)
    assert runner.got["done"] == ["new"]  # the old task's ("stopped", "old") never arrived
    assert ("end", "old") not in runner.got["progress"] and ("end", "new") in runner.got["progress"]
    assert not runner.is_busy() and runner.got["cancelled"] == 0


def test_failure_is_one_line_and_out_of_memory_is_named(qtbot, runner):
    with qtbot.waitSignal(runner.failed, timeout=TIMEOUT):
        runner.start(boom)
    assert runner.got["failed"] == ["out of memory."]


def test_cancel_reports_once_and_drops_the_result(qtbot, runner):
    runner.start(slow_echo, "x", 5.0)
    assert runner.is_busy()
    runner.cancel()
    assert not runner.is_busy() and runner.got["cancelled"] == 1
    qtbot.waitUntil(lambda: runner.threads_alive() == 0, timeout=TIMEOUT)
    qtbot.wait(50)
    assert runner.got["done"] == [] and runner.got["cancelled"] == 1


def test_shutdown_awaits_threads_and_refuses_new_tasks(qtbot, runner):
    release = threading.Event()
    runner.start(blocked, release)
    threading.Timer(0.1, release.set).start()
    runner.shutdown(grace=0.0, timeout=5.0)
    assert runner.threads_alive() == 0
    assert runner.start(slow_echo, "after", 0.0) is None


def spinning_job(*, cancel, progress):
    progress("started")
    while True:  # never checks cancel
        time.sleep(0.01)


def test_shutdown_kills_a_background_job_that_does_not_stop(qtbot):
    pool = ProcessPool({"spin": spinning_job})
    runner = TaskRunner(pool=pool)
    seen = []
    runner.progress.connect(seen.append)
    try:
        runner.start_job("lane", "spin")
        qtbot.waitUntil(lambda: seen == ["started"], timeout=TIMEOUT)
        child = pool.get("lane")._proc
        t0 = time.perf_counter()
        runner.shutdown(grace=0.1)
        assert time.perf_counter() - t0 < 3.0
        assert runner.threads_alive() == 0 and not child.is_alive()
    finally:
        pool.close()


def writing_job(folder, *, cancel, progress):
    """A checkpoint write that hangs half-way, holding its temporary's lock (never checks cancel)."""
    import os
    from pathlib import Path

    from densegui.core.weights.files import _create_temporary

    fd, tmp = _create_temporary(Path(folder) / "run.pt")
    os.write(fd, b"half a checkpoint")
    progress(tmp.name)
    while True:
        time.sleep(0.01)


def test_stopping_many_runners_takes_one_grace_kills_the_stuck_and_cleans_their_temporaries(qtbot, tmp_path):
    """Issue #25: the closing window's runners are stopped at once (one shared grace, not one each);
    the stuck jobs' processes are killed without waiting for them in the caller; once a killed
    job's process has exited its ``after`` runs (here the train panel's: the temporary goes)."""
    from densegui.core.weights.checkpoint import remove_stale_temporaries
    from densegui.gui.tasks import await_runners, stop_runners

    pool = ProcessPool({"spin": spinning_job, "write": writing_job})
    runners = [TaskRunner(pool=pool) for _ in range(3)]
    seen = []
    for r in runners:
        r.progress.connect(seen.append)
    try:
        runners[0].start_job("a", "write", str(tmp_path), after=lambda: remove_stale_temporaries(tmp_path / "run.pt"))
        runners[1].start_job("b", "spin")
        runners[2].start_job("b", "spin")  # waits behind the other for its turn: refused, never started
        qtbot.waitUntil(lambda: len(seen) == 2, timeout=TIMEOUT)
        assert len(list(tmp_path.glob(".run.pt.*.tmp"))) == 1
        children = [pool.get(lane)._proc for lane in "ab"]
        t0 = time.perf_counter()
        left = stop_runners(runners, grace=0.2)
        stopped = time.perf_counter() - t0
        assert stopped < 1.0  # (one grace for all three: the benchmark measures it, this is only a bound)
        assert await_runners(runners, timeout=10.0)
        assert len(left) <= 3 and all(not t.is_alive() for t in left)
        assert not any(c.is_alive() for c in children)
        assert pool.get("b").jobs_run == 1 and pool.get("b").jobs_refused == 1
        assert list(tmp_path.glob(".*.tmp")) == []  # the killed writer's temporary is gone
        assert all(r.start(slow_echo, "after", 0.0) is None for r in runners)
    finally:
        pool.close()
