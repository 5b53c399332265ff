"""The ACME engine against the lab's real Pebble and BIND: issuance, retries, EAB, ARI, errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dns.query
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.update
import pytest
import requests
from cryptography import x509

from certbotk8s.adapters.acme.engine import AcmeEngine, ExternalAccountBinding, OrderRequest
from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.http01.responder import Http01Solver
from certbotk8s.core.errors import AcmeProblemError, ChallengeFailed, OrderAbandoned
from certbotk8s.core.model import ChallengeType, KeyType
from certbotk8s.core.ports import ChallengeSolver, PendingChallenge

from .conftest import EngineFactory, Lab, verify_chain

pytestmark = pytest.mark.lab


class RecordingSolver:
    """Wraps a real solver and records what it was asked to present (for assertions)."""

    def __init__(self, inner: ChallengeSolver) -> None:
        self.inner = inner
        self.challenge_type = inner.challenge_type
        self.presented: list[PendingChallenge] = []
        self.cleaned: list[PendingChallenge] = []

    def present(self, challenge: PendingChallenge) -> None:
        self.presented.append(challenge)
        self.inner.present(challenge)

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        self.inner.wait_until_ready(challenges)

    def clean_up(self, challenge: PendingChallenge) -> None:
        self.cleaned.append(challenge)
        self.inner.clean_up(challenge)


def _txt_values(lab: Lab, name: str) -> set[str]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = lab.dns_port
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()
    return {b"".join(r.strings).decode() for r in answer}


def _nsupdate(lab: Lab, zone: str, build: str, name: str, rtype: str, value: str) -> None:
    keyname = dns.name.from_text(lab["DNS_TSIG_NAME"])
    keyring = {keyname: dns.tsig.Key(keyname, lab["DNS_TSIG_SECRET"], lab["DNS_TSIG_ALGORITHM"])}
    update = dns.update.UpdateMessage(zone, keyring=keyring, keyname=keyname)
    relative = dns.name.from_text(name).relativize(dns.name.from_text(zone))
    if build == "add":
        update.add(relative, 60, rtype, value)
    else:
        update.delete(relative, rtype)
    response = dns.query.tcp(update, "127.0.0.1", port=lab.dns_port, timeout=5)
    assert response.rcode() == 0


def test_http01_two_names_default_profile(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    engine = make_engine()
    hosts = tuple(sorted((lab.host("a"), lab.host("b"))))
    cert = engine.issue(OrderRequest(hosts=hosts, profile="default"),
                        {ChallengeType.HTTP01: http01_solver})
    chain = verify_chain(cert.fullchain_pem, lab.roots())
    assert len(chain) >= 2
    assert cert.info.sans == hosts
    assert cert.info.key_type is KeyType.ECDSA_P256
    assert timedelta(days=89) < cert.info.lifetime <= timedelta(days=90)
    assert chain[0].subject == x509.Name([])  # Pebble: names only in the SANs
    assert b"PRIVATE KEY" in cert.key_pem
    # every token was removed from the store afterwards
    assert http01_solver.store.get("anything") is None


def test_dns01_wildcard_and_apex_shortlived_p384(
    lab: Lab, make_engine: EngineFactory, dns01_solver: DnsSolver
) -> None:
    engine = make_engine()
    apex = lab.host("w")
    recorder = RecordingSolver(dns01_solver)
    cert = engine.issue(
        OrderRequest(hosts=(f"*.{apex}", apex), challenge=ChallengeType.DNS01,
                     key_type=KeyType.ECDSA_P384, profile="shortlived"),
        {ChallengeType.DNS01: recorder},
    )
    verify_chain(cert.fullchain_pem, lab.roots())
    assert cert.info.sans == (f"*.{apex}", apex)
    assert cert.info.key_type is KeyType.ECDSA_P384
    assert timedelta(days=5, hours=23) < cert.info.lifetime <= timedelta(days=6)
    # both authorizations (wildcard and apex) were solved at the same name, then removed
    assert {c.wildcard for c in recorder.presented} == {True, False}
    assert recorder.cleaned == recorder.presented
    assert _txt_values(lab, f"_acme-challenge.{apex}") == set()


@pytest.mark.parametrize("key_type", [KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096])
def test_rsa_key_types(lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver,
                       key_type: KeyType) -> None:
    cert = make_engine().issue(
        OrderRequest(hosts=(lab.host("rsa"),), key_type=key_type, profile="default"),
        {ChallengeType.HTTP01: http01_solver},
    )
    verify_chain(cert.fullchain_pem, lab.roots())
    assert cert.info.key_type is key_type


def test_twenty_issuances_at_half_the_nonces_rejected(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    seen: list[RequestRecord] = []
    engine = make_engine("ACME_DIRECTORY_FLAKY", requests_seen=seen)
    issued = [
        engine.issue(OrderRequest(hosts=(lab.host("flaky"),), profile="default"),
                     {ChallengeType.HTTP01: http01_solver})
        for _ in range(20)
    ]
    roots = lab.roots("PEBBLE_MGMT_FLAKY")
    for cert in issued:
        verify_chain(cert.fullchain_pem, roots)
    rejected = [r for r in seen if r.method == "POST" and r.status == 400]
    # at 50 % rejection the library alone fails nearly every order; we saw them and went on
    assert len(rejected) >= 20


def test_valid_authorizations_are_reused_not_solved_again(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    engine = make_engine()
    host = lab.host("reuse")
    recorder = RecordingSolver(http01_solver)
    for _ in range(11):
        cert = engine.issue(OrderRequest(hosts=(host,), profile="default"),
                            {ChallengeType.HTTP01: recorder})
        assert cert.info.sans == (host,)
    # the first order must be solved; Pebble reuses a valid authorization half of the time
    # (PEBBLE_AUTHZREUSE=50), so 10 further orders all needing a challenge is a 1-in-1024 event.
    assert 1 <= len(recorder.presented) < 11


def test_ari_window_read_and_renewal_sends_replaces(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    engine = make_engine()
    host = lab.host("ari")
    solvers = {ChallengeType.HTTP01: http01_solver}
    first = engine.issue(OrderRequest(hosts=(host,), profile="shortlived"), solvers)
    window = engine.renewal_info(first.fullchain_pem)
    assert window is not None
    assert first.info.not_before < window.start < window.end < first.info.not_after

    renewed = engine.issue(
        OrderRequest(hosts=(host,), profile="shortlived", replaces=first.info.ari_cert_id),
        solvers,
    )
    assert renewed.info.serial != first.info.serial
    # Pebble marks the replaced certificate: a second replacement of it is refused, which
    # proves `replaces` reached the CA.
    with pytest.raises(AcmeProblemError) as refused:
        engine.issue(
            OrderRequest(hosts=(host,), profile="shortlived", replaces=first.info.ari_cert_id),
            solvers,
        )
    assert refused.value.problem.type.endswith(":alreadyReplaced")


def test_replaces_the_ca_cannot_match_is_one_refusal_not_an_outage(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    # Pebble answers a `replaces` naming a certificate it holds no order for with a 500. That
    # is its answer to this order: one request, the problem raised as is (the caller then
    # orders without `replaces`), never retried or taken for the CA being down.
    seen: list[RequestRecord] = []
    engine = make_engine(requests_seen=seen)
    host = lab.host("unmatched")
    solvers = {ChallengeType.HTTP01: http01_solver}
    first = engine.issue(OrderRequest(hosts=(host,), profile="default"), solvers)
    authority_key_id, _serial = first.info.ari_cert_id.split(".")
    unknown = f"{authority_key_id}.AQIDBAUGBwgJ"  # a serial this CA never issued
    seen.clear()
    with pytest.raises(AcmeProblemError) as refused:
        engine.issue(OrderRequest(hosts=(host,), profile="default", replaces=unknown), solvers)
    assert refused.value.status is not None and refused.value.status >= 500
    assert refused.value.problem.type.endswith(":serverInternal")
    assert len([r for r in seen if r.url == engine.directory["newOrder"]]) == 1
    renewed = engine.issue(OrderRequest(hosts=(host,), profile="default"), solvers)
    assert renewed.info.sans == (host,)


def test_ari_window_set_by_the_ca_is_read_back(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    engine = make_engine()
    cert = engine.issue(OrderRequest(hosts=(lab.host("ariset"),), profile="default"),
                        {ChallengeType.HTTP01: http01_solver})
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=2)
    leaf_pem = cert.fullchain_pem.split(b"-----END CERTIFICATE-----")[0] + (
        b"-----END CERTIFICATE-----\n"
    )
    body = {
        "Certificate": leaf_pem.decode(),
        "ARIResponse": json.dumps({"suggestedWindow": {
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"),
        }}),
    }
    response = requests.post(f"{lab['PEBBLE_MGMT']}/set-renewal-info/", json=body,
                             verify=lab["ACME_CA_BUNDLE"], timeout=5)
    assert response.ok, response.text
    window = engine.renewal_info(cert.fullchain_pem)
    assert window is not None
    assert (window.start, window.end) == (start, end)


def test_external_account_binding(lab: Lab, make_engine: EngineFactory,
                                  http01_solver: Http01Solver) -> None:
    without = make_engine("ACME_DIRECTORY_EAB")
    with pytest.raises(AcmeProblemError) as refused:
        without.ensure_account()
    assert refused.value.problem.type.endswith(":externalAccountRequired")

    wrong = make_engine("ACME_DIRECTORY_EAB", eab=ExternalAccountBinding(
        lab["EAB_KID"], "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
    with pytest.raises(AcmeProblemError):
        wrong.ensure_account()

    engine = make_engine("ACME_DIRECTORY_EAB", eab=ExternalAccountBinding(
        lab["EAB_KID"], lab["EAB_HMAC_KEY"]))
    uri = engine.ensure_account()
    assert uri.startswith(lab["ACME_DIRECTORY_EAB"].removesuffix("dir"))
    cert = engine.issue(OrderRequest(hosts=(lab.host("eab"),), profile="default"),
                        {ChallengeType.HTTP01: http01_solver})
    verify_chain(cert.fullchain_pem, lab.roots("PEBBLE_MGMT_EAB"))


def test_lost_account_url_is_recovered_for_the_same_key(lab: Lab) -> None:
    from certbotk8s.core.pki import keys

    key = keys.generate_key(KeyType.ECDSA_P256)
    first = AcmeEngine(lab["ACME_DIRECTORY"], key, ca_bundle=lab["ACME_CA_BUNDLE"])
    assert first.find_account() is None  # onlyReturnExisting: no account yet is not an error
    uri = first.ensure_account()
    again = AcmeEngine(lab["ACME_DIRECTORY"], key, ca_bundle=lab["ACME_CA_BUNDLE"])
    assert again.ensure_account() == uri


def test_unreachable_http01_target_names_host_and_ca_detail(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    host = lab.host("unreach")
    # point the name at 127.0.0.2, where nothing listens on the HTTP-01 port
    _nsupdate(lab, lab["DNS_ZONE"], "add", host, "A", "127.0.0.2")
    try:
        no_self_check = Http01Solver(http01_solver.store)
        with pytest.raises(ChallengeFailed) as failed:
            make_engine().issue(OrderRequest(hosts=(host,), profile="default"),
                                {ChallengeType.HTTP01: no_self_check})
    finally:
        _nsupdate(lab, lab["DNS_ZONE"], "delete", host, "A", "")
    message = str(failed.value)
    assert host in message
    assert failed.value.problem.type.startswith("urn:ietf:params:acme:error:")
    assert "127.0.0.2" in failed.value.problem.detail


def test_self_check_catches_unreachable_target_before_the_ca(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    from certbotk8s.adapters.http01.responder import SelfCheck
    from certbotk8s.core.errors import Http01SolverError

    host = lab.host("selfcheck")
    _nsupdate(lab, lab["DNS_ZONE"], "add", host, "A", "127.0.0.2")
    try:
        solver = Http01Solver(http01_solver.store, SelfCheck(
            port=lab.http01_port, resolver=lab["DNS_SERVER"], timeout=0.5))
        with pytest.raises(Http01SolverError, match=host):
            make_engine().issue(OrderRequest(hosts=(host,), profile="default"),
                                {ChallengeType.HTTP01: solver})
    finally:
        _nsupdate(lab, lab["DNS_ZONE"], "delete", host, "A", "")


def test_dns01_cleanup_leaves_other_values(
    lab: Lab, make_engine: EngineFactory, dns01_solver: DnsSolver
) -> None:
    host = lab.host("keep")
    name = f"_acme-challenge.{host}"
    _nsupdate(lab, lab["DNS_ZONE"], "add", name, "TXT", '"another-order-value"')
    cert = make_engine().issue(
        OrderRequest(hosts=(host,), challenge=ChallengeType.DNS01, profile="default"),
        {ChallengeType.DNS01: dns01_solver},
    )
    assert cert.info.sans == (host,)
    assert _txt_values(lab, name) == {"another-order-value"}


def test_dns01_follows_cname_delegation(
    lab: Lab, make_engine: EngineFactory, dns01_solver: DnsSolver
) -> None:
    host = lab.host("cname")
    target = f"_acme-challenge.{host.split('.')[0]}.{lab['DNS_ZONE_DELEGATED']}"
    _nsupdate(lab, lab["DNS_ZONE"], "add", f"_acme-challenge.{host}", "CNAME", f"{target}.")
    recorder = RecordingSolver(dns01_solver)
    try:
        cert = make_engine().issue(
            OrderRequest(hosts=(host,), challenge=ChallengeType.DNS01, profile="default"),
            {ChallengeType.DNS01: recorder},
        )
        # (BIND keeps no TXT beside a CNAME, so Pebble could only have found it at the target)
        assert dns01_solver.record_for(host, "v").fqdn == target
    finally:
        _nsupdate(lab, lab["DNS_ZONE"], "delete", f"_acme-challenge.{host}", "CNAME", "")
    assert cert.info.sans == (host,)
    assert _txt_values(lab, target) == set()  # cleaned up in the delegated zone


def test_dns01_propagation_times_out_when_a_nameserver_never_answers(lab: Lab) -> None:
    from certbotk8s.core.errors import DnsSolverError

    # the zone's nameserver is asked on a port where nothing answers: never propagated
    solver = lab.dns01_solver(nameserver_port=1, timeout=0.3)
    challenge = PendingChallenge(type=ChallengeType.DNS01, domain=lab.host("stuck"),
                                 wildcard=False, token="t", key_authorization="k",
                                 dns_value="value-that-never-shows")
    solver.present(challenge)
    try:
        with pytest.raises(DnsSolverError, match="not visible"):
            solver.wait_until_ready([challenge])
    finally:
        solver.clean_up(challenge)
    assert _txt_values(lab, f"_acme-challenge.{challenge.domain}") == set()


def test_preferred_chain_selects_the_alternate_root(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver
) -> None:
    # lab/up starts the main Pebble with PEBBLE_ALTERNATE_ROOTS=1: two chains per certificate.
    alternate = lab.roots_at(1)[0]
    name = alternate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    default_root = lab.roots()[0]
    cert = make_engine().issue(
        OrderRequest(hosts=(lab.host("chain"),), profile="default", preferred_chain=str(name)),
        {ChallengeType.HTTP01: http01_solver})
    verify_chain(cert.fullchain_pem, [alternate])
    with pytest.raises(AssertionError):
        verify_chain(cert.fullchain_pem, [default_root])
    plain = make_engine().issue(OrderRequest(hosts=(lab.host("chain"),), profile="default"),
                                {ChallengeType.HTTP01: http01_solver})
    verify_chain(plain.fullchain_pem, [default_root])


def test_lead_lost_after_finalize_still_fetches_the_certificate_only_this_process_can_use(
    lab: Lab, make_engine: EngineFactory, dns01_solver: DnsSolver
) -> None:
    seen: list[RequestRecord] = []
    engine = make_engine(requests_seen=seen)
    host = lab.host("late-lead")

    def keep_going() -> bool:  # the Lease is lost the moment finalize has been sent
        return not any("finalize" in r.url for r in seen)

    cert = engine.issue(OrderRequest(hosts=(host,), challenge=ChallengeType.DNS01),
                        {ChallengeType.DNS01: dns01_solver}, keep_going=keep_going)
    assert cert.info.sans == (host,)
    finalized = next(i for i, r in enumerate(seen) if "finalize" in r.url)
    assert any("cert" in r.url for r in seen[finalized + 1:])  # fetched after the lead was lost


def test_lead_lost_before_finalize_abandons_the_order_unfinalized(
    lab: Lab, make_engine: EngineFactory, dns01_solver: DnsSolver
) -> None:
    seen: list[RequestRecord] = []
    engine = make_engine(requests_seen=seen)
    solver = RecordingSolver(dns01_solver)
    with pytest.raises(OrderAbandoned):
        engine.issue(OrderRequest(hosts=(lab.host("lost-lead"),), challenge=ChallengeType.DNS01),
                     {ChallengeType.DNS01: solver}, keep_going=lambda: not solver.presented)
    assert not any("finalize" in r.url for r in seen)
