"""cert-manager's Ingress annotations read through `migration.certManagerIssuers`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certbotk8s.core.config.settings import ConfigError
from certbotk8s.core.model import KeyType, SecretRef, SourceKind
from certbotk8s.core.sources import cert_manager
from certbotk8s.core.sources.annotations import is_opted_in, parse_source_options
from certbotk8s.core.sources.discovery import ANNOTATION_IGNORED, discover
from tests.unit.factories import ingress, make_config, tls_entry

MIGRATING = make_config(migration={"certManagerIssuers": {"letsencrypt-prod": "le",
                                                          "letsencrypt-staging": "staging"}})
PLAIN = make_config()
SHIM = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}


def test_an_ingress_annotated_only_for_cert_manager_is_served() -> None:
    found = discover([ingress(annotations=dict(SHIM),
                              tls=[tls_entry("shop-tls", "shop.example.com")])], [], [], [],
                     MIGRATING)
    assert found.problems == ()
    (d,) = found.desired
    assert d.secret == SecretRef("default", "shop-tls")
    assert d.spec.issuer == "le"
    assert d.spec.key_type is KeyType.ECDSA_P256  # the config's default: no key annotation


def test_without_migration_cert_manager_annotations_are_not_read() -> None:
    assert not is_opted_in(SHIM, PLAIN)
    found = discover([ingress(annotations=dict(SHIM),
                              tls=[tls_entry("shop-tls", "shop.example.com")])], [], [], [],
                     PLAIN)
    assert found.desired == () and found.problems == () and found.notices == ()
    theirs = {**SHIM, "cert-manager.io/private-key-algorithm": "RSA",
              "certbotk8s.io/enabled": "true"}
    options, errors = parse_source_options(theirs, PLAIN, SourceKind.INGRESS, "web")
    assert errors == () and options is not None
    assert options.key_type is KeyType.ECDSA_P256 and options.issuer == "le"


@pytest.mark.parametrize("key", ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"])
def test_issuer_names_are_mapped(key: str) -> None:
    assert is_opted_in({key: "letsencrypt-staging"}, MIGRATING)
    options, errors = parse_source_options({key: "letsencrypt-staging"}, MIGRATING,
                                           SourceKind.INGRESS, "web")
    assert errors == () and options is not None and options.issuer == "staging"


def test_an_unmapped_issuer_is_refused_naming_the_config_key() -> None:
    found = discover([ingress(annotations={"cert-manager.io/cluster-issuer": "vault"},
                              tls=[tls_entry("t", "a.example.com")])], [], [], [], MIGRATING)
    assert found.desired == ()
    (problem,) = found.problems
    assert problem.reason == cert_manager.ISSUER_NOT_MAPPED
    assert "migration.certManagerIssuers" in problem.message and "'vault'" in problem.message


def test_both_issuer_kinds_at_once_are_refused() -> None:
    _, errors = parse_source_options({**SHIM, "cert-manager.io/issuer": "letsencrypt-prod"},
                                     MIGRATING, SourceKind.INGRESS, "web")
    assert [e.key for e in errors] == ["cert-manager.io/issuer"]


@pytest.mark.parametrize(("algorithm", "size", "expected"), [
    ("RSA", None, KeyType.RSA_2048),
    ("rsa", "4096", KeyType.RSA_4096),
    (None, "3072", KeyType.RSA_3072),  # cert-manager's default algorithm is RSA
    ("ECDSA", None, KeyType.ECDSA_P256),
    ("ECDSA", "384", KeyType.ECDSA_P384),
])
def test_private_key_annotations_become_the_key_type(
        algorithm: str | None, size: str | None, expected: KeyType) -> None:
    annotations = dict(SHIM)
    if algorithm is not None:
        annotations["cert-manager.io/private-key-algorithm"] = algorithm
    if size is not None:
        annotations["cert-manager.io/private-key-size"] = size
    options, errors = parse_source_options(annotations, MIGRATING, SourceKind.INGRESS, "web")
    assert errors == () and options is not None and options.key_type is expected


@pytest.mark.parametrize(("key", "value"), [
    ("cert-manager.io/private-key-algorithm", "Ed25519"),
    ("cert-manager.io/private-key-size", "521"),
    ("cert-manager.io/renew-before", "soon"),
    ("cert-manager.io/cluster-issuer", "x" * 300),
])
def test_bad_values_are_refused_with_their_key(key: str, value: str) -> None:
    annotations = {**SHIM, "cert-manager.io/private-key-algorithm": "ECDSA", key: value}
    options, errors = parse_source_options(annotations, MIGRATING, SourceKind.INGRESS, "web")
    assert options is None
    assert [e.key for e in errors] == [key]
    assert all(len(str(e)) < 600 for e in errors)


def test_renew_before_in_go_form() -> None:
    options, errors = parse_source_options(
        {**SHIM, "cert-manager.io/renew-before": "360h0m0s"}, MIGRATING, SourceKind.INGRESS,
        "web")
    assert errors == () and options is not None
    assert options.renew_before == timedelta(hours=360)


def test_certbotk8s_annotations_win() -> None:
    options, errors = parse_source_options({
        **SHIM, "certbotk8s.io/issuer": "staging", "certbotk8s.io/key-type": "ecdsa-p384",
        "certbotk8s.io/renew-before": "10d",
        "cert-manager.io/private-key-algorithm": "RSA",
        "cert-manager.io/renew-before": "720h"}, MIGRATING, SourceKind.INGRESS, "web")
    assert errors == () and options is not None
    assert (options.issuer, options.key_type, options.renew_before) == (
        "staging", KeyType.ECDSA_P384, timedelta(days=10))


def test_duration_and_other_keys_are_reported_as_ignored_not_refused() -> None:
    annotations = {**SHIM, "cert-manager.io/duration": "2160h",
                   "cert-manager.io/common-name": "shop.example.com",
                   "cert-manager.io/issuer-kind": "ClusterIssuer"}
    found = discover([ingress(annotations=annotations,
                              tls=[tls_entry("t", "shop.example.com")])], [], [], [],
                     MIGRATING)
    assert found.problems == () and len(found.desired) == 1
    (notice,) = found.notices
    assert notice.reason == ANNOTATION_IGNORED
    assert "'cert-manager.io/duration'" in notice.message
    assert "'cert-manager.io/common-name'" in notice.message
    assert "lifetime" in notice.message
    assert "issuer-kind" not in notice.message  # read (it only says which kind the name is)


def test_a_flood_of_ignored_keys_is_one_bounded_notice() -> None:
    annotations = {**SHIM, **{f"cert-manager.io/k{i}": "v" for i in range(500)}}
    options, errors = parse_source_options(annotations, MIGRATING, SourceKind.INGRESS, "web")
    assert errors == () and options is not None
    (notice,) = options.notices
    assert "and 490 more" in notice and len(notice) < 600


def test_the_mapping_must_name_configured_issuers() -> None:
    with pytest.raises(ConfigError, match=r"migration\.certManagerIssuers\.old: names no "
                                          r"configured issuer"):
        make_config(migration={"certManagerIssuers": {"old": "nope"}})
    with pytest.raises(ConfigError, match="unknown field"):
        make_config(migration={"certManagerIssuer": {}})
    assert not PLAIN.migration.from_cert_manager and MIGRATING.migration.from_cert_manager
