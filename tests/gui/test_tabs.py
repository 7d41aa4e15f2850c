"""``densegui gui --tab NAME --screenshot OUT.png`` for every tab (used for the docs' pictures)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from densegui.cli.gui import TABS
from densegui.gui.main_window import MainWindow


def test_the_cli_knows_every_tab_of_the_window():
    assert TABS == MainWindow.TABS


@pytest.mark.parametrize("tab", ["design", "reuse"])
def test_screenshot_of_a_tab(tab, tmp_path):
    out = tmp_path / f"{tab}.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    proc = subprocess.run([sys.executable, "-m", "densegui", "--tab", tab, "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_tab_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    proc = subprocess.run([sys.executable, "-m", "densegui", "gui", "--tab", "nope"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid choice" in proc.stderr
