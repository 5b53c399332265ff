"""A smaller run of the fleet simulation (tests/renewal_sim.py) through the real plan, records,
budget and lifecycle, in both modes: no expiry, no limit breach, no hold the CA would accept,
host changes served within a day (the CronJob: within three runs), the mass revocation
replaced."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.renewal_sim import CONTROLLER, CRONJOB, SimConfig, simulate

QUARTER = SimConfig(certificates=500, days=91, revocation_day=45, revoked=100,
                    outages=((20.0, 6.0), (65.0, 6.0)), host_changes_per_day=1.0)


@pytest.mark.parametrize("mode", [CONTROLLER, CRONJOB])
def test_a_quarter_year_of_500_certificates_never_expires_nor_breaches(mode: str) -> None:
    result = simulate(SimConfig(**{**vars(QUARTER), "mode": mode}))
    assert result.expired == 0
    assert result.ca_refusals == 0 and result.holds_ca_would_accept == 0
    assert result.early_renewals == 0
    assert result.max_domain_counted_per_7d <= result.domain_limit
    assert result.peak_counted_orders_per_3h <= result.orders_per_3h_limit
    assert result.host_changes > 0 and result.host_changes_never_served == 0
    assert result.revoked == 100 and result.revocation_not_replaced == 0
    # the world happened: failed challenges retried, a CA outage met, the 6-day certificates
    # renewed many times over
    assert result.failed_orders > 0 and result.renewals > 3 * result.certificates
    if mode == CONTROLLER:
        assert result.restarts == 12 and result.outage_failures > 0
        assert result.revocation_hours_max <= 12
        assert result.host_changes_served_within_a_day == result.host_changes
    else:
        assert result.cron_runs == 182
        # a run orders each certificate once: a failed challenge waits for the next run
        # (12 h), so a host change whose first two orders failed takes up to three runs
        assert result.host_changes_served_within_a_day >= result.host_changes - 2
        assert result.host_change_hours_max <= 3 * 12 + 1
        # the revocation comes 23 minutes before a run: replaced in it, a failed first order
        # at the next run (one interval plus a run)
        assert result.revocation_hours_max <= 12 + 1


CROWDED = SimConfig(certificates=300, days=30, shared_domains=1, shared_share=1.0,
                    host_changes_per_day=20.0, revoked=0, revocation_day=1000.0, outages=(),
                    restart_every=timedelta(days=1000))


@pytest.mark.parametrize("mode", [CONTROLLER, CRONJOB])
def test_a_host_change_held_by_a_busy_domain_keeps_the_names_held_renewed(mode: str) -> None:
    """All certificates on one registered domain, 20 host changes a day (half replace every
    name, so their orders count): the domain's 50 certificates per 7 days run out and host
    changes wait for days. Meanwhile each Secret's certificate renews for the names it holds
    (with `replaces`, exempt), so none runs out, and the host change goes when the budget
    allows."""
    result = simulate(SimConfig(**{**vars(CROWDED), "mode": mode}))
    assert result.holds > 0  # the budget did hold host changes
    assert result.interim_renewals > 0  # and the names held were renewed meanwhile
    assert result.expired_while_host_change_waited == 0 and result.expired == 0
    assert result.holds_ca_would_accept == 0
    # The budget counts orders in flight and a run's own issuances: waiters woken when the
    # domain frees one slot do not all order into it (the CA refused 1,307 / 554 before).
    assert result.ca_refusals == 0
    assert result.max_domain_counted_per_7d <= result.domain_limit
