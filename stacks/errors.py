"""Errors of the serving side.

    StackError
    ├── SpecError          a stack.yaml that does not validate (one line: file, field, allowed)
    ├── ModelError         a model the stack serves cannot be found, built or quantized
    │   └── ModelMissing   ... specifically: a model directory lacks the file it needs
    ├── StackStartError    a replica or the balancer died or never became healthy
    │   └── HealthTimeout  ... specifically: no /health 200 within the startup timeout
    ├── MembershipError    the balancer's admin interface refused or did not finish a change
    └── ImageError         a replica image cannot be built, pushed, fetched or mounted
        ├── ImageDigestMismatch  its bytes are not the ones its digest names: nothing starts
        └── ImageFetchError      the registry failed or went away while it was fetched
"""


class StackError(Exception):
    """Anything that stops a stack from being described or brought up."""


class SpecError(StackError):
    pass


class ModelError(StackError):
    pass


class ModelMissing(ModelError):
    pass


class StackStartError(StackError):
    pass


class HealthTimeout(StackStartError):
    pass


class MembershipError(StackError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the admin interface's HTTP status; None: no answer, or timed out


class ImageError(StackError):
    pass


class ImageDigestMismatch(ImageError):
    pass


class ImageFetchError(ImageError):
    pass
