"""The one error class for problems a user can fix.

Every module raises `ActlabError` with a message that says what went wrong, where, and how to fix
it; `actlab.cli.main` catches it once and prints it as a single line with a non-zero exit code.
"""


class ActlabError(Exception):
    """A problem with the user's input, files or environment, stated in one line."""
