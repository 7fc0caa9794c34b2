"""How actlab stops: a problem the user can fix, or a signal the user sent.

Every module raises `ActlabError` with a message that says what went wrong, where, and how to fix
it; `actlab.cli.main` catches it once and prints it as a single line with a non-zero exit code.
Ctrl-C raises `KeyboardInterrupt` and SIGTERM (a scheduler, `timeout`) raises `Terminated`, its
subclass, so every `except KeyboardInterrupt` cleans up after both; a run turns either into
`Interrupted`, whose message says what was kept and how to resume.
"""

import signal


class ActlabError(Exception):
    """A problem with the user's input, files or environment, stated in one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as after Ctrl-C."""

    signum = signal.SIGTERM


class Interrupted(Exception):
    """A command stopped by a signal; the message says what was kept and how to go on."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler: stop the way Ctrl-C does."""
    raise Terminated()
