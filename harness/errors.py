"""Errors of the experiment driver.

    HarnessError
    ├── ModelMissing   a stack points at a model directory that is not there
    └── TrackingError  the MLflow store did not take a run (harness.tracking)

Errors from the serving side (`stacks.errors.StackError`: SpecError, StackStartError,
HealthTimeout) pass through the harness unchanged; the CLI prints both kinds as one line.
"""


class HarnessError(Exception):
    pass


class ModelMissing(HarnessError):
    pass
