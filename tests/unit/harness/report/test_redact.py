"""Secrets never reach MLflow: what the redactor masks, and what it leaves."""

from __future__ import annotations

from harness.report.redact import MASK, Redactor

ENV = {"OPENAI_API_KEY": "sk-live-0123456789", "HF_TOKEN": "hf_abcdefghij",
       "MY_SECRET": "s3cr3t-value", "SHORT_KEY": "abc", "HOME": "/root", "PATH": "/usr/bin"}


def test_values_of_secret_variables_are_masked_wherever_they_appear() -> None:
    redactor = Redactor(ENV)
    text = "key sk-live-0123456789 and hf_abcdefghij, s3cr3t-value in /root via /usr/bin"
    assert redactor.text(text) == f"key {MASK} and {MASK}, {MASK} in /root via /usr/bin"


def test_short_values_and_variable_names_stay() -> None:
    redactor = Redactor(ENV)
    assert redactor.text("api_key_env: OPENAI_API_KEY, abc") == "api_key_env: OPENAI_API_KEY, abc"


def test_url_passwords_and_bearer_tokens_are_masked() -> None:
    redactor = Redactor({})
    assert redactor.text("https://alice:pa55w0rd@gpu.example:8000/v1") == \
        f"https://alice:{MASK}@gpu.example:8000/v1"
    assert redactor.text("authorization: Bearer abc.def-123") == f"authorization: Bearer {MASK}"


def test_mappings_are_masked_value_by_value() -> None:
    redactor = Redactor(ENV)
    assert redactor.mapping({"a": "x sk-live-0123456789", "b": "plain"}) == \
        {"a": f"x {MASK}", "b": "plain"}
