"""Every tab at a laptop's 1024×700, a desktop's 1920×1080 and at 2× device pixels, under a real X
server (Xvfb), with results in the probe and train tabs; docs/gui.md shows them. Also prints what
densegui.gui.legibility finds on each tab (text cut off without a tooltip, squashed or
overlapping widgets): nothing, when all is well. From the repository root:

    python docs/make_size_screenshots.py            # all three sizes, each in its own Xvfb
    python docs/make_size_screenshots.py --one 1024x700 --scale 1 --out docs/sizes   # (what each runs)

Needs ``xvfb-run`` (apt-get install xvfb and the libxcb packages README lists).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# (window size in logical pixels, device pixel scale, tabs to keep: None for all). Every tab is
# checked at every size; the pictures of the larger sizes are kept for the tabs issue #26 named.
SIZES = (("1024x700", 1, None), ("1920x1080", 1, ("architecture", "probe", "train", "design")),
         ("1024x700", 2, ("probe", "train", "design")))
HERE = Path(__file__).resolve().parent


def shoot(size: str, scale: int, out: Path, keep: tuple[str, ...] | None) -> int:
    os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")
    from PySide6.QtWidgets import QApplication

    from densegui.gui import guard_refcounts

    guard_refcounts()
    app = QApplication(sys.argv[:1])
    app.setApplicationName("densegui")  # (the Train tab's checkpoint folder, as the app's)
    app.setStyle("Fusion")
    from densegui.gui.legibility import clipped_texts, overlapping_siblings, squashed
    from densegui.gui.main_window import MainWindow

    width, height = (int(v) for v in size.split("x"))
    win = MainWindow(settings=None)
    win.resize(width, height)
    win.show()

    def pump(until=None, timeout: float = 120.0) -> None:
        """Run the event loop until ``until()`` holds (or for ``timeout`` s without one)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not (until is not None and until()):
            app.processEvents()
            time.sleep(0.01)

    ready = lambda: win.is_up_to_date() and win.current_tab_ready()  # noqa: E731
    pump(ready)
    # Results to show: a probe of the default network, a 2-epoch run on the digits.
    win.select_tab("probe")
    pump(lambda: win.probe_panel is not None)
    win.probe_panel.start_run()
    pump(lambda: win.probe_panel.result is not None and not win.probe_panel.runner.is_busy(), 300)
    win.select_tab("train")
    win.train_panel.use_default_button.click()
    win.train_panel.epochs_spin.setValue(2)
    win.train_panel.start()
    pump(lambda: win.train_panel.result is not None and not win.train_panel.is_running(), 300)
    tag = f"{size}{'' if scale == 1 else f'@{scale}x'}"
    found = 0
    for key in win.TABS:
        win.select_tab(key)
        pump(ready)
        pump(timeout=0.5)
        image = win.grab()
        if keep is None or key in keep:
            image.save(str(out / f"{tag}_{key}.png"), "PNG")
        problems = clipped_texts(win) + squashed(win) + overlapping_siblings(win)
        found += len(problems)
        print(f"{tag} {key}: {image.width()}×{image.height()} px, "
              f"{'nothing cut off, squashed or overlapping' if not problems else '; '.join(problems)}")
    win.shutdown()
    win.close()
    win.deleteLater()
    app.processEvents()
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help="one size, WxH (run inside an X server)")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--keep", help="comma-separated tabs whose pictures to save (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "sizes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        return shoot(args.one, args.scale, args.out, tuple(args.keep.split(",")) if args.keep else None)
    status = 0
    for size, scale, keep in SIZES:
        w, h = (int(v) * scale for v in size.split("x"))
        env = dict(os.environ, QT_QPA_PLATFORM="xcb", QT_SCALE_FACTOR=str(scale))
        env.pop("QT_SCREEN_SCALE_FACTORS", None)
        cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {w}x{h}x24", sys.executable, __file__,
               "--one", size, "--scale", str(scale), "--out", str(args.out)] + (["--keep", ",".join(keep)] if keep else [])
        status |= subprocess.run(cmd, env=env).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())
