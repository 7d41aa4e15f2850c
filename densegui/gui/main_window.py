"""The explorer window: controls dock, headline figures, and one tab per panel.

Data flow (one direction): the controls emit a validated configuration of
any family → the window computes ``layer_table(cfg)`` on the main thread
(pure Python, about a millisecond, cached; see
``benchmarks/ui_latency.py``) → the headline figures update at once and
every panel's ``set_config(cfg)`` is called; the summary panel debounces and
runs torchinfo in its worker ("latest wins"). The channel plots are redrawn
in the next pass of the event loop (a zero-delay timer): the change and the
plots' repaint then run as separate slices with input handled in between,
and several changes that arrive before it (a fast drag on a busy machine)
are drawn once, for the latest configuration. An invalid combination only
shows its explanation; the last valid results stay.

Built ``staged`` (what ``run_app`` does), the window paints its controls,
headline and summary first, then builds the channel tab (NumPy only) and,
once pyqtgraph is imported, the other panels one per event-loop pass
(docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QCoreApplication, QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from densegui.core.arch import registry as arch
from densegui.core.arch.table import LayerTable
from densegui.core.errors import ConfigError, user_message
from densegui.gui import TABS, TITLES, cannot_explore
from densegui.gui.architecture_panel import ArchitecturePanel
from densegui.gui.controls import ControlsWidget, default_preset
from densegui.gui.headline import Headline
from densegui.gui.icon import app_icon
from densegui.gui.summary_panel import SummaryPanel
from densegui.gui.tasks import TaskRunner, await_runners, stop_runners
from densegui.gui.widgets import Banner, TabPage

SETTINGS_VERSION = 1
_startup_frozen = False


def freeze_startup_objects() -> None:
    """Exempt what exists after start-up from the cyclic garbage collector (once per process).

    pyqtgraph, NumPy and Qt's wrappers leave ≈ 95,000 long-lived objects; a full collection walks
    all of them (tens of milliseconds on a small machine), a visible freeze in a slider drag
    every few hundred changes. ``gc.freeze()`` moves them to a permanent
    generation (after one collection so that no garbage is frozen): later full collections only
    walk objects created since. Reference counting still frees everything as usual.
    """
    global _startup_frozen
    if _startup_frozen:
        return
    _startup_frozen = True
    gc.collect()
    gc.freeze()


# The deferred panels: their modules are imported by these factories, so that a staged window paints
# before NumPy and pyqtgraph (a large part of the start-up) are loaded. The channel plots need NumPy only.
def _channel_panel() -> QWidget:
    from densegui.gui.channel_panel import ChannelPanel

    return ChannelPanel()


def _reuse_panel() -> QWidget:
    from densegui.gui.reuse_panel import ReusePanel

    return ReusePanel()


def _probe_panel() -> QWidget:
    from densegui.gui.probe_panel import ProbePanel

    return ProbePanel()


def _train_panel() -> QWidget:
    from densegui.gui.train_panel import TrainPanel

    return TrainPanel()


def _design_panel() -> QWidget:
    from densegui.gui.design_panel import DesignPanel

    return DesignPanel()


def import_channel_module(*, cancel, progress) -> None:
    """The channel plots' module (NumPy, no pyqtgraph): a staged window imports it on a worker
    thread after its first paint, builds the channel tab, then imports the others."""
    import densegui.gui.channel_panel  # noqa: F401


def import_plot_modules(*, cancel, progress) -> None:
    """The other deferred panels' modules (pyqtgraph). Importing defines classes only; no widget is
    created here."""
    import densegui.gui.design_panel  # noqa: F401
    import densegui.gui.probe_panel  # noqa: F401
    import densegui.gui.reuse_panel  # noqa: F401
    import densegui.gui.train_panel  # noqa: F401


class _FirstPaint(QObject):
    """Calls ``fn`` once, in the event-loop pass after the watched widget's first paint."""

    def __init__(self, widget: QWidget, fn) -> None:
        super().__init__(widget)
        self._fn = fn
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Paint and self._fn is not None:
            fn, self._fn = self._fn, None
            obj.removeEventFilter(self)
            QTimer.singleShot(0, fn)
        return False


def settings_disabled() -> bool:
    return bool(os.environ.get("DENSEGUI_NO_SETTINGS"))


class MainWindow(QMainWindow):
    """The densegui explorer."""

    plotsUpdated = Signal(object)  # the configuration now drawn by the channel plots (next event-loop pass)
    configInvalid = Signal(str)
    panelsBuilt = Signal()  # every tab holds its panel (at once, or after the first paint when staged)

    TABS, TITLES = TABS, TITLES  # (defined in densegui.gui, which the CLI reads without Qt)
    DEFERRED = {"channels": ("channel_panel", _channel_panel), "reuse": ("reuse_panel", _reuse_panel),
                "probe": ("probe_panel", _probe_panel), "train": ("train_panel", _train_panel),
                "design": ("design_panel", _design_panel)}  # tab → (attribute, factory): after the first paint if staged

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None, *,
                 restore: bool = True, staged: bool = False) -> None:
        """``staged``: paint the controls, headline and summary first, then import the deferred
        panels' modules on a worker thread (the channel plots' first) and build the panels one per
        event-loop pass (what ``run_app`` does: the window is on screen ≈ 1 s sooner); otherwise
        every panel is built here."""
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = settings
        self.config = None  # the current valid configuration (of any family)
        self.table: LayerTable | None = None
        self.baseline: LayerTable | None = None
        self.last_update_ms = 0.0
        self.last_plot_ms = 0.0
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(0)
        self._plot_timer.timeout.connect(self._update_plots)
        self.panels: dict[str, QWidget] = {}  # objectName → panel, those built so far
        self._closing = False
        self._runners_stopped: list[TaskRunner] | None = None  # set by shutdown()

        # ---- controls dock
        self.controls = ControlsWidget()
        scroll = QScrollArea()
        scroll.setObjectName("controlsScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.controls)
        self.dock = QDockWidget("Configuration", self)  # (the Architecture tab draws it)
        self.dock.setObjectName("controlsDock")
        self.dock.setWidget(scroll)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                              | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.dock.setMinimumWidth(300)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)

        # ---- headline
        self.headline = Headline()

        # ---- tabs
        self.tabs = QTabWidget()
        self.tabs.setObjectName("panelTabs")
        self.tabs.setDocumentMode(True)
        self.channel_panel = self.reuse_panel = self.probe_panel = self.train_panel = self.design_panel = None
        self.summary_panel = SummaryPanel()
        self.architecture_panel = ArchitecturePanel()
        self.architecture_panel.layerSelected.connect(lambda path: self.select_layer(path, self.architecture_panel))
        self.panels[self.architecture_panel.objectName()] = self.architecture_panel
        if hasattr(self.summary_panel, "layerSelected"):
            self.summary_panel.layerSelected.connect(lambda path: self.select_layer(path, self.summary_panel))
        self.panels[self.summary_panel.objectName()] = self.summary_panel
        built = {"summary": self.summary_panel, "architecture": self.architecture_panel}
        for key, title in zip(self.TABS, self.TITLES, strict=True):
            if key in built:
                content = built[key]
            else:
                content = QLabel("Loading…")
                content.setObjectName(f"{key}Placeholder")
                content.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.tabs.addTab(TabPage(content, f"{key}Page"), title)
        self._to_build = list(self.DEFERRED)
        self._loader = TaskRunner(self)
        self._loader.done.connect(lambda _result: self._modules_loaded())
        self._loader.failed.connect(lambda _message: self._modules_loaded())  # (the import then says why)
        self._plot_modules_requested = False
        self._build_timer = QTimer(self)
        self._build_timer.setSingleShot(True)
        self._build_timer.setInterval(0)
        self._build_timer.timeout.connect(self._build_next_panel)

        central = QWidget()
        v = QVBoxLayout(central)
        v.setContentsMargins(8, 8, 8, 4)
        v.addWidget(self.headline)
        v.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        # Over the tab pages, not in the layout: an error shown or dismissed moves nothing.
        self.banner = Banner(self.tabs, "invalidLabel", central)
        self.invalid_label = self.banner.label
        self._banner_sticky = False
        self.tabs.currentChanged.connect(lambda _i: self._banner_sticky or self.banner.hide())

        self._build_actions()
        self.statusBar().setObjectName("statusBar")

        self.controls.configChanged.connect(self._config_changed)
        self.controls.configInvalid.connect(self._config_invalid)

        self.resize(1400, 900)
        restored = self._restore_settings() if restore else False
        if not restored:
            self.load_preset(default_preset())
        if staged:
            _FirstPaint(central, lambda: self._loader.start(import_channel_module))
        else:
            while self._to_build:
                self._build_next_panel()

    # ------------------------------------------------------------- panel build
    def panels_built(self) -> bool:
        return not self._to_build

    def _modules_loaded(self) -> None:
        """The loader's first job brings the channel plots' module: build that tab at once, then
        import the rest; after the second, build the others one per event-loop pass."""
        if self._plot_modules_requested:
            self._build_next_panel()
            return
        self._plot_modules_requested = True
        try:
            if "channels" in self._to_build and not self._closing:
                self._build_panel("channels")
        finally:  # the other tabs come whatever happened to this one
            if not self._closing:
                self._loader.start(import_plot_modules)

    def _build_next_panel(self) -> None:
        """Build one deferred panel (the shown tab's first, then in tab order) and put it in its tab;
        after the last, let the next pass build nothing more and freeze start-up objects."""
        if not self._to_build or self._closing:
            return
        shown = self.TABS[self.tabs.currentIndex()]
        self._build_panel(shown if shown in self._to_build else self._to_build[0])
        self._after_build()

    def _build_panel(self, key: str) -> None:
        self._to_build.remove(key)
        attribute, factory = self.DEFERRED[key]
        index = self.TABS.index(key)
        try:
            panel = factory()
        except Exception as exc:  # noqa: BLE001 - e.g. a broken pyqtgraph install: say so in its tab
            self.tab_panel(key).setText(user_message(exc, f"Could not load the {self.TITLES[index]} tab"))
            return
        setattr(self, attribute, panel)
        self.panels[panel.objectName()] = panel
        self.tabs.widget(index).set_content(panel)
        self._connect_panel(key, panel)

    def _after_build(self) -> None:
        if self._to_build:
            self._build_timer.start()
        else:
            freeze_startup_objects()
            self.panelsBuilt.emit()

    def _connect_panel(self, key: str, panel: QWidget) -> None:
        """Wire a new panel to the window and to the panels built before it, and bring it up to date."""
        if key == "channels":
            panel.set_baseline(self.baseline)
            self._plot_timer.start()
            if hasattr(panel, "layerSelected"):
                panel.layerSelected.connect(lambda path: self.select_layer(path, panel))
        elif key == "reuse":
            panel.configRequested.connect(self._config_requested)
            if hasattr(panel, "reuseShown"):
                panel.reuseShown.connect(self.architecture_panel.set_reuse)
        elif key == "design":
            panel.presetRequested.connect(self.load_preset)
            panel.baselineRequested.connect(self.pin_preset)
        if self.train_panel is not None and self.reuse_panel is not None and key in ("train", "reuse"):
            self.train_panel.checkpointSaved.connect(self.reuse_panel.load_checkpoint)
        if key != "channels" and self.config is not None:
            panel.set_config(self.config)

    # ------------------------------------------------------------------ public
    def apply_config(self, cfg, preset: str | None = None, origin: str | None = None) -> bool:
        """Load ``cfg`` (of any family the explorer can edit) into the controls and update everything
        (invalid → explanation); False, with the reason shown, for a family it cannot edit.
        ``origin``: the preset or file a non-preset ``cfg`` came from, for "custom (from …)"."""
        refusal = cannot_explore(cfg)
        if refusal is not None:
            self._show_message(refusal)
            return False
        self.controls.set_config(cfg, preset, origin)
        self.controls.emit_current()
        return True

    def load_preset(self, name: str) -> None:
        self.apply_config(arch.get_preset(name), name)

    def open_config(self, path: str | Path) -> bool:
        """Load a configuration JSON file of any family (the CLI's format; a ``summary --json``
        object works too). On error the reason is shown and False returned."""
        try:
            cfg = arch.config_from_file(path)
        except ConfigError as exc:
            self._show_message(f"Could not open the configuration: {exc}")
            return False
        if not self.apply_config(cfg, arch.preset_of(cfg), Path(path).name):
            return False
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def save_config(self, path: str | Path) -> bool:
        if self.config is None:
            return False
        try:
            Path(path).write_text(self.config.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            self._show_message(f"Could not save {path}: {exc.strerror or exc}")
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def copy_config(self) -> None:
        if self.config is not None:
            QGuiApplication.clipboard().setText(self.config.to_json())
            self.statusBar().showMessage("Configuration JSON copied", 4000)

    def copy_snippet(self) -> None:
        if self.config is not None:
            QGuiApplication.clipboard().setText(self.config.python_snippet())
            self.statusBar().showMessage("Python snippet copied", 4000)

    def pin_baseline(self) -> None:
        """Pin the current configuration as the comparison baseline."""
        if self.table is None:
            return
        self._set_baseline(self.table)

    def _set_baseline(self, table: LayerTable | None) -> None:
        self.baseline = table
        if self.channel_panel is not None:
            self.channel_panel.set_baseline(table)
        self.headline.set_baseline(table)
        self.architecture_panel.set_baseline(None if table is None else table.config)
        self.clear_baseline_action.setEnabled(table is not None)

    def pin_preset(self, name: str) -> None:
        """Pin preset ``name`` (of any family) as the comparison baseline."""
        self._set_baseline(arch.layer_table(arch.get_preset(name)))
        self.statusBar().showMessage(f"Baseline: {name}", 5000)

    def clear_baseline(self) -> None:
        self._set_baseline(None)

    def select_layer(self, path: str, origin: QWidget | None = None) -> None:
        """Select the unit at module path ``path`` ("" clears) in every linked view but ``origin``."""
        for panel in (self.architecture_panel, self.channel_panel, self.summary_panel):
            if panel is not None and panel is not origin and hasattr(panel, "select_path"):
                panel.select_path(path)

    def plots_up_to_date(self) -> bool:
        """The channel plots show the current configuration's table."""
        return self.table is not None and self.channel_panel is not None and self.channel_panel.table is self.table

    def tab_panel(self, key: str) -> QWidget:
        """What tab ``key`` shows: its panel, or the placeholder saying why it is not there yet."""
        return self.tabs.widget(self.TABS.index(key)).widget()

    def current_panel(self) -> QWidget:
        return self.tabs.currentWidget().widget()

    def select_tab(self, name: str) -> None:
        """Show tab ``name`` (one of TABS; its panel may still be on its way when staged)."""
        if name not in self.TABS:
            raise ConfigError(f"unknown tab {name!r}; choose one of {', '.join(self.TABS)}.")
        self.tabs.setCurrentIndex(self.TABS.index(name))

    def current_tab_ready(self) -> bool:
        """The shown tab holds its panel and has finished its own first work (the reuse tab its heatmaps)."""
        if self.TABS[self.tabs.currentIndex()] in self._to_build:
            return False
        if self.reuse_panel is not None and self.current_panel() is self.reuse_panel:
            return self.reuse_panel.loaded is not None or self.reuse_panel.message_label.isVisible()
        return True

    def is_up_to_date(self) -> bool:
        """Headline, plots and summary all show the current configuration."""
        return self.config is not None and self.plots_up_to_date() and self.summary_panel.is_up_to_date()

    # Closing: every runner is cancelled at once and given one shared grace, then the background
    # processes of the jobs still running are killed; the threads are awaited for what is left of
    # the budget, and any still running (an import in flight cannot be interrupted) after the
    # event loop, by finish_shutdown(). The GUI thread never waits longer than CLOSE_BUDGET_S.
    SHUTDOWN_GRACE_S = 0.2
    CLOSE_BUDGET_S = 0.35

    def shutdown(self) -> None:
        """Stop every panel's background work (idempotent), within ``CLOSE_BUDGET_S``. Work in a
        background process that does not stop within ``SHUTDOWN_GRACE_S`` is killed."""
        if self._runners_stopped is not None:
            return
        start = time.monotonic()
        self._closing = True  # (no panel is built after this)
        self._build_timer.stop()
        runners = self._runners_stopped = self.findChildren(TaskRunner)  # panels', their device lists', the loader
        stop_runners(runners, self.SHUTDOWN_GRACE_S, defer=True)
        for panel in self.panels.values():
            panel.shutdown()  # (their runners are stopped: this refuses new work and returns)
        await_runners(runners, max(0.0, start + self.CLOSE_BUDGET_S - time.monotonic()))
        # Deliver what the stopped tasks queued while the panels still exist, not after they are deleted.
        QCoreApplication.sendPostedEvents()

    def finish_shutdown(self, timeout: float = 5.0) -> bool:
        """After the window is gone: await the worker threads :meth:`shutdown` left running (up to
        ``timeout``); whether all ended. Call before the window is deleted."""
        self.shutdown()
        done = await_runners(self._runners_stopped, timeout)
        QCoreApplication.sendPostedEvents()
        return done

    # ---------------------------------------------------------------- updates
    def _config_changed(self, cfg) -> None:
        t0 = time.perf_counter()
        self.config = cfg
        self.table = arch.layer_table(cfg)
        self.banner.hide()
        self.headline.set_table(self.table)
        self._plot_timer.start()  # (a pending update is replaced: only the latest table is drawn)
        self.last_update_ms = (time.perf_counter() - t0) * 1000
        self.setWindowTitle(f"densegui — {arch.family_of(cfg).title} explorer — {self._preset_label()}")
        for panel in self.panels.values():
            if panel is not self.channel_panel:
                panel.set_config(cfg)

    def _update_plots(self) -> None:
        table = self.table
        if table is None or self.channel_panel is None or self.channel_panel.table is table:
            return
        t0 = time.perf_counter()
        self.channel_panel.set_table(table)
        self.last_plot_ms = (time.perf_counter() - t0) * 1000
        cfg = table.config
        self.statusBar().showMessage(f"{self._preset_label()}: {cfg.describe()} · headline updated in "
                                     f"{self.last_update_ms:.1f} ms, plots in {self.last_plot_ms:.1f} ms")
        self.plotsUpdated.emit(cfg)

    def _preset_label(self) -> str:
        return self.controls.preset_name() or self.controls.preset_combo.currentText()

    def _config_invalid(self, message: str) -> None:
        self._show_message(f"Invalid configuration: {message} The figures below are still those of the last "
                           "valid configuration.", sticky=True)
        self.configInvalid.emit(message)

    def _show_message(self, text: str, sticky: bool = False) -> None:
        """The banner over the tabs; a ``sticky`` one (an invalid configuration: a state, not an
        event) stays across tabs until the configuration is valid or it is dismissed."""
        self.banner.show_text("⚠  " + text)
        self._banner_sticky = sticky

    # ------------------------------------------------------------------ panels
    def _config_requested(self, cfg) -> None:
        if arch.is_config(cfg):
            loaded = getattr(self.reuse_panel, "loaded", None)  # the checkpoint it was read from
            origin = Path(loaded.path).name if loaded is not None and loaded.config is cfg else None
            self.apply_config(cfg, arch.preset_of(cfg), origin)
            self.select_tab("channels")

    # ----------------------------------------------------------------- actions
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "", name: str = "") -> QAction:
            a = QAction(text, self)
            a.triggered.connect(slot)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setToolTip(tip)
                a.setStatusTip(tip)
            if name:
                a.setObjectName(name)
            return a

        self.open_action = action("Open config…", self._open_dialog, QKeySequence.StandardKey.Open,
                                  "Open a configuration JSON (the CLI's --config format)", "openConfigAction")
        self.save_action = action("Save config…", self._save_dialog, QKeySequence.StandardKey.Save,
                                  "Save the configuration as JSON (usable with densegui --config)", "saveConfigAction")
        self.copy_json_action = action("Copy config JSON", self.copy_config, None,
                                       "Copy the configuration as JSON", "copyConfigAction")
        self.copy_snippet_action = action("Copy Python snippet", self.copy_snippet, None,
                                          "Copy Python code that rebuilds this model with densegui", "copySnippetAction")
        self.pin_action = action("Pin as baseline", self.pin_baseline, "Ctrl+B",
                                 "Compare every later change against the current configuration", "pinBaselineAction")
        self.clear_baseline_action = action("Clear baseline", self.clear_baseline, None,
                                            "Remove the pinned baseline", "clearBaselineAction")
        self.clear_baseline_action.setEnabled(False)
        quit_action = action("Quit", self.close, QKeySequence.StandardKey.Quit, "", "quitAction")

        file_menu = self.menuBar().addMenu("&File")
        for a in (self.open_action, self.save_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        share_menu = self.menuBar().addMenu("&Share")
        share_menu.addAction(self.copy_json_action)
        share_menu.addAction(self.copy_snippet_action)
        compare_menu = self.menuBar().addMenu("&Compare")
        compare_menu.addAction(self.pin_action)
        self.pin_preset_menu = compare_menu.addMenu("Pin a preset as baseline")
        self.pin_preset_menu.setObjectName("pinPresetMenu")
        for family in arch.families():
            for name in arch.preset_names(family):
                a = self.pin_preset_menu.addAction(f"{name}  ({family})")
                a.setObjectName(f"pinPreset_{name}")
                a.triggered.connect(lambda _=False, n=name: self.pin_preset(n))
            self.pin_preset_menu.addSeparator()
        compare_menu.addAction(self.clear_baseline_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.dock.toggleViewAction())

        bar = QToolBar("Main toolbar", self)
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.open_action, self.save_action):
            bar.addAction(a)
        bar.addSeparator()
        for a in (self.copy_json_action, self.copy_snippet_action):
            bar.addAction(a)
        bar.addSeparator()
        for a in (self.pin_action, self.clear_baseline_action):
            bar.addAction(a)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open configuration", "", "JSON (*.json);;All files (*)")
        if path:
            self.open_config(path)

    def _save_dialog(self) -> None:
        name = f"{arch.family_of(self.config).name}.json" if self.config is not None else ""
        path, _ = QFileDialog.getSaveFileName(self, "Save configuration", name, "JSON (*.json)")
        if path:
            self.save_config(path)

    # ---------------------------------------------------------------- settings
    def _restore_settings(self) -> bool:
        s = self.settings
        if s is None:
            return False
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state, SETTINGS_VERSION)
        tab = s.value("window/tab")
        if tab is not None:
            try:
                self.tabs.setCurrentIndex(int(tab))
            except (TypeError, ValueError):
                pass
        text = s.value("explorer/config")
        if not isinstance(text, str) or not text:
            return False
        try:
            cfg = arch.config_from_json(text)
        except ConfigError:
            return False  # stale or hand-edited settings: start from the default preset
        preset = s.value("explorer/preset")
        presets = arch.presets()
        origin = s.value("explorer/origin")
        return self.apply_config(cfg, preset if isinstance(preset, str) and preset in presets
                                 and presets[preset].config == cfg else None,
                                 origin if isinstance(origin, str) and origin else None)

    def save_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(SETTINGS_VERSION))
        s.setValue("window/tab", self.tabs.currentIndex())
        if self.config is not None:
            s.setValue("explorer/config", self.config.to_json(indent=None))
            s.setValue("explorer/preset", self.controls.preset_name() or "")
            s.setValue("explorer/origin", self.controls.origin() or "")
        s.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.save_settings()
        self.hide()  # the window goes at once; stopping the background work follows
        self.shutdown()
        super().closeEvent(event)
