"""`renew NAMESPACE/SECRET` waits for the controller at least as long as its longest order may
take (the config's DNS-01 propagation wait and order timeout), unless told otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from certbotk8s import cli
from certbotk8s.app.commands import force, renew_now
from certbotk8s.core.renewal import waits

from . import hostile
from .factories import make_config


def test_the_wait_covers_the_longest_order_the_config_allows() -> None:
    propagation, order = timedelta(seconds=300), timedelta(seconds=120)
    longest = waits.order_waits(propagation, order, True, None, datetime.now(UTC))
    wait = waits.controller_wait(propagation, order)
    assert wait == longest.deadline + waits.CONTROLLER_MARGIN == timedelta(seconds=480)
    assert waits.controller_wait(timedelta(seconds=900), timedelta(seconds=600)) == \
        timedelta(seconds=1560)


@pytest.mark.parametrize(("flags", "expected"), [([], 600 + 300 + 60), (["--timeout", "45"], 45)])
def test_renew_waits_for_the_controller_as_long_as_the_configured_order(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: float
) -> None:
    config = make_config(solver={"orderTimeout": 300, "dns01": {"propagationTimeout": 600}})
    secrets = hostile.Secrets([hostile.stored_secret("shop", "web-tls", hostile.good_pem(),
                                                     hostile.leaf_key_pem())])
    waited: list[float] = []

    def wait_for_renewal(store: Any, ref: Any, serial_before: Any, timeout: float) -> bool:
        waited.append(timeout)
        return True  # the controller renewed it

    monkeypatch.setattr(cli, "_config", lambda args: config)
    monkeypatch.setattr(cli, "_api_client", lambda args: object())
    monkeypatch.setattr(renew_now, "build_runtime",
                        lambda config, api: SimpleNamespace(deps=SimpleNamespace(secrets=secrets)))
    monkeypatch.setattr(renew_now, "active_holder", lambda *args: "certbotk8s-0")
    monkeypatch.setattr(force, "wait_for_renewal", wait_for_renewal)
    assert cli.main(["renew", "shop/web-tls", *flags]) == cli.EXIT_OK
    assert waited == [expected]


def test_revoke_renews_with_the_same_default() -> None:
    args = cli._parser().parse_args(["revoke", "shop/web-tls"])
    assert args.timeout is None  # renew_targets takes the configured default (above)
