"""Errors of the experiment side. Every one is something the user can act on; the CLI prints it
as one line and exits with status 2.

    HarnessError
    ├── UsageError      a command's input is not allowed (names the option and what is)
    ├── EndpointError   an endpoint did not answer as asked (harness.client)
    ├── LoadError       the load generator failed or ran past its time (harness.measure.loadgen)
    ├── ResultsError    a results folder is missing, incomplete or unreadable (harness.report)
    └── TrackingError   the MLflow store did not take a run (harness.report.tracking)

Errors from the serving side (`stacks.errors.StackError`: SpecError, ModelError,
StackStartError, HealthTimeout) pass through the harness unchanged; the CLI prints them the
same way.
"""


class HarnessError(Exception):
    pass


class UsageError(HarnessError):
    pass


class EndpointError(HarnessError):
    pass


class LoadError(HarnessError):
    """The load generator failed or ran past its time; its records so far are kept."""


class ResultsError(HarnessError):
    pass


class TrackingError(HarnessError):
    """The MLflow store could not take a run; the results folder is untouched."""
