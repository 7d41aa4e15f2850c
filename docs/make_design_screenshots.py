"""Regenerate docs/design.png (Design space tab after a k sweep of densenet121) and
docs/channels_resnet.png (densenet121 with resnet50 pinned as the baseline, x = fraction of depth).
Offscreen; run from the repository root:

    python docs/make_design_screenshots.py [FOLDER]
"""
import os, sys, time
os.environ["QT_QPA_PLATFORM"]="offscreen"; os.environ["DENSEGUI_NO_SETTINGS"]="1"
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
def main():
    if len(sys.argv) < 2:
        sys.argv.append(os.path.dirname(os.path.abspath(__file__)))
    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication([])
    from densegui.gui.main_window import MainWindow
    w = MainWindow(settings=None); w.resize(1500, 950); w.show()
    def pump(t):
        end=time.time()+t
        while time.time()<end: QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    end=time.time()+60
    while not w.is_up_to_date() and time.time()<end: pump(0.05)
    w.tabs.setCurrentWidget(w.design_panel)
    d=w.design_panel
    d.field_combo.setCurrentIndex(d.field_combo.findData("growth_rate"))
    d.start_sweep(); pump(1.5)
    w.grab().save(sys.argv[1] + "/design.png")
    w.pin_preset("resnet50")
    w.tabs.setCurrentWidget(w.channel_panel); pump(1.0)
    w.grab().save(sys.argv[1] + "/channels_resnet.png")
    w.close()
    from densegui.gui.tasks import close_shared_pool; close_shared_pool()
if __name__=="__main__": main()
