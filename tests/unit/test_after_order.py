"""core.renewal.after_order: what follows each kind of order outcome (backoff, resume, keep the
unwritten certificate, failed authorization, in-flight record), and core.errors' retry
intents that it reads."""

from __future__ import annotations

import pytest

from certbotk8s.core.errors import (
    AcmeAccountGone,
    AcmeCaUnavailable,
    AcmeError,
    AcmeProblemError,
    CertbotK8sError,
    ChallengeFailed,
    DnsServerUnreachable,
    Http01SolverError,
    KubeConflict,
    KubeServerError,
    KubeUnreachable,
    OrderAbandoned,
    Problem,
    RetryIntent,
    retry_intent,
)
from certbotk8s.core.renewal.after_order import Backoff, FollowUp, OrderResult, after_order

PROBLEM = Problem("urn:ietf:params:acme:error:unauthorized", "no TXT record")
FAILED_CHALLENGE = ChallengeFailed("a.example.com", "dns-01", PROBLEM)
AWAY = KubeUnreachable("update secrets a/b failed: API server unreachable", "refused")


def test_success_clears_the_backoff_and_the_in_flight_record() -> None:
    assert after_order(OrderResult(ok=True, placed=True)) == FollowUp(
        backoff=Backoff.CLEAR, clear_inflight=True)


def test_a_certificate_issued_but_not_written_is_kept_by_the_controller() -> None:
    result = OrderResult(ok=False, error=AWAY, unwritten=True, placed=True, can_keep=True)
    assert after_order(result) == FollowUp(keep_unwritten=True)  # no backoff, no resume


def test_renew_once_cannot_keep_it_and_counts_the_failure() -> None:
    result = OrderResult(ok=False, error=AWAY, unwritten=True, placed=True)
    assert after_order(result) == FollowUp(backoff=Backoff.COUNT)


@pytest.mark.parametrize("placed", [True, False])
def test_a_lost_lead_leaves_the_order_to_the_next_leader(placed: bool) -> None:
    result = OrderResult(ok=False, error=OrderAbandoned("no longer the leader"), placed=placed)
    assert after_order(result) == FollowUp(resume=placed)


def test_a_service_down_counts_no_backoff_and_the_same_order_goes_on() -> None:
    down = AcmeCaUnavailable("cannot reach the CA")
    assert after_order(OrderResult(ok=False, error=down, outage=True, placed=True)) == FollowUp(
        resume=True)
    assert after_order(OrderResult(ok=False, error=down, outage=True)) == FollowUp(
        clear_inflight=True)  # no order placed: nothing to resume


def test_the_api_server_away_is_tried_again_soon() -> None:
    follow = after_order(OrderResult(ok=False, error=AWAY, outage=True, placed=True))
    assert follow == FollowUp(resume=True, retry_soon=True)


def test_a_challenge_the_ca_failed_during_an_outage_counts_its_authorization_only() -> None:
    follow = after_order(OrderResult(ok=False, error=FAILED_CHALLENGE, outage=True, placed=True))
    assert follow == FollowUp(failed_authz=("a.example.com",), clear_inflight=True)


def test_a_failed_challenge_counts_backoff_and_its_authorization_and_ends_the_order() -> None:
    follow = after_order(OrderResult(ok=False, error=FAILED_CHALLENGE, placed=True))
    assert follow == FollowUp(backoff=Backoff.COUNT, failed_authz=("a.example.com",),
                              clear_inflight=True)


def test_a_ca_refusal_counts_backoff_and_ends_the_order() -> None:
    refused = AcmeProblemError("CA refused POST /new-order", PROBLEM, 403)
    assert after_order(OrderResult(ok=False, error=refused, placed=True)) == FollowUp(
        backoff=Backoff.COUNT, clear_inflight=True)


def test_any_other_failure_counts_backoff_and_keeps_the_in_flight_record() -> None:
    for error in (AcmeError("timeout"), KubeConflict("409"), None):
        assert after_order(OrderResult(ok=False, error=error, placed=True)) == FollowUp(
            backoff=Backoff.COUNT)


def _wrapped(error: CertbotK8sError, cause: BaseException) -> CertbotK8sError:
    try:
        raise error from cause
    except CertbotK8sError as e:
        return e


@pytest.mark.parametrize(("error", "intent"), [
    (AcmeError("x"), RetryIntent.FAILED),
    (KubeConflict("x"), RetryIntent.FAILED),
    (AcmeProblemError("x", PROBLEM), RetryIntent.ORDER_DEAD),
    (AcmeAccountGone("x", PROBLEM), RetryIntent.ORDER_DEAD),
    (FAILED_CHALLENGE, RetryIntent.ORDER_DEAD),
    (AcmeCaUnavailable("x"), RetryIntent.SERVICE_DOWN),
    (DnsServerUnreachable("x", "10.0.0.53"), RetryIntent.SERVICE_DOWN),
    (KubeServerError("x"), RetryIntent.API_AWAY),
    (AWAY, RetryIntent.API_AWAY),
    (OrderAbandoned("x"), RetryIntent.ABANDONED),
    # declared where an adapter wraps it ...
    (Http01SolverError("cannot publish routing", intent=RetryIntent.API_AWAY),
     RetryIntent.API_AWAY),
    (_wrapped(Http01SolverError("x", intent=RetryIntent.FAILED), AWAY), RetryIntent.FAILED),
    # ... or, not declared, the API server away behind a wrapper still counts as such
    (_wrapped(Http01SolverError("x"), AWAY), RetryIntent.API_AWAY),
    (_wrapped(Http01SolverError("x"), KubeConflict("x")), RetryIntent.FAILED),
])
def test_retry_intent_of_each_error(error: CertbotK8sError, intent: RetryIntent) -> None:
    assert retry_intent(error) is intent
