"""Shared test helpers, imported as ``helpers`` (``pythonpath = ["tests"]`` in pyproject.toml).

Not collected as tests (no ``test_*`` modules here):

* :mod:`helpers.corpus`: the checkpoint corpus, every supported format and every bad input, written
  to a temporary folder (``write_good``, ``write_bad``), plus seeded state_dicts for small configurations;
* :mod:`helpers.reference`: independent computations to compare with (parameters, MACs, final channels,
  the Figure 5 reuse matrices by their definition);
* :mod:`helpers.configs`: seeded random DenseNet configurations from a named sampling space;
* :mod:`helpers.explorer`: finding the explorer window's labels and waiting for its summary (Qt).
"""
