"""Planning: ISSUE / RENEW / NOTHING / REFUSE / CONFLICT per Secret, deterministic order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from certbotk8s.core.model import ObservedSecret, RenewalWindow, SecretRef
from certbotk8s.core.renewal.plan import ActionKind, plan
from certbotk8s.core.renewal.policy import ReasonCode
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, cert_info, desired, observed_for

DAY = timedelta(days=1)
NOW = T0 + 10 * DAY


def test_missing_secret_is_issued() -> None:
    d = desired()
    (action,) = plan([d], {d.secret: None}, NOW, {})
    assert action.kind is ActionKind.ISSUE
    assert action.reason.code is ReasonCode.SECRET_MISSING
    assert action.desired == d
    assert action.next_renewal is None


def test_secret_absent_from_observed_counts_as_missing() -> None:
    (action,) = plan([desired()], {}, NOW, {})
    assert action.kind is ActionKind.ISSUE


def test_unmanaged_secret_is_refused() -> None:
    d = desired()
    observed = ObservedSecret(
        ref=d.secret, managed=False, resource_version="7", certificate=cert_info()
    )
    (action,) = plan([d], {d.secret: observed}, NOW, {})
    assert action.kind is ActionKind.REFUSE
    assert action.reason.code is ReasonCode.NOT_MANAGED


def test_unparsable_managed_secret_is_issued_not_renewed() -> None:
    d = desired()
    observed = replace(observed_for(d), certificate=None, parse_error="garbage")
    (action,) = plan([d], {d.secret: observed}, NOW, {})
    assert action.kind is ActionKind.ISSUE
    assert action.reason.code is ReasonCode.CERTIFICATE_UNPARSABLE


def test_parsable_managed_secret_is_renewed() -> None:
    d = desired("a.example.com", "b.example.com")
    observed = observed_for(d, cert_info("a.example.com"))
    (action,) = plan([d], {d.secret: observed}, NOW, {})
    assert action.kind is ActionKind.RENEW
    assert action.reason.code is ReasonCode.HOSTS_CHANGED


def test_key_mismatch_with_parsable_cert_is_a_renewal() -> None:
    d = desired()
    (action,) = plan([d], {d.secret: observed_for(d, key_matches=False)}, NOW, {})
    assert action.kind is ActionKind.RENEW
    assert action.reason.code is ReasonCode.KEY_MISMATCH


def test_due_by_ari_window_is_renewed() -> None:
    d = desired()
    # a window that already ended: its moment has passed
    ari = {d.secret: RenewalWindow(NOW - 2 * DAY, NOW - DAY, "aki.serial")}
    (action,) = plan([d], {d.secret: observed_for(d)}, NOW, ari)
    assert action.kind is ActionKind.RENEW
    assert action.reason.code is ReasonCode.INSIDE_ARI_WINDOW


def test_up_to_date_says_when_next() -> None:
    d = desired()
    (action,) = plan([d], {d.secret: observed_for(d)}, NOW, {})
    assert action.kind is ActionKind.NOTHING
    assert action.reason.code is ReasonCode.UP_TO_DATE
    assert action.next_renewal == T0 + 60 * DAY
    assert "2/3 of the lifetime" in action.reason.message


def test_up_to_date_uses_the_ari_window_of_its_secret() -> None:
    d = desired()
    other = SecretRef("x", "y")
    window = RenewalWindow(T0 + 50 * DAY, T0 + 52 * DAY, "aki.serial")
    ari = {d.secret: window, other: RenewalWindow(T0, T0 + DAY, "aki.serial")}
    (action,) = plan([d], {d.secret: observed_for(d)}, NOW, ari)
    assert action.kind is ActionKind.NOTHING
    assert action.next_renewal is not None
    assert window.start <= action.next_renewal <= window.end
    # the chosen moment is handed out to be kept on the Secret ...
    value = action.annotations[secret_meta.RENEWAL_MOMENT]
    assert value.startswith(secret_meta.format_time(action.next_renewal))
    # ... and once it is there, nothing more to write
    kept = observed_for(d)
    kept.recorded[secret_meta.RENEWAL_MOMENT] = value
    (again,) = plan([d], {d.secret: kept}, NOW, ari)
    assert again.next_renewal == action.next_renewal and not again.annotations


def test_lost_or_wrong_annotations_are_repaired_without_an_order() -> None:
    d = desired(profile="classic")
    observed = observed_for(d)
    right = dict(observed.recorded)
    for key in (secret_meta.ISSUER, secret_meta.PROFILE, secret_meta.HOSTS):
        del observed.recorded[key]
    observed.recorded[secret_meta.NOT_AFTER] = "garbage"
    (action,) = plan([d], {d.secret: observed}, NOW, {})
    assert action.kind is ActionKind.REPAIR
    assert action.reason.code is ReasonCode.METADATA_REPAIR
    assert dict(action.annotations) == {k: right[k] for k in (
        secret_meta.ISSUER, secret_meta.PROFILE, secret_meta.HOSTS, secret_meta.NOT_AFTER)}


def test_a_recorded_different_issuer_still_reissues() -> None:
    d = desired()
    observed = observed_for(d)
    observed.recorded[secret_meta.ISSUER] = "staging"
    (action,) = plan([d], {d.secret: observed}, NOW, {})
    assert action.kind is ActionKind.RENEW and action.reason.code is ReasonCode.ISSUER_CHANGED


def test_different_specs_for_one_secret_conflict() -> None:
    a = desired("a.example.com", source_name="a")
    b = desired("b.example.com", source_name="b")
    actions = plan([b, a], {a.secret: None}, NOW, {})
    assert [(x.kind, x.desired.source.name) for x in actions] == [
        (ActionKind.CONFLICT, "a"),
        (ActionKind.CONFLICT, "b"),
    ]
    assert all(x.reason.code is ReasonCode.SECRET_CONFLICT for x in actions)


def test_identical_specs_collapse_to_the_smallest_source() -> None:
    a = desired(source_name="a")
    b = desired(source_name="b")
    (action,) = plan([b, a], {}, NOW, {})
    assert action.kind is ActionKind.ISSUE
    assert action.desired.source.name == "a"


def test_actions_sorted_by_secret() -> None:
    ds = [desired(secret=SecretRef("ns", name)) for name in ("c", "a", "b")]
    actions = plan(ds, {}, NOW, {})
    assert [a.desired.secret.name for a in actions] == ["a", "b", "c"]


def test_empty_plan() -> None:
    assert plan([], {}, NOW, {}) == ()
