"""The window process never imports torch: a whole session (summary, feature reuse, a probe, a
training run, preset changes of both families, close) in a fresh interpreter, with the window built
as ``run_app`` builds it (staged), then ``torch`` is looked up in ``sys.modules``. Also: a staged window paints
before pyqtgraph is loaded, builds its channel plots before it too, and ends up with the same tabs
as an eager one; closing the window
0.3 s after starting a probe and a training run, or before its panels are built, returns at once
and leaves no background process and no stale temporary behind (issue #25)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from PySide6.QtCore import QEvent, QEventLoop, QObject
    from PySide6.QtWidgets import QApplication
    from densegui.gui import guard_refcounts

    guard_refcounts()
    app = QApplication([])
    from densegui.core.arch.densenet.config import DenseNetConfig
    from densegui.core.arch.registry import get_preset
    from densegui.gui.main_window import MainWindow
    from densegui.gui.tasks import close_shared_pool, shared_pool

    def wait(pred, what, timeout=120):
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                sys.exit(f"timed out waiting for {what}")
            QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
""")

SESSION = PRELUDE + textwrap.dedent("""

    w = MainWindow(settings=None, staged=True)
    w.show()
    wait(w.is_up_to_date, "the first summary")
    wait(w.panels_built, "the staged panels")
    assert w.summary_panel.result.total_params == 7_978_856

    w.select_tab("reuse")
    wait(lambda: w.reuse_panel.loaded is not None, "the shipped checkpoint's heatmaps")
    assert len(w.reuse_panel.blocks) == 3

    tiny = DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", num_classes=10, input_size=16)
    w.apply_config(tiny)
    probe = w.probe_panel
    probe.device_combo.setCurrentIndex(probe.device_combo.findData("cpu"))
    probe.breakdown_check.setChecked(False)
    probe.start_run()
    wait(lambda: not probe.is_running(), "the probe")
    assert probe.result is not None and probe.result.batch_size == 1, probe.message_label.text()

    train = w.train_panel
    train.set_config(train.config)
    train.epochs_spin.setValue(1)
    train.limit_spin.setValue(64)
    train.out_edit.setText(sys.argv[1])
    train.start()
    wait(lambda: not train.is_running(), "the training run")
    assert train.result is not None, train.error_label.text()
    wait(lambda: w.reuse_panel.loaded is not None and w.reuse_panel.loaded.path == sys.argv[1], "reuse refresh")

    w.load_preset("resnet50")  # another family, explored live
    w.controls.depth_sliders[2].setValue(4)
    wait(w.is_up_to_date, "the ResNet's summary")
    assert w.summary_panel.result.config.stage_depths == (3, 4, 4, 3)
    w.load_preset("densenet-bc-100-k12")
    wait(w.is_up_to_date, "the preset's summary")
    pids = [p.pid for p in shared_pool().processes() if p.pid]
    w.close()
    w.deleteLater()
    close_shared_pool()
    assert "torch" not in sys.modules, "the window process imported torch"
    print("OK", len(pids))
""")

CLOSE_EARLY = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication
    from densegui.gui import guard_refcounts

    guard_refcounts()
    app = QApplication([])
    from densegui.core.arch.registry import get_preset
    from densegui.gui.app import finish_app
    from densegui.gui.main_window import MainWindow
    from densegui.gui.tasks import shared_pool

    w = MainWindow(settings=None)
    w.show()
    w.load_preset("densenet264")
    w.train_panel.set_config(get_preset("densenet-40-k12"))  # (adapted to the digits; densenet264's stem is not)
    w.train_panel.out_edit.setText(sys.argv[1])
    w.train_panel.start()
    assert w.train_panel.is_running(), w.train_panel.error_label.text()
    w.probe_panel.device_combo.setCurrentIndex(w.probe_panel.device_combo.findData("cpu"))
    w.probe_panel.mode_combo.setCurrentIndex(w.probe_panel.mode_combo.findData("training"))
    w.probe_panel.batch_spin.setValue(8)
    w.probe_panel.start_run()
    assert w.probe_panel.is_running()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    procs = [p._proc for p in shared_pool().processes() if p._proc is not None]
    t0 = time.perf_counter()
    w.close()
    closed = time.perf_counter() - t0
    finish_app(app, w)  # (what run_app does after its event loop)
    alive = [p.pid for p in procs if p.is_alive()] + [p.pid for p in multiprocessing.active_children()]
    print(f"CLOSE {closed:.3f} {len(procs)} {alive}")
""")


STAGED = PRELUDE + textwrap.dedent("""

    seen = {}

    class Spy(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and "paint" not in seen:
                seen["paint"] = "pyqtgraph" in sys.modules
            return False

    w = MainWindow(settings=None, staged=True)
    assert not w.panels_built() and w.channel_panel is None
    connect = w._connect_panel

    def connect_spy(key, panel):
        seen.setdefault(key, "pyqtgraph" in sys.modules)
        connect(key, panel)

    w._connect_panel = connect_spy
    spy = Spy()
    w.centralWidget().installEventFilter(spy)
    w.select_tab("probe")  # a tab whose panel is still on its way
    w.show()
    w.load_preset("densenet169")  # a change made before the panels exist
    wait(lambda: "paint" in seen, "the first paint")
    assert seen["paint"] is False, "pyqtgraph was loaded before the first paint"
    wait(w.panels_built, "the staged panels")
    assert seen["channels"] is False, "the channel plots waited for pyqtgraph"
    assert seen["probe"] is True
    tabs = [(w.tabs.tabText(i), w.tab_panel(k).objectName()) for i, k in enumerate(w.TABS)]
    eager = MainWindow(settings=None)
    eager_tabs = [(eager.tabs.tabText(i), eager.tab_panel(k).objectName()) for i, k in enumerate(eager.TABS)]
    eager.close()
    eager.deleteLater()
    assert tabs == eager_tabs, (tabs, eager_tabs)
    assert w.current_panel() is w.probe_panel
    assert w.probe_panel.config == get_preset("densenet169") == w.design_panel.config
    wait(w.is_up_to_date, "the plots and the summary")
    assert w.channel_panel.table.config == get_preset("densenet169")
    w.pin_preset("resnet50")
    assert w.channel_panel.baseline is w.baseline

    early = MainWindow(settings=None, staged=True)
    seen.clear()
    early.centralWidget().installEventFilter(spy)
    early.show()
    wait(lambda: "paint" in seen, "the second window's first paint")
    built = len(early.panels)
    t0 = time.perf_counter()
    early.close()
    closed = time.perf_counter() - t0
    for _ in range(20):
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    assert not early.panels_built() and len(early.panels) == built, "a panel was built after the close"
    w.close()
    w.deleteLater()
    early.deleteLater()
    close_shared_pool()
    print(f"OK {closed:.3f}")
""")


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_a_whole_session_never_imports_torch_in_the_window_process(tmp_path):
    out = tmp_path / "session.pt"
    proc = _run(SESSION, str(out), timeout=240)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert out.exists()


def test_closing_during_slow_starts_returns_quickly_and_leaves_nothing(tmp_path):
    out = tmp_path / "early.pt"
    proc = _run(CLOSE_EARLY, str(out), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("CLOSE"))
    _, seconds, count, alive = line.split(" ", 3)
    assert int(count) >= 3  # the explorer's, the probe's and the training's processes were running
    assert alive == "[]"
    # One shared grace for every panel, then kills; the joins follow the event loop. (A bound
    # only: benchmarks/close_latency.py measures the freeze.)
    assert float(seconds) < 1.5
    assert not out.exists() and not list(tmp_path.glob(".*.tmp")), list(tmp_path.iterdir())


def test_a_staged_window_paints_before_pyqtgraph_and_ends_like_an_eager_one():
    proc = _run(STAGED, timeout=180)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    closed = float(proc.stdout.split("OK", 1)[1].split()[0])
    assert closed < 1.5  # (an import in flight is awaited for at most 1 s)
