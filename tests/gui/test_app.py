"""`densegui gui` as a user runs it: a real process, offscreen, clean exit."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtGui import QImage

RUN = "import sys; from densegui.cli import main; sys.exit(main())"


def densegui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_screenshot_renders_and_exits_cleanly(tmp_path):
    out = tmp_path / "shot.png"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"growth_rate": 12, "block_depths": [6, 6, 6], "stem": "cifar", "input_size": 32, "num_classes": 10}')
    proc = densegui("gui", "--config", str(cfg), "--screenshot", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]  # a crash at shutdown would show as a signal exit code
    assert "Traceback" not in proc.stderr and "Fatal" not in proc.stderr
    image = QImage(str(out))
    assert not image.isNull()
    assert image.width() >= 1200 and image.height() >= 800
    # the picture is not blank: many distinct colours (plots, text, shading)
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 50


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

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, err = run("gui", "--config", str(bad))
    assert rc == 2 and len(err) == 1 and "not valid JSON" in err[0]

    rc, err = run("gui", "--screenshot", str(tmp_path / "missing" / "x.png"))
    assert rc == 2 and len(err) == 1 and "does not exist" in err[0]

    rc, err = run("gui", "--preset", "densenet121", "--config", str(bad))
    assert rc == 2 and len(err) == 1 and "not allowed with" in err[0]
