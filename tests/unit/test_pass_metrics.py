"""The CronJob pass's summary line and its Pushgateway push (a real HTTP server records it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from certbotk8s.app.oneshot.pass_metrics import PUSH_JOB, pass_summary, push_pass
from certbotk8s.app.oneshot.run import PassReport
from certbotk8s.app.orders import Outcome, Survey
from certbotk8s.core.model import Discovery, ObjectRef, SecretRef, SourceProblem
from certbotk8s.core.renewal.plan import plan
from tests.unit.factories import T0, desired, observed_for

NOW = T0 + timedelta(days=1)


def _report() -> PassReport:
    fresh = desired("a.example.com", secret=SecretRef("web", "fresh-tls"))
    broken = desired("b.example.com", secret=SecretRef("web", "broken-tls"))
    observed = {fresh.secret: observed_for(fresh), broken.secret: None}
    actions = plan([fresh, broken], observed, NOW, {})
    problem = SourceProblem(ObjectRef("networking.k8s.io/v1", "Ingress", "shop", "bad"),
                            "InvalidAnnotation", "bad key type")
    survey = Survey(Discovery((fresh, broken), (problem,)), observed, {}, actions)
    outcomes = tuple(Outcome(a, ok=a.desired is fresh, message="x") for a in actions)
    return PassReport(survey, outcomes)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    _Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_summary_counts_every_outcome() -> None:
    summary = pass_summary(_report())
    assert (summary.issued, summary.failed, summary.refused, summary.up_to_date) == (0, 1, 1, 1)
    assert summary.line() == "0 issued or renewed, 1 failed, 1 sources refused, 1 up to date"


def test_push_replaces_the_jobs_group_with_pass_and_certificate_series(gateway: str) -> None:
    report = _report()
    finished = datetime(2025, 1, 2, tzinfo=UTC).timestamp()
    push_pass(gateway, report, pass_summary(report), finished)
    ((method, path, body),) = _Recorder.seen
    assert (method, path) == ("PUT", f"/metrics/job/{PUSH_JOB}")
    text = body.decode()
    assert 'certbotk8s_pass_certificates{result="failed"} 1.0' in text
    assert "certbotk8s_pass_last_run_timestamp_seconds 1.735776e+09" in text
    le = 'issuer_group="certbotk8s.io",issuer_kind="ClusterIssuer",issuer_name="le"'
    assert ('certbotk8s_certificate_ready_status{condition="True",' + le +
            ',name="fresh-tls",namespace="web"} 1.0') in text
    assert ('certbotk8s_certificate_ready_status{condition="False",' + le +
            ',name="broken-tls",namespace="web"} 1.0') in text
    assert ('certbotk8s_certificate_ready_status{condition="False",issuer_group="",'
            'issuer_kind="",issuer_name="",name="bad",namespace="shop"} 1.0') in text
    assert "process_" not in text


def test_unreachable_gateway_is_an_os_error() -> None:
    report = _report()
    with pytest.raises(OSError):
        push_pass("http://127.0.0.1:9", report, pass_summary(report), 0.0)
