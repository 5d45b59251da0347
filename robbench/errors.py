"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class RobbenchError(Exception):
    """Bad input or an unusable file; the message is shown to the user as is."""


class DataNotFound(RobbenchError):
    """A dataset missing from its data root. The message ends by suggesting --download;
    `without_download` is the same message for a command that has no such flag (the
    benchmarks), which must not suggest one."""

    def __init__(self, message: str, download_hint: str) -> None:
        super().__init__(f"{message}, {download_hint}")
        self.without_download = message
