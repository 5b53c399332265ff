"""How often the CA's ARI may drive renewals of one Secret: a CA that keeps answering "renew
now" must not make us order in a loop (every such order sends `replaces`, so the CA's own limits
never stop it).

- Cap: at most ARI_RENEWALS_PER_WEEK renewals whose order sent `replaces` in 7 days (counted
  from the issuance history's flagged entries, core.state.secret_meta).
- Minimum age: right after an ARI-driven renewal, the new certificate is not renewed by ARI
  again before it is min(1 h, 1/10 of its lifetime) old.

Only the ARI moment is held back: renew-before, the lifetime fraction and the floor still renew
the certificate on time (core.renewal.moment).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from certbotk8s.core.model import CertificateInfo
from certbotk8s.core.renewal.moment import AriGate
from certbotk8s.core.state import secret_meta

ARI_RENEWALS_PER_WEEK = 5
CAP_WINDOW = timedelta(days=7)
MIN_AGE = timedelta(hours=1)
MIN_AGE_FRACTION = 10


def ari_gate(info: CertificateInfo, record: Mapping[str, str]) -> AriGate | None:
    """The earliest moment ARI may renew the certificate `info` of a Secret whose controller
    record is `record`, or None when nothing holds it back (the moment may lie in the past)."""
    entries = secret_meta.parse_history(record.get(secret_meta.ISSUANCE_HISTORY))
    gates: list[AriGate] = []
    exempt = [e.at for e in entries if e.replaced]
    if len(exempt) >= ARI_RENEWALS_PER_WEEK:
        oldest = exempt[-ARI_RENEWALS_PER_WEEK]
        gates.append(AriGate(oldest + CAP_WINDOW,
                             f"{ARI_RENEWALS_PER_WEEK} ARI renewals in 7 days (since "
                             f"{secret_meta.format_time(oldest)})"))
    if entries and entries[-1].replaced:
        age = min(MIN_AGE, info.lifetime / MIN_AGE_FRACTION)
        born = max(entries[-1].at, info.not_before)
        gates.append(AriGate(born + age, "the certificate was itself an ARI renewal "
                             f"{secret_meta.format_time(born)}; ARI renews it no sooner than "
                             f"{int(age.total_seconds())} s later"))
    return max(gates, key=lambda g: g.not_before, default=None)
