"""IssuerRegistry: an issuer whose account store or CA hangs does not hold up other issuers."""

from __future__ import annotations

import threading

import pytest

from certbotk8s.app.issuers import IssuerRegistry
from certbotk8s.core.errors import CertbotK8sError
from tests.unit.factories import make_config


class _Unreachable(CertbotK8sError):
    pass


class HangingAccounts:
    """`load` of issuer `le` blocks until released; every other issuer fails at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def load(self, issuer: str) -> tuple[bytes, str | None] | None:
        if issuer == "le":
            self.entered.set()
            self.release.wait()
        raise _Unreachable(f"account store for {issuer} unreachable")

    def save(self, issuer: str, key_pem: bytes, account_uri: str | None) -> None:
        raise AssertionError("nothing is saved when load fails")


def test_a_hanging_issuer_does_not_block_another_issuers_engine() -> None:
    accounts = HangingAccounts()
    registry = IssuerRegistry(make_config(), accounts, secrets=None)  # type: ignore[arg-type]
    errors: list[BaseException] = []

    hung = threading.Thread(target=lambda: _call(registry, "le", errors))
    hung.start()
    assert accounts.entered.wait(10), "issuer le never reached its account store"
    staging_errors: list[BaseException] = []
    staging = threading.Thread(target=lambda: _call(registry, "staging", staging_errors))
    try:
        staging.start()
        # With one lock for all issuers this call would wait for `le` as long as it hangs.
        staging.join(10)
        assert not staging.is_alive(), "issuer staging waited for issuer le's account"
        assert [str(e) for e in staging_errors] == ["account store for staging unreachable"]
    finally:
        accounts.release.set()
        hung.join(10)
        staging.join(10)
    assert [str(e) for e in errors] == ["account store for le unreachable"]


def _call(registry: IssuerRegistry, issuer: str, errors: list[BaseException]) -> None:
    try:
        registry.engine(issuer)
    except BaseException as e:  # handed to the asserting thread
        errors.append(e)


def test_an_unknown_issuer_is_a_clear_error() -> None:
    registry = IssuerRegistry(make_config(), HangingAccounts(), secrets=None)  # type: ignore[arg-type]
    with pytest.raises(CertbotK8sError, match="issuer 'nope' is not configured"):
        registry.engine("nope")
