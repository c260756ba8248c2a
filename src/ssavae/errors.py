"""The project's error types, one per boundary. A leaf: imports nothing of the package.

Each is a ``ValueError`` the user can fix; the message says what is wrong and how to fix it.
The CLI prints it as one line and exits with status 2.
"""


class ConfigError(ValueError):
    """A configuration value or key the user must fix."""


class DataError(ValueError):
    """Input data that cannot be used (missing, corrupt, out of range)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used."""


class CapabilityError(ValueError):
    """A call the model's family does not support (e.g. ``y`` for an unconditional family)."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to try."""
