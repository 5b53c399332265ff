"""A smaller run of the fleet simulation (tests/renewal_sim.py): no expiry, no limit breach,
renewals spread across the ARI windows, failures retried, a CA incident absorbed."""

from __future__ import annotations

from tests.renewal_sim import SimConfig, simulate


def test_a_fleet_for_ninety_days_never_expires_and_never_breaches_a_limit() -> None:
    # 360 sources at once: more than the account's 300 new orders per 3 hours
    result = simulate(SimConfig(certificates=400, days=90, domains=20, incident_day=45,
                                order_failure=0.05, burst_share=0.9))
    assert result.expired == 0 and result.never_issued == 0
    assert result.limit_breaches == 0
    assert result.failed_orders > 0 and result.renewals > result.certificates
    assert result.after_floor == 0 and result.renewal_fraction_latest <= 0.9
    # spread: every quarter of the windows gets a fair share of the renewals made in them
    quarters = result.renewals_in_ari_window_quarters
    assert min(quarters) > sum(quarters) / 4 * 0.7, quarters
    # the day-0 burst and the greedy namespace met the budget, and it held them back
    assert result.holds > 0
