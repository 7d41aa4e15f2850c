"""Root pytest configuration: Qt must render offscreen (no display on CI)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")  # tests never read or write the user's QSettings
