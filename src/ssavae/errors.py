"""The project's error types, one per boundary. A leaf: imports nothing of the package.

Every one is an ``SsavaeError`` (a ``ValueError``, except ``TrainingError``): something the user
can fix, with a message that says what is wrong and how to fix it. The CLI prints it as one line
and exits with status 2 (``--debug`` shows the traceback).
"""


class SsavaeError(Exception):
    """Anything the user can fix; the message names the problem and the fix."""


class ConfigError(SsavaeError, ValueError):
    """A configuration value or key the user must fix."""


class DataError(SsavaeError, ValueError):
    """Input data that cannot be used (missing, corrupt, out of range)."""


class CheckpointError(SsavaeError, ValueError):
    """A checkpoint that cannot be used."""


class CapabilityError(SsavaeError, ValueError):
    """A call the model's family does not support (e.g. ``y`` for an unconditional family)."""


class TrainingError(SsavaeError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to try."""


class DivergenceError(TrainingError):
    """The losses left the finite range or the adversarial game broke (the stability guard);
    ``step``: the update step to blame, if one is (``train.on_divergence rollback`` halves its
    learning rate)."""

    def __init__(self, message: str, step: "str | None" = None):
        super().__init__(message)
        self.step = step
