"""User-facing errors: the CLI prints their message as one sentence and exits non-zero, never a traceback."""


class LlmidError(Exception):
    """Bad input or environment the user can fix; `str(err)` is the sentence shown to them."""

    exit_code = 2


class InputError(LlmidError):
    """The log input cannot be read (missing, a directory, binary, truncated archive...)."""


class StoreError(LlmidError):
    """The store cannot be opened or written (bad URL, unwritable path, corrupt database)."""

    exit_code = 3


class ConfigError(LlmidError):
    """A setting, preset name or config file is invalid."""
