"""Secrets are masked in every string of a value, and short ones are left alone."""

from __future__ import annotations

from switchyard.engine.templates import MASK, mask_secrets

SECRETS = {"token": "s3cr3t-token", "password": "hunter22", "pin": "123"}


def test_secrets_are_masked_in_nested_strings_and_keys() -> None:
    value = {
        "headers": {"Authorization": "Bearer s3cr3t-token"},
        "log": ["sent hunter22 and s3cr3t-token twice: s3cr3t-token", 42, None, True],
        "hunter22": "a key too",
    }
    assert mask_secrets(value, SECRETS) == {
        "headers": {"Authorization": f"Bearer {MASK}"},
        "log": [f"sent {MASK} and {MASK} twice: {MASK}", 42, None, True],
        MASK: "a key too",
    }


def test_short_and_empty_secrets_are_not_masked() -> None:
    assert mask_secrets("pin 123, code a", {"pin": "123", "a": "a", "empty": ""}) == (
        "pin 123, code a"
    )


def test_overlapping_secrets_are_masked_as_one_span() -> None:
    assert mask_secrets("xxabcdefyy", {"one": "abcd", "two": "cdef"}) == f"xx{MASK}yy"
    assert mask_secrets("abcdabcd!", {"one": "abcd"}) == f"{MASK}!"
    assert mask_secrets("a-longer-secret", {"s": "longer", "l": "a-longer-secret"}) == MASK


def test_a_secret_is_found_inside_json_text() -> None:
    secret = 'quo"te\\slash'
    body = '{"password": "quo\\"te\\\\slash"}'
    assert mask_secrets(body, {"p": secret}) == f'{{"password": "{MASK}"}}'


def test_values_without_secrets_are_returned_as_is() -> None:
    value = {"a": ["b", {"c": "d"}], "e": 1}
    assert mask_secrets(value, SECRETS) is value
    assert mask_secrets(value, {}) is value
    masked = mask_secrets({"keep": value["a"], "hide": "hunter22"}, SECRETS)
    assert masked["keep"] is value["a"]
