"""densegui: explore DenseNet architectures (Huang et al., CVPR 2017).

The Qt-free engine lives in :mod:`densegui.core`; the desktop window in
:mod:`densegui.gui`; the command line in :mod:`densegui.cli`.
"""

__version__ = "0.1.0"
