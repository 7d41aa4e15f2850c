"""Exceptions that carry a one-line, user-facing message.

Everything the CLI and the GUI show to a user as "what went wrong" is a
:class:`DenseguiError`. Its ``str()`` is a single sentence; callers print it
as is (CLI: on stderr with exit code 2; GUI: in a message label).
"""


class DenseguiError(Exception):
    """Base class for errors whose message is meant for the user."""


class ConfigError(DenseguiError, ValueError):
    """A DenseNet configuration that cannot be built or run."""
