"""Submission formats. Each is a declaration module `<name>_format.py` (a
`plugins.SubmissionFormat` subclass: its file name, options, writer and re-read validator) and,
where it needs one, an implementation module imported when a file is written or checked."""
