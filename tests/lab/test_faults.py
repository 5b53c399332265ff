"""Faults against the real lab: the CA forgets accounts and orders, refuses a key, goes down."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest
from acme import messages

from certbotk8s.adapters.acme.engine import (
    AccountChange,
    AcmeEngine,
    ExternalAccountBinding,
    OrderRequest,
)
from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.adapters.http01.responder import Http01Solver
from certbotk8s.core.errors import (
    AcmeAccountGone,
    AcmeAccountRecoveryFailed,
    AcmeOrderGone,
    Problem,
)
from certbotk8s.core.model import ChallengeType, KeyType
from certbotk8s.core.pki import keys
from certbotk8s.core.ports import ChallengeSolver, PendingChallenge

from .conftest import ROOT, EngineFactory, Lab, verify_chain

pytestmark = pytest.mark.lab


def fault(action: str, name: str) -> None:
    """lab/fault stop|start|restart NAME (the lab's process, by its recorded PID)."""
    subprocess.run([str(ROOT / "lab" / "fault"), action, name], check=True, timeout=120,
                   capture_output=True)


def _posts(seen: Sequence[RequestRecord], endpoint: str, status: int | None = None) -> int:
    return sum(1 for r in seen if r.method == "POST" and endpoint in r.url
               and (status is None or r.status == status))


class RestartCaOnFirstPresent:
    """A solver that restarts Pebble while the first order is in flight, then solves for real."""

    def __init__(self, inner: ChallengeSolver, name: str = "pebble") -> None:
        self.inner, self.name = inner, name
        self.challenge_type = inner.challenge_type
        self.restarted = False

    def present(self, challenge: PendingChallenge) -> None:
        if not self.restarted:
            self.restarted = True
            fault("restart", self.name)
        self.inner.present(challenge)

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        self.inner.wait_until_ready(challenges)

    def clean_up(self, challenge: PendingChallenge) -> None:
        self.inner.clean_up(challenge)


def test_restarted_ca_forgot_the_account_registered_again_and_order_retried(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    changes: list[AccountChange] = []
    seen: list[RequestRecord] = []
    engine = make_engine(requests_seen=seen, on_account_change=changes.append)
    solvers = {ChallengeType.HTTP01: http01_solver}
    first = engine.ensure_account()
    engine.issue(OrderRequest(hosts=(lab.host("before"),), profile="default"), solvers)
    fault("restart", "pebble")  # Pebble keeps accounts and orders in memory only
    seen.clear()
    cert = engine.issue(OrderRequest(hosts=(lab.host("after"),), profile="default"), solvers)
    verify_chain(cert.fullchain_pem, lab.roots())
    assert len(changes) == 1
    assert changes[0].previous_uri == first and changes[0].uri == engine.account_uri != first
    assert changes[0].new_key_pem is None  # the stored key was registered again
    assert "accountDoesNotExist" in changes[0].reason
    assert _posts(seen, "sign-me-up", 201) == 1  # one registration
    assert _posts(seen, "order-plz", 201) == 1  # the refused newOrder created nothing
    assert _posts(seen, "order-plz") == 2


def test_ca_restarted_mid_order_lost_account_and_order_one_new_order(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    changes: list[AccountChange] = []
    seen: list[RequestRecord] = []
    engine = make_engine(requests_seen=seen, on_account_change=changes.append)
    placed: list[str] = []
    solver = RestartCaOnFirstPresent(http01_solver)
    cert = engine.issue(OrderRequest(hosts=(lab.host("mid"),), profile="default"),
                        {ChallengeType.HTTP01: solver}, on_order=placed.append)
    verify_chain(cert.fullchain_pem, lab.roots())
    assert solver.restarted and len(changes) == 1
    assert len(placed) == 2 and placed[0] != placed[1]  # exactly one extra order
    assert cert.order_url == placed[1]
    assert _posts(seen, "order-plz", 201) == 2


def test_resuming_an_order_the_ca_lost_says_so(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    engine = make_engine()
    engine.ensure_account()
    placed: list[str] = []

    class Stop(Exception):
        pass

    def stop_after_order(url: str) -> None:
        placed.append(url)
        raise Stop  # the process "dies" right after recording the order

    request = OrderRequest(hosts=(lab.host("lost"),), profile="default")
    solvers = {ChallengeType.HTTP01: http01_solver}
    with pytest.raises(Stop):
        engine.issue(request, solvers, on_order=stop_after_order)
    fault("restart", "pebble")
    # A successor with the same (re-registered) account finds the order gone: not retried.
    engine.recover_account(engine.account_uri, AcmeAccountGone(
        "test", Problem("urn:ietf:params:acme:error:accountDoesNotExist")))
    with pytest.raises(AcmeOrderGone, match="no longer knows order"):
        engine.resume(placed[0], request, solvers)


def test_deactivated_account_gets_a_new_key_and_account(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    changes: list[AccountChange] = []
    engine = make_engine(on_account_change=changes.append)
    old = engine.ensure_account()
    # The CA refuses the key from now on (RFC 8555 7.3.6 deactivation).
    engine._post(old, messages.UpdateRegistration(status="deactivated"))
    cert = engine.issue(OrderRequest(hosts=(lab.host("newkey"),), profile="default"),
                        {ChallengeType.HTTP01: http01_solver})
    verify_chain(cert.fullchain_pem, lab.roots())
    assert len(changes) == 1 and changes[0].new_key_pem is not None
    assert changes[0].uri != old and "deactivated" in changes[0].reason
    assert b"PRIVATE KEY" in changes[0].new_key_pem
    assert "PRIVATE" not in repr(changes[0])  # the key never reaches a repr or log line


def test_failed_re_registration_is_reported_and_raised(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    key = keys.generate_key(KeyType.ECDSA_P256)  # the stored account key
    eab = ExternalAccountBinding(lab["EAB_KID"], lab["EAB_HMAC_KEY"])
    uri = AcmeEngine(lab["ACME_DIRECTORY_EAB"], key, eab=eab,
                     ca_bundle=lab["ACME_CA_BUNDLE"]).ensure_account()
    fault("restart", "pebble-eab")
    # The stored account and a stale EAB MAC key: the CA forgot the account, and cannot bind
    # a new one.
    failures: list[AcmeAccountRecoveryFailed] = []
    stale = AcmeEngine(lab["ACME_DIRECTORY_EAB"], key, account_uri=uri,
                       eab=ExternalAccountBinding(lab["EAB_KID"], "A" * 43),
                       ca_bundle=lab["ACME_CA_BUNDLE"], on_account_failure=failures.append)
    with pytest.raises(AcmeAccountRecoveryFailed, match="registering again failed") as raised:
        stale.issue(OrderRequest(hosts=(lab.host("stale"),), profile="default"),
                    {ChallengeType.HTTP01: http01_solver})
    assert failures == [raised.value]
    assert "PRIVATE" not in str(raised.value)

