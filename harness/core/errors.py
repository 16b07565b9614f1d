"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class NiftError(Exception):
    """Base for errors caused by input or configuration, not by a bug in nift-gate."""

    exit_code = 2


class InputError(NiftError):
    """Bad input data: the message names the file, line or field."""


class ConfigError(NiftError):
    """A config value is invalid or inconsistent."""


class ModelLoadError(NiftError):
    """A model could not be found or loaded; the message says what to do instead."""


class TeacherError(NiftError):
    """The teacher failed and the configured policy is to stop."""

    exit_code = 3
