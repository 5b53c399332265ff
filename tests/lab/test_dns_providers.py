"""DNS-01 providers against real servers: lexicon to PowerDNS and Route53 (moto), webhook, exec."""

from __future__ import annotations

import json
import logging
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import dns.message
import dns.query
import dns.rdatatype
import pytest
import requests

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.adapters.dns.command import ExecProvider
from certbotk8s.adapters.dns.lexicon import LexiconProvider
from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.dns.webhook import WebhookProvider
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge, TxtRecord
from tests.lab.webhook_stub import QuietHandler

from .conftest import EngineFactory, Lab, verify_chain

pytestmark = pytest.mark.lab

WRONG_KEY = "wrong-api-key-0123456789abcdef"


def txt_at(server: str, fqdn: str) -> set[str]:
    """TXT values the authoritative server `server` (host:port) answers at `fqdn`."""
    host, port = server.rsplit(":", 1)
    response = dns.query.udp(dns.message.make_query(fqdn, dns.rdatatype.TXT), host,
                             port=int(port), timeout=3)
    return {b"".join(r.strings).decode() for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT for r in rrset}


def challenge(domain: str, value: str, wildcard: bool = False) -> PendingChallenge:
    return PendingChallenge(type=ChallengeType.DNS01, domain=domain, wildcard=wildcard,
                            token="t", key_authorization="k", dns_value=value)


# --- PowerDNS through lexicon ---------------------------------------------------------------


def powerdns_solver(lab: Lab, api_key: str | None = None) -> DnsSolver:
    provider = LexiconProvider("powerdns", {"pdns_server": lab["PDNS_API"]},
                               {"auth_token": api_key or lab["PDNS_API_KEY"]})
    return DnsSolver(provider, lab.lookup("PDNS_SERVER"), name="pdns")


def _pdns_add_txt(lab: Lab, fqdn: str, value: str) -> None:
    """Another client's TXT value, written straight through PowerDNS's API."""
    response = requests.patch(
        f"{lab['PDNS_API']}/api/v1/servers/localhost/zones/{lab['PDNS_ZONE']}.",
        headers={"X-API-Key": lab["PDNS_API_KEY"]}, timeout=5,
        json={"rrsets": [{"name": f"{fqdn}.", "type": "TXT", "ttl": 60, "changetype": "REPLACE",
                          "records": [{"content": f'"{value}"', "disabled": False}]}]})
    response.raise_for_status()


def test_powerdns_lexicon_issues_a_wildcard_end_to_end(
    lab: Lab, make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tldextract

    def no_suffix_list(*args: object, **kwargs: object) -> None:
        raise AssertionError("lexicon's zone guessing (public suffix list download) ran")

    monkeypatch.setattr(tldextract.TLDExtract, "__call__", no_suffix_list)
    apex = f"w-{uuid.uuid4().hex[:10]}.{lab['PDNS_ZONE']}"
    name = f"_acme-challenge.{apex}"
    _pdns_add_txt(lab, name, "another-order-value")
    engine = make_engine("ACME_DIRECTORY_PDNS")
    cert = engine.issue(
        OrderRequest(hosts=(f"*.{apex}", apex), challenge=ChallengeType.DNS01,
                     profile="default"),
        {ChallengeType.DNS01: powerdns_solver(lab)},
    )
    assert cert.info.sans == tuple(sorted((f"*.{apex}", apex)))
    verify_chain(cert.fullchain_pem, lab.roots("PEBBLE_MGMT_PDNS"))
    # both challenge values (wildcard + apex share the name) removed, the other value kept
    assert txt_at(lab["PDNS_SERVER"], name) == {"another-order-value"}


def test_powerdns_wrong_api_key_is_a_clear_error_without_the_key(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    solver = powerdns_solver(lab, WRONG_KEY)
    ch = challenge(f"k-{uuid.uuid4().hex[:8]}.{lab['PDNS_ZONE']}", "v")
    with pytest.raises(DnsSolverError) as info:
        solver.present(ch)
    message = str(info.value)
    assert "lexicon powerdns" in message and lab["PDNS_API"] in message
    assert "401" in message or "Unauthorized" in message
    for text in (message, caplog.text):
        assert WRONG_KEY not in text and lab["PDNS_API_KEY"] not in text
    # clean-up fails with the same key, but ends as soon as every authoritative server shows
    # the value absent (it never got there)
    solver.clean_up(ch)
    assert txt_at(lab["PDNS_SERVER"], f"_acme-challenge.{ch.domain}") == set()


# --- Route53 through lexicon, on moto ---------------------------------------------------------

MOTO_KEY_ID = "AKIACERTBOTK8STEST01"
MOTO_SECRET = "moto-secret-access-key-never-printed"


@pytest.fixture
def route53(lab: Lab) -> Any:
    return boto3.client("route53", endpoint_url=lab["MOTO_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=MOTO_KEY_ID, aws_secret_access_key=MOTO_SECRET)


@pytest.fixture
def hosted_zone(route53: Any) -> Iterator[tuple[str, str]]:
    zone = f"r53-{uuid.uuid4().hex[:8]}.test"
    created = route53.create_hosted_zone(Name=zone, CallerReference=zone)
    yield zone, created["HostedZone"]["Id"]


def _txt_in_route53(route53: Any, zone_id: str, fqdn: str) -> set[str]:
    listed = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {r["Value"].strip('"') for rrset in listed
            if rrset["Type"] == "TXT" and rrset["Name"] == f"{fqdn}."
            for r in rrset["ResourceRecords"]}


def route53_solver(lab: Lab, zone: str) -> DnsSolver:
    provider = LexiconProvider("route53", {"endpoint_url": lab["MOTO_ENDPOINT"]},
                               {"auth_access_key": MOTO_KEY_ID,
                                "auth_access_secret": MOTO_SECRET})
    # moto serves the API, not DNS: the configured zone is used as is (no SOA lookup)
    return DnsSolver(provider, lab.lookup(), name="route53", zones=(zone,), cleanup_timeout=1)


def test_route53_present_adds_exactly_the_value_and_cleanup_removes_only_it(
    lab: Lab, route53: Any, hosted_zone: tuple[str, str]
) -> None:
    zone, zone_id = hosted_zone
    fqdn = f"_acme-challenge.www.{zone}"
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "CREATE", "ResourceRecordSet": {
            "Name": f"{fqdn}.", "Type": "TXT", "TTL": 60,
            "ResourceRecords": [{"Value": '"another-order-value"'}]}}]})
    solver = route53_solver(lab, zone)
    ours, second = challenge(f"www.{zone}", "our-value-1"), challenge(f"www.{zone}", "v2", True)
    solver.present(ours)
    assert _txt_in_route53(route53, zone_id, fqdn) == {"another-order-value", "our-value-1"}
    solver.present(second)
    assert _txt_in_route53(route53, zone_id, fqdn) == {"another-order-value", "our-value-1",
                                                        "v2"}
    solver.clean_up(ours)
    assert _txt_in_route53(route53, zone_id, fqdn) == {"another-order-value", "v2"}
    solver.clean_up(second)
    assert _txt_in_route53(route53, zone_id, fqdn) == {"another-order-value"}
    # a name that held only our value is removed entirely
    alone = challenge(f"api.{zone}", "alone")
    solver.present(alone)
    assert _txt_in_route53(route53, zone_id, f"_acme-challenge.api.{zone}") == {"alone"}
    solver.clean_up(alone)
    assert _txt_in_route53(route53, zone_id, f"_acme-challenge.api.{zone}") == set()


def test_route53_missing_zone_and_names_outside_the_zones_are_refused(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = f"absent-{uuid.uuid4().hex[:8]}.test"
    with pytest.raises(DnsSolverError) as info:
        route53_solver(lab, missing).present(challenge(f"www.{missing}", "v"))
    assert "lexicon route53" in str(info.value) and missing in str(info.value)
    assert "No domain found" in str(info.value)
    with pytest.raises(DnsSolverError, match="outside its zones"):
        route53_solver(lab, missing).present(challenge("www.elsewhere.test", "v"))
    assert MOTO_SECRET not in str(info.value) and MOTO_SECRET not in caplog.text


# --- where Route53 credentials come from: Secrets, or the pod's identity when asked (ambient) --

AWS_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A process environment with no AWS identity at all (no files, no instance metadata);
    each test adds what it is about."""
    for name in AWS_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def _web_identity(env: pytest.MonkeyPatch, lab: Lab, tmp_path: Path) -> None:
    """What EKS's IRSA webhook puts in a pod: a role and a projected token file; STS is moto's."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln")
    env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/certbotk8s-dns")
    env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    env.setenv("AWS_ENDPOINT_URL_STS", lab["MOTO_ENDPOINT"])


def test_route53_ambient_credentials_come_from_web_identity_through_sts(
    lab: Lab, route53: Any, hosted_zone: tuple[str, str], aws_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    zone, zone_id = hosted_zone
    ambient = LexiconProvider("route53", {"endpoint_url": lab["MOTO_ENDPOINT"]}, {},
                              ambient=True)
    solver = DnsSolver(ambient, lab.lookup(), name="route53", zones=(zone,), cleanup_timeout=1)
    ours = challenge(f"www.{zone}", "ambient-value")
    with pytest.raises(DnsSolverError, match="Unable to locate credentials"):
        solver.present(ours)  # no identity in the environment: nothing to fall back on
    _web_identity(aws_environment, lab, tmp_path)
    solver.present(ours)  # AssumeRoleWithWebIdentity at moto's STS gave the keys
    assert _txt_in_route53(route53, zone_id, f"_acme-challenge.www.{zone}") == {"ambient-value"}
    solver.clean_up(ours)
    assert _txt_in_route53(route53, zone_id, f"_acme-challenge.www.{zone}") == set()
    # The same web identity is what boto3's chain assumed: moto's STS names the role.
    sts = boto3.session.Session().client("sts", region_name="us-east-1")
    assert ":assumed-role/certbotk8s-dns/" in sts.get_caller_identity()["Arn"]


def test_route53_without_ambient_never_reads_the_environment(
    lab: Lab, hosted_zone: tuple[str, str], aws_environment: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Keys and a web identity in the process environment, no credentials configured and no
    `ambient`: refused, not signed with what the environment holds (lexicon's own client
    falls back to boto3's default chain)."""
    zone, _ = hosted_zone
    aws_environment.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01")
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret-never-used")
    _web_identity(aws_environment, lab, tmp_path)
    provider = LexiconProvider("route53", {"endpoint_url": lab["MOTO_ENDPOINT"]}, {})
    solver = DnsSolver(provider, lab.lookup(), name="route53", zones=(zone,), cleanup_timeout=1)
    with pytest.raises(DnsSolverError) as info:
        solver.present(challenge(f"www.{zone}", "v"))
    assert "no AWS credentials" in str(info.value)
    assert "credentials: ambient" in str(info.value)


# --- webhook, writing through to BIND ----------------------------------------------------------

TOKEN = "webhook-bearer-token-never-printed"


class _Receiver(QuietHandler):
    """The user's webhook: checks the bearer token, writes through RFC 2136 to the lab BIND."""

    writer: Rfc2136Provider
    calls: list[dict[str, str]]
    fail_first: list[int]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401)
            return
        self.calls.append(body)
        if self.fail_first[0] > 0:  # a flaky endpoint: 503 a few times
            self.fail_first[0] -= 1
            self._answer(503)
            return
        record = TxtRecord(fqdn=body["fqdn"], zone=body["zone"], value=body["value"])
        if body["action"] == "present":
            self.writer.present(record)
        else:
            self.writer.cleanup(record)
        self._answer(200)


@pytest.fixture
def receiver(lab: Lab) -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {
        "writer": Rfc2136Provider(lab.rfc2136()), "calls": [], "fail_first": [0]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/acme", handler
    server.shutdown()
    server.server_close()


def test_webhook_issues_a_wildcard_through_the_users_endpoint(
    lab: Lab, make_engine: EngineFactory, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    handler.fail_first[0] = 1  # the first POST gets a 503: retried
    solver = DnsSolver(WebhookProvider(url, TOKEN, timeout=5, retries=2), lab.lookup(),
                       name="hook")
    apex = lab.host("hook")
    cert = make_engine().issue(
        OrderRequest(hosts=(f"*.{apex}", apex), challenge=ChallengeType.DNS01,
                     profile="default"),
        {ChallengeType.DNS01: solver},
    )
    assert cert.info.sans == tuple(sorted((f"*.{apex}", apex)))
    actions = [(c["action"], c["fqdn"], c["zone"]) for c in handler.calls]
    name = f"_acme-challenge.{apex}"
    assert actions.count(("present", name, lab["DNS_ZONE"])) == 3  # 2 values + 1 retried
    assert actions.count(("cleanup", name, lab["DNS_ZONE"])) == 2
    assert txt_at(lab["DNS_SERVER"], name) == set()


def test_webhook_wrong_token_fails_at_once_without_the_token(
    lab: Lab, receiver: tuple[str, type[_Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, handler = receiver
    provider = WebhookProvider(url, "not-the-token-xyz", timeout=5, retries=3)
    with pytest.raises(DnsSolverError) as info:
        provider.present(TxtRecord(fqdn="_acme-challenge.x.certbotk8s.test",
                                   zone=lab["DNS_ZONE"], value="v"))
    assert f"webhook {url}" in str(info.value) and "HTTP 401" in str(info.value)
    assert "after 1 attempt(s)" in str(info.value)  # 401 is not retried
    assert handler.calls == []
    for text in (str(info.value), caplog.text):
        assert "not-the-token-xyz" not in text and TOKEN not in text


# --- exec, with nsupdate ----------------------------------------------------------------------


def _nsupdate_script(lab: Lab, path: Path) -> Path:
    host, port = lab["DNS_SERVER"].rsplit(":", 1)
    key = f"{lab['DNS_TSIG_ALGORITHM']}:{lab['DNS_TSIG_NAME']}:{lab['DNS_TSIG_SECRET']}"
    path.write_text(f"""#!/bin/sh
# certbot-style manual hook: the action, name and value come from the environment.
set -eu
case "$CERTBOTK8S_ACTION" in
  present) verb=add; ttl=60 ;;
  cleanup) verb=delete; ttl= ;;
esac
nsupdate -y '{key}' <<EOF
server {host} {port}
zone $CERTBOTK8S_ZONE
update $verb $CERTBOTK8S_FQDN $ttl TXT "$CERTBOTK8S_VALUE"
send
EOF
echo "$CERTBOTK8S_ACTION $CERTBOT_DOMAIN $CERTBOT_VALIDATION" >>"{path}.log"
""")
    path.chmod(stat.S_IRWXU)
    return path


def test_exec_issues_a_wildcard_with_a_certbot_style_hook(
    lab: Lab, make_engine: EngineFactory, tmp_path: Path
) -> None:
    script = _nsupdate_script(lab, tmp_path / "hook.sh")
    solver = DnsSolver(ExecProvider([str(script)], timeout=30), lab.lookup(), name="script")
    apex = lab.host("exec")
    cert = make_engine().issue(
        OrderRequest(hosts=(f"*.{apex}", apex), challenge=ChallengeType.DNS01,
                     profile="default"),
        {ChallengeType.DNS01: solver},
    )
    assert cert.info.sans == tuple(sorted((f"*.{apex}", apex)))
    log = Path(f"{script}.log").read_text().splitlines()
    assert sorted(line.split()[0] for line in log) == ["cleanup", "cleanup", "present", "present"]
    assert {line.split()[1] for line in log} == {apex}
    assert txt_at(lab["DNS_SERVER"], f"_acme-challenge.{apex}") == set()


def test_exec_failure_names_the_command_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\necho \"no zone $CERTBOTK8S_ZONE\" >&2\nexit 3\n")
    script.chmod(stat.S_IRWXU)
    with pytest.raises(DnsSolverError) as info:
        ExecProvider([str(script)]).present(TxtRecord("_acme-challenge.a.example", "example", "v"))
    assert f"exec {script}" in str(info.value) and "exit 3" in str(info.value)
    assert "no zone example" in str(info.value)


def test_webhook_that_never_answers_times_out_after_bounded_retries() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/acme"
        with pytest.raises(DnsSolverError) as info:
            WebhookProvider(url, TOKEN, timeout=0.3, retries=1).cleanup(
                TxtRecord("_acme-challenge.x.example", "example", "v"))
    assert f"webhook {url}: cleanup of TXT" in str(info.value)
    assert "after 2 attempt(s): no answer within 0.3s (timeout)" in str(info.value)
    assert TOKEN not in str(info.value)


def test_exec_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")  # a hook stuck on a dead API
    script.chmod(stat.S_IRWXU)
    with pytest.raises(DnsSolverError, match=r"killed after 0.5s \(timeout\)"):
        ExecProvider([str(script)], timeout=0.5).present(
            TxtRecord("_acme-challenge.a.example", "example", "v"))
