"""Expected failures: bad input, a refused output, a refused resume.

Each carries one message that names the file, field or option and says what to do. The CLI prints
the message alone and exits with code 2 (``--debug`` shows the traceback); anything else is an
internal error (exit code 1). `obliviate.config.ConfigError`, `obliviate.data.io.DataError` and
`obliviate.registry.UnknownPluginError` are kinds of it.
"""

from __future__ import annotations


class ObliviateError(Exception):
    """A failure the user can fix; the message says how."""


class OutputError(ObliviateError, OSError):
    """An output path that obliviate will not write: a file, a foreign folder, an unwritable place."""


class ResumeError(ObliviateError, ValueError):
    """A checkpoint that belongs to a different run (method, configs, data or model differ)."""


class ModelLoadError(ObliviateError, OSError):
    """A model or tokenizer that cannot be loaded from the given name or path."""
