"""The one exception type that reaches users as a one-line message."""


class SegsubmitError(Exception):
    """Bad input or configuration; the message names the file/field and what to do."""
