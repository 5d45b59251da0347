"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class RobbenchError(Exception):
    """Bad input or an unusable file; the message is shown to the user as is."""
