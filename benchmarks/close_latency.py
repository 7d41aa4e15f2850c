"""How long closing the window freezes it, and how long until nothing is left running.

Each trial is a fresh window process, built as ``run_app`` builds it (the explore lane started
before Qt, a staged window). Once its panels are built it starts a training run (densenet-40-k12
on the Train tab's default dataset, the digits) and a timing probe of densenet264 (CPU, training
mode, batch 8), then closes the window ``delay`` seconds later from the event loop, as a click on
the close button would, and ends as ``run_app`` ends (``app.finish_app``). A trial also fails on
a temporary left next to the run's checkpoint.

Per trial it reports

* freeze: the longest gap between ticks of a 2 ms timer on the GUI thread from the tick before
  ``close()`` until the event loop returns (``close()`` itself included), as
  benchmarks/ui_latency.py measures stalls;
* loop: from ``close()`` until the event loop has returned (the window is gone);
* gone: from ``close()`` until the window process and every child process it had then
  (grandchildren too; multiprocessing's resource tracker aside) have exited, seen from outside;
* exit: from ``close()`` until the teardown that follows the event loop has returned (the process
  then exits).

Usage: python benchmarks/close_latency.py [--quick] [--repeats N] [--delays 0.05,0.3,...]
       PYTHONPATH=/path/to/older/checkout python benchmarks/close_latency.py   (before/after in one sitting)
Target: freeze <= 0.5 s in every trial; nothing left running.
CPU heavy (each trial imports torch in up to three processes): run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

DELAYS = (0.05, 0.1, 0.3, 0.6, 1.0, 2.0)
TARGET_S = 0.5

TRIAL = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    delay, out = float(sys.argv[1]), sys.argv[2]

    def descendants(pid):
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [pid]
        while todo:
            kids = parents.get(todo.pop(), [])
            found += kids
            todo += kids
        return found

    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return ""

    from densegui.gui import app as app_module
    app_module.prestart_background()
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication
    from densegui.gui.main_window import MainWindow

    try:  # before any Qt call (densegui/gui/__init__.py; older versions did it at import)
        from densegui.gui import guard_refcounts
        guard_refcounts()
    except ImportError:
        pass
    app = QApplication([])
    from densegui.gui.collector import MainThreadCollector
    collector = MainThreadCollector(app)
    collector.start()
    w = MainWindow(settings=None, staged=True)
    w.show()
    end = time.monotonic() + 120
    while not w.panels_built():
        if time.monotonic() > end:
            sys.exit("the panels were not built")
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    clock = QElapsedTimer()
    clock.start()
    ticks = []
    tick = QTimer()
    tick.setTimerType(Qt.TimerType.PreciseTimer)
    tick.setInterval(2)
    tick.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e9))
    marks = {}

    def close():
        tracker = "multiprocessing.resource_tracker import"
        kids = [p for p in descendants(os.getpid()) if tracker not in cmdline(p)[:200]]
        print("CLOSE " + json.dumps({"at": time.time(), "pids": kids}), flush=True)
        marks["close"] = clock.nsecsElapsed() / 1e9
        w.close()
        marks["returned"] = clock.nsecsElapsed() / 1e9

    from densegui.core.arch.registry import get_preset

    w.load_preset("densenet264")
    w.train_panel.set_config(get_preset("densenet-40-k12"))  # (densenet264's stem does not fit the digits)
    w.train_panel.out_edit.setText(out)
    w.train_panel.start()
    probe = w.probe_panel
    probe.device_combo.setCurrentIndex(probe.device_combo.findData("cpu"))
    probe.mode_combo.setCurrentIndex(probe.mode_combo.findData("training"))
    probe.batch_spin.setValue(8)
    probe.start_run()
    if not (w.train_panel.is_running() and probe.is_running()):
        sys.exit("the jobs did not start: " + w.train_panel.error_label.text())
    tick.start()
    QTimer.singleShot(int(delay * 1000), close)
    app.setQuitOnLastWindowClosed(True)
    app.exec()
    loop_end = clock.nsecsElapsed() / 1e9
    tick.stop()
    finish = getattr(app_module, "finish_app", None)
    if finish is not None:
        finish(app, w, collector)
    else:  # (an older checkout: run_app's teardown of then)
        from PySide6.QtCore import QCoreApplication, QEvent
        from densegui.gui.tasks import close_shared_pool
        w.shutdown()
        w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()
        close_shared_pool()
        collector.stop()
    exit_at = clock.nsecsElapsed() / 1e9
    t0 = marks["close"]
    around = [t for t in ticks if t >= t0 - 0.01]
    before = [t for t in ticks if t < t0]
    points = ([before[-1]] if before else []) + [t for t in around if t >= t0] + [loop_end]
    freeze = max(b - a for a, b in zip(points, points[1:]))
    print("RESULT " + json.dumps({
        "delay": delay, "freeze": freeze, "in_close": marks["returned"] - t0, "loop": loop_end - t0,
        "exit": exit_at - t0,
    }))
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # (a zombie has exited)


def trial(delay: float, workdir: str) -> dict:
    """One window process; from outside it: when it and every child it had at close() are gone."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    out = os.path.join(workdir, f"close-{delay}-{time.monotonic_ns()}", "run.pt")
    os.makedirs(os.path.dirname(out))
    proc = subprocess.Popen([sys.executable, "-c", TRIAL, str(delay), out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    watch: dict = {}

    def watcher(closed_at: float, pids: list[int]) -> None:
        end = time.monotonic() + 60
        while (any(alive(p) for p in pids) or proc.poll() is None) and time.monotonic() < end:
            time.sleep(0.002)
        left = [p for p in pids if alive(p)]
        watch.update(gone=None if left else time.time() - closed_at, left=left, children=len(pids))

    threads, lines = [], []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("CLOSE "):
            info = json.loads(line[len("CLOSE "):])
            threads.append(threading.Thread(target=watcher, args=(info["at"], info["pids"])))
            threads[-1].start()
    stderr = proc.stderr.read()
    proc.wait(timeout=300)
    for t in threads:
        t.join()
    line = next((x for x in lines if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None or not threads:
        raise SystemExit(f"trial at {delay} s failed (rc {proc.returncode}):\n{''.join(lines)}\n{stderr[-3000:]}")
    temporaries = [name for name in os.listdir(os.path.dirname(out)) if name.endswith(".tmp")]
    return dict(json.loads(line[len("RESULT "):]), temporaries=temporaries, **watch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one repeat of 0.1, 0.3 and 1 s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delays", default=",".join(map(str, DELAYS)))
    args = parser.parse_args(argv)
    delays = [0.1, 0.3, 1.0] if args.quick else [float(x) for x in args.delays.split(",")]
    repeats = 1 if args.quick else args.repeats
    print(f"close latency: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"{'delay s':>8} {'freeze s':>9} {'in close s':>11} {'loop s':>7} {'exit s':>7} {'gone s':>7} "
          f"{'children':>8}  left/temporaries")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for delay in delays:
            for _ in range(repeats):
                r = trial(delay, workdir)
                rows.append(r)
                gone = "never" if r["gone"] is None else f"{r['gone']:.3f}"
                print(f"{r['delay']:>8.2f} {r['freeze']:>9.3f} {r['in_close']:>11.3f} {r['loop']:>7.3f} "
                      f"{r['exit']:>7.3f} {gone:>7} {r['children']:>8}  {r['left'] or ''} {r['temporaries'] or ''}",
                      flush=True)
    worst = max(r["freeze"] for r in rows)
    gone = [r["gone"] for r in rows]
    left = any(r["left"] for r in rows) or None in gone
    temporaries = any(r["temporaries"] for r in rows)
    print(f"longest freeze {worst:.3f} s over {len(rows)} trials: "
          f"{'all' if worst <= TARGET_S else 'NOT all'} <= {TARGET_S} s; "
          f"every process gone within {max((g for g in gone if g is not None), default=float('nan')):.3f} s of close()"
          f"{'; SOME LEFT RUNNING' if left else ''}{'; STALE TEMPORARIES' if temporaries else ''}")
    return 0 if worst <= TARGET_S and not left and not temporaries else 1


if __name__ == "__main__":
    sys.exit(main())
