"""The project's own error type for mistakes a user can fix."""


class UserError(Exception):
    """A problem with the user's input: a file, a config key, a label.

    The message names the place (file and line, or key path) and says what
    to do. The CLI prints it on one line and exits non-zero, without a
    traceback.
    """
