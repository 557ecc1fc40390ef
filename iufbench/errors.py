"""The one exception type users see: a message that says what to fix."""


class IufbenchError(Exception):
    """Bad input or configuration; the CLI prints the message on one line and exits 2."""


class DataError(IufbenchError):
    """A dataset folder, image or mask that cannot be used as it is."""


class ConfigError(IufbenchError):
    """An unknown name, a malformed protocol or method config, a bad override."""
