"""`densegui gui` as a user runs it: a real process, offscreen, clean exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtGui import QImage

from densegui.gui.app import x_display_error as REAL_X_DISPLAY_ERROR

RUN = "import sys; from densegui.cli import main; sys.exit(main())"


def densegui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_screenshot_renders_and_exits_cleanly(tmp_path):
    out = tmp_path / "shot.png"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"growth_rate": 12, "block_depths": [6, 6, 6], "stem": "cifar", "input_size": 32, "num_classes": 10}')
    proc = densegui("--config", str(cfg), "--screenshot", str(out))  # the bare command takes gui's options
    assert proc.returncode == 0, proc.stderr[-2000:]  # a crash at shutdown would show as a signal exit code
    assert proc.stdout.strip().startswith(f"wrote {out}")  # (success says so, as every export does)
    assert "Traceback" not in proc.stderr and "Fatal" not in proc.stderr
    assert "propagateSizeHints" not in proc.stderr  # (the offscreen plugin's notice, filtered)
    image = QImage(str(out))
    assert not image.isNull()
    assert image.width() >= 1200 and image.height() >= 800
    # the picture is not blank: many distinct colours (plots, text, shading)
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 50


def test_quiet_qt_messages_drops_only_the_offscreen_notice(qtlog):
    from PySide6.QtCore import qWarning

    from densegui.gui.app import quiet_qt_messages

    restore = quiet_qt_messages()
    try:
        qWarning("This plugin does not support propagateSizeHints()")
        qWarning("a message of its own")
    finally:
        restore()
    # (the previous handler, here pytest-qt's, gets every other message unchanged)
    assert [r.message for r in qtlog.records] == ["a message of its own"]


def test_either_family_reaches_the_window(monkeypatch, tmp_path):
    from densegui.cli import main
    from densegui.core.arch import registry as arch
    from densegui.gui import app

    seen = []
    monkeypatch.setattr(app, "run_app", lambda cfg, **kw: seen.append((cfg, kw["preset"], kw["origin"])) or 0)
    resnet = tmp_path / "r.json"
    resnet.write_text('{"stage_depths": [2, 2], "widths": [16, 32]}')  # (no "family": read by its fields)
    assert main(["gui", "--preset", "resnet50"]) == 0
    assert main(["gui", "--config", str(resnet)]) == 0
    assert seen == [(arch.get_preset("resnet50"), "resnet50", None), (arch.config_from_file(resnet), None, "r.json")]


def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys):
    # Checked before any window opens, so in-process is enough (and fast).
    from densegui.cli import main

    def run(*args):
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
        return rc, capsys.readouterr().err.strip().splitlines()

    rc, err = run("gui", "--preset", "densenet999")
    assert rc == 2 and len(err) == 1 and "unknown preset 'densenet999'" in err[0]
    resnet = tmp_path / "r.json"
    resnet.write_text('{"stage_depths": [2, 2], "widths": [16]}')  # (no "family": read by its fields)
    rc, err = run("gui", "--config", str(resnet))
    assert rc == 2 and len(err) == 1 and "r.json: widths must list one width per stage" in err[0]

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, err = run("gui", "--config", str(bad))
    assert rc == 2 and len(err) == 1 and "not valid JSON" in err[0]

    rc, err = run("gui", "--screenshot", str(tmp_path / "missing" / "x.png"))
    assert rc == 2 and len(err) == 1 and "does not exist" in err[0]

    rc, err = run("gui", "--preset", "densenet121", "--config", str(bad))
    assert rc == 2 and len(err) == 1 and "not allowed with" in err[0]


# ------------------------------------------------------------------ first start (issue #15)
XCB_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
                "libxcb-shape0", "libxcb-xkb1", "libxkbcommon-x11-0")


@pytest.fixture
def desktop(monkeypatch):
    """A Linux desktop session as far as run_app can tell; the window itself never starts."""
    from densegui.gui import app

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(app, "x_display_error", lambda display: 0)

    def no_window():
        raise AssertionError("the background process and the window must not start")

    monkeypatch.setattr(app, "prestart_background", no_window)
    return app


def run_cli(capsys, *args):
    from densegui.cli import main

    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.err.strip().splitlines()


def test_missing_x_libraries_named_with_the_install_command(desktop, monkeypatch, capsys):
    missing = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"}
    monkeypatch.setattr(desktop, "library_loads", lambda soname: soname not in missing)
    rc, err = run_cli(capsys, "--preset", "densenet121")
    assert rc == 2 and len(err) == 1
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 (" in err[0]
    assert all(soname in err[0] for soname in missing) and "--screenshot" in err[0]


def test_every_xcb_package_is_named_at_once(desktop, monkeypatch, capsys):
    monkeypatch.setattr(desktop, "library_loads", lambda soname: soname not in desktop.XCB_LIBRARIES)
    rc, err = run_cli(capsys, "gui")
    command = err[0].split("sudo apt-get install ")[1].split(" (")[0].split()
    assert rc == 2 and set(XCB_PACKAGES) <= set(command) and len(command) == len(set(command))
    assert not set(command) & set(desktop.GUI_LIBRARIES.values())


def test_missing_qt_gui_libraries_do_not_suggest_the_screenshot(desktop, monkeypatch, capsys):
    monkeypatch.setattr(desktop, "library_loads", lambda soname: soname != "libEGL.so.1")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # needed offscreen too
    rc, err = run_cli(capsys, "gui")
    assert rc == 2 and "sudo apt-get install libegl1 (" in err[0] and "--screenshot" not in err[0]


def test_xcb_libraries_are_not_needed_offscreen_or_on_wayland(desktop, monkeypatch):
    checked = []
    monkeypatch.setattr(desktop, "library_loads", lambda soname: checked.append(soname) or True)
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"WAYLAND_DISPLAY": "wayland-0"}, {}):
        checked.clear()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        desktop.check_startup(headless=False)
        assert set(checked) == set(desktop.GUI_LIBRARIES) | (set() if env else set(desktop.XCB_LIBRARIES))
        for name in env:
            monkeypatch.delenv(name)


def test_no_display_is_one_line_unless_offscreen_was_asked_for(desktop, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setattr(desktop, "library_loads", lambda soname: True)
    rc, err = run_cli(capsys, "--preset", "densenet121")
    assert rc == 2 and len(err) == 1 and err[0].startswith("densegui: error: no display:")
    assert "densegui --screenshot out.png" in err[0] and "densegui summary" in err[0]
    desktop.check_startup(headless=True)  # --screenshot
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    desktop.check_startup(headless=False)


def test_a_display_nobody_answers_on(desktop, monkeypatch, capsys):
    x_display_error = REAL_X_DISPLAY_ERROR  # libxcb really tries to connect
    monkeypatch.setattr(desktop, "library_loads", lambda soname: True)
    monkeypatch.setattr(desktop, "x_display_error", x_display_error)
    monkeypatch.setenv("DISPLAY", ":4242")
    try:
        x_display_error(":4242")
    except OSError:
        pytest.skip("libxcb is not installed here")
    rc, err = run_cli(capsys, "gui")
    assert rc == 2 and "cannot open the display ':4242': no X server answers there" in err[0]


def test_bare_command_takes_the_window_options(monkeypatch, tmp_path):
    from densegui.cli import build_parser, gui, main

    seen = []
    monkeypatch.setattr(gui, "run", lambda args: seen.append((args.command, args.preset, args.screenshot)) or 0)
    assert main(["--preset", "densenet121"]) == 0
    assert main([f"--screenshot={tmp_path / 'x.png'}", "--preset", "densenet-40-k12"]) == 0
    assert main([]) == 0
    assert seen == [("gui", "densenet121", None), ("gui", "densenet-40-k12", str(tmp_path / "x.png")),
                    ("gui", None, None)]
    assert "densegui [--preset NAME | --config FILE.json] [--screenshot OUT.png]" in build_parser().format_help()


def test_no_display_in_a_real_process_exits_at_once():
    """An SSH session: before, the window rendered offscreen where nobody saw it and waited forever."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("densegui: error: no display:")
