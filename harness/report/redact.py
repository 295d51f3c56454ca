"""Keeps secrets out of everything sent to MLflow: params, tags and text artifacts.

A secret is the value of an environment variable whose name says it is one (`*KEY*`,
`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*CREDENTIAL*`, `*AUTH*`), wherever that value appears,
plus the password part of any URL and any bearer token. The names of such variables (a stack's
`api_key_env`) are not secret and stay.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

MASK = "***"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would mask ordinary text
URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]+):[^/\s@]+@",
                          re.IGNORECASE)
BEARER = re.compile(r"(?P<word>bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class Redactor:
    """Masks every known secret in text."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        values = {value for name, value in environ.items()
                  if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(values, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        value = URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{MASK}@", value)
        return BEARER.sub(rf"\g<word>{MASK}", value)

    def mapping(self, values: Mapping[str, str]) -> dict[str, str]:
        return {key: self.text(value) for key, value in values.items()}
