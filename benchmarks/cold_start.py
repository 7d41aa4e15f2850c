"""Cold start of the window: from launching a fresh interpreter to the first painted window, and to
every panel being current (headline, channel plots and the torchinfo summary of densenet121, the
device lists of the probe and train tabs); also ``densegui --help``.

    python benchmarks/cold_start.py [--runs 5] [--src PATH]

``--src`` runs another checkout's ``densegui`` (for example a ``git worktree`` of an older
commit) with this interpreter, for a before/after comparison in one sitting. densegui's own
modules are byte-compiled first (``compileall``), as a regular install or any earlier run leaves
them (the development machine sets PYTHONDONTWRITEBYTECODE, so an editable checkout there is
otherwise compiled from source by every process: about 0.15 s more in the window and more in
the background process). Times are medians
over ``--runs`` fresh processes, measured with the wall clock shared by parent and child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

CHILD = textwrap.dedent("""
    import json, sys, time
    launched = float(sys.argv[1])
    try:  # what run_app does first (absent in older versions)
        from densegui.gui.app import prestart_background
        prestart_background()
    except ImportError:
        pass
    from PySide6.QtCore import QEvent, QObject, QEventLoop
    from PySide6.QtWidgets import QApplication
    try:  # before any Qt call (densegui/gui/__init__.py; older versions did it at import)
        from densegui.gui import guard_refcounts
        guard_refcounts()
    except ImportError:
        pass
    app = QApplication(["densegui"])
    try:  # as run_app does (absent in older versions)
        from densegui.gui.collector import MainThreadCollector
        MainThreadCollector(app).start()
    except ImportError:
        pass
    from densegui.gui.main_window import MainWindow
    imported = time.time()
    marks = {}

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and "paint" not in marks:
                marks["paint"] = time.time()
            return False

    try:  # as run_app builds it: plotting panels after the first paint (absent in older versions)
        w = MainWindow(settings=None, staged=True)
    except TypeError:
        w = MainWindow(settings=None)
    spy = FirstPaint()
    w.centralWidget().installEventFilter(spy)
    w.show()

    def devices_known():  # the probe and train tabs list the devices the background process found
        if hasattr(w, "panels_built") and not w.panels_built():
            return False
        for panel in (getattr(w, "probe_panel", None), getattr(w, "train_panel", None)):
            combo = getattr(panel, "device_combo", None)
            if combo is not None and not (combo.findData("cpu") >= 0 and combo.itemText(combo.findData("cpu")) != "cpu"):
                return False
        return True

    end = time.time() + 120
    while time.time() < end and not ("paint" in marks and w.is_up_to_date() and devices_known()):
        if "plots" not in marks and w.plots_up_to_date():
            marks["plots"] = time.time()
        if "summary" not in marks and w.summary_panel.is_up_to_date():
            marks["summary"] = time.time()
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
    current = time.time()
    marks.setdefault("plots", current)
    marks.setdefault("summary", current)
    print(json.dumps({"import": imported - launched, "paint": marks.get("paint", float("nan")) - launched,
                      "plots": marks["plots"] - launched, "summary": marks["summary"] - launched,
                      "current": current - launched, "torch_in_window": "torch" in sys.modules,
                      "source": __import__("densegui").__file__}))
    w.close()
    w.deleteLater()
    try:
        from densegui.gui.tasks import close_shared_pool
        close_shared_pool()
    except ImportError:
        from densegui.gui.summary_process import server
        server().close()
""")


def run_child(env: dict) -> dict:
    launched = time.time()
    # (cwd outside the checkout: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH)
    out = subprocess.run([sys.executable, "-c", CHILD, repr(launched)], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tempfile.gettempdir())
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if not line:
        raise SystemExit(f"child failed: {out.stderr[-2000:]}")
    return json.loads(line[-1])


def time_help(env: dict) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import sys; from densegui.cli import main; sys.argv=['densegui','--help']; "
                    "sys.exit(main())"], capture_output=True, env=env, timeout=60, cwd=tempfile.gettempdir())
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--src", help="a checkout whose densegui to time instead of the installed one")
    args = ap.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"), DENSEGUI_NO_SETTINGS="1")
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Qt platform {env['QT_QPA_PLATFORM']}, load average {os.getloadavg()[0]:.1f}, source {args.src or 'installed'}")
    package = os.path.join(os.path.abspath(args.src), "densegui") if args.src else \
        os.path.dirname(__import__("densegui").__file__)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
    rows = [run_child(env) for _ in range(args.runs)]
    helps = [time_help(env) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in rows) for k in ("import", "paint", "plots", "summary", "current")}
    print(f"{'measure':<42}{'median s':>10}{'min s':>8}{'max s':>8}")
    for key, label in (("import", "Qt + densegui window modules imported"), ("paint", "first painted window"),
                       ("plots", "channel plots drawn"), ("summary", "torchinfo summary shown"),
                       ("current", "every panel current")):
        vals = [r[key] for r in rows]
        print(f"{label:<42}{med[key]:>10.2f}{min(vals):>8.2f}{max(vals):>8.2f}")
    print(f"{'densegui --help':<42}{statistics.median(helps):>10.2f}{min(helps):>8.2f}{max(helps):>8.2f}")
    print(f"torch imported in the window process: {any(r['torch_in_window'] for r in rows)}; "
          f"densegui from {rows[0]['source']}")


if __name__ == "__main__":
    main()
