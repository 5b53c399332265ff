"""Which CA problems mean the account is gone, and which of those refuse the key itself."""

from __future__ import annotations

import pytest

from certbotk8s.adapters.acme.engine import _account_problem
from certbotk8s.core.errors import AcmeAccountGone, Problem

ACME = "urn:ietf:params:acme:error:"


@pytest.mark.parametrize(("type_", "detail", "gone", "key_refused"), [
    ("accountDoesNotExist", "Account https://ca/acct/1 not found.", True, False),
    ("unauthorized", "Account has been deactivated", True, True),
    ("unauthorized", "An account with the provided public key exists but is deactivated",
     True, True),
    ("badPublicKey", "account key is blocked", True, True),
    ("unauthorized", "Invalid response from http://h/.well-known/acme-challenge/x", False, False),
    ("malformed", "No order found for account", False, False),
    ("rateLimited", "too many new accounts", False, False),
])
def test_account_problems(type_: str, detail: str, gone: bool, key_refused: bool) -> None:
    problem = Problem(ACME + type_, detail)
    assert _account_problem(problem) is gone
    if gone:
        assert AcmeAccountGone("x", problem).key_refused is key_refused
