"""Typed exceptions raised by core; the UI turns each into a message a user can act on."""


class GliderError(Exception):
    """Base class for every error core raises on purpose."""


class InputError(GliderError, ValueError):
    """The user's input cannot be graded as given (empty fields, bad tag names ...)."""


class RubricError(InputError):
    """The rubric names no score values, or names them in a way that cannot be read."""


class JudgeError(GliderError):
    """A judge back-end failed to load or to generate."""


class ModelLoadError(JudgeError):
    """The model could not be loaded; the message says why and how to fix it."""


class ContextTooLongError(JudgeError, InputError):
    """The prompt is longer than the model can read; it is never truncated silently."""


class UnknownBackendError(JudgeError, KeyError):
    """No back-end is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StorageError(GliderError):
    """The database could not be opened, migrated or written."""


class ValueTooLongError(InputError):
    """A text is longer than the database column that keeps it: refused the same way on every database (PostgreSQL
    would refuse it with its own error; SQLite would keep it whole)."""


class PermissionDenied(GliderError):
    """The signed-in user may not see or change this."""


class StudyInputError(InputError):
    """A user, study, item, file or label is not acceptable as given; the message says why.

    Raised by core.accounts and core.studies alike (a taken username, an unknown study, a score off the
    scale), so both can be caught as one kind of refusal.
    """
