"""Why a certificate is (or is not) renewed: the codes that end up in logs, Events and status."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ReasonCode(enum.StrEnum):
    SECRET_MISSING = "SecretMissing"
    NOT_MANAGED = "NotManaged"
    CERTIFICATE_UNPARSABLE = "CertificateUnparsable"
    KEY_MISMATCH = "KeyMismatch"
    HOSTS_CHANGED = "HostsChanged"
    KEY_TYPE_CHANGED = "KeyTypeChanged"
    ISSUER_CHANGED = "IssuerChanged"
    PROFILE_CHANGED = "ProfileChanged"
    RENEWAL_REQUESTED = "RenewalRequested"
    EXPIRED = "Expired"
    INSIDE_ARI_WINDOW = "InsideAriWindow"
    INSIDE_RENEW_BEFORE = "InsideRenewBefore"
    EXPIRING_LIFETIME_FRACTION = "ExpiringLifetimeFraction"
    LIFETIME_FLOOR = "LifetimeFloor"
    # Not renewal triggers: used by plan for its other outcomes.
    UP_TO_DATE = "UpToDate"
    SECRET_CONFLICT = "SecretConflict"
    METADATA_REPAIR = "MetadataRepair"
    INTERNAL_ERROR = "InternalError"  # the Secret could not be read or planned: nothing done


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
