"""The benches' regression guard (bench/guard.py): medians, noise bands, ratios to the baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import guard
from bench.guard import Figure


def test_the_median_of_the_runs_and_their_half_spread_as_noise() -> None:
    figure = guard.summarize([0.30, 0.20, 0.25])
    assert figure.value == 0.25 and figure.noise == pytest.approx(0.2)
    assert guard.summarize([5.0]) == Figure(5.0, 0.0)
    with pytest.raises(ValueError):
        guard.summarize([])


def test_a_figure_worse_beyond_the_noise_is_flagged_and_one_within_it_is_not() -> None:
    baseline = {"latency_median_s": {"value": 0.2, "noise": 0.1},
                "api_writes_per_certificate": {"value": 4.0, "noise": 0.0}}
    verdicts = {v.name: v for v in guard.compare({
        "latency_median_s": Figure(0.215, 0.05),  # +7.5 %: inside the baseline's 10 %
        "api_writes_per_certificate": Figure(4.4, 0.0),  # +10 %: beyond the 5 % floor
    }, baseline)}
    assert not verdicts["latency_median_s"].worse
    assert verdicts["latency_median_s"].ratio == pytest.approx(1.075)
    assert verdicts["api_writes_per_certificate"].worse
    assert guard.regressions(list(verdicts.values())) == [
        "api_writes_per_certificate: 4.4 vs baseline 4 (x1.10, noise band 5%)"]


def test_the_direction_of_better_is_per_figure_and_the_noisier_side_sets_the_band() -> None:
    baseline = {"throughput_certs_per_s": {"value": 20.0, "noise": 0.0},
                "rss_idle_mb": {"value": 80.0, "noise": 0.0}}
    verdicts = {v.name: v for v in guard.compare({
        "throughput_certs_per_s": Figure(24.0, 0.0),  # faster: never a regression
        "rss_idle_mb": Figure(70.0, 0.0),  # smaller: never a regression
    }, baseline)}
    assert not any(v.worse for v in verdicts.values())
    slower = guard.compare({"throughput_certs_per_s": Figure(15.0, 0.3)}, baseline)[0]
    assert not slower.worse and slower.band == pytest.approx(0.3)  # -25 %, this run's noise 30 %
    assert guard.compare({"throughput_certs_per_s": Figure(15.0, 0.1)}, baseline)[0].worse


def test_a_figure_without_baseline_is_reported_not_flagged(tmp_path: Path) -> None:
    verdict = guard.compare({"new_figure": Figure(3.0, 0.0)}, {})[0]
    assert verdict.baseline is None and verdict.ratio is None and not verdict.worse


def test_accepted_figures_are_kept_per_variant(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    assert guard.load(path, "controller/dns-01") == {}
    guard.save(path, "controller/dns-01", {"rss_idle_mb": Figure(80.0, 0.01)}, "first")
    guard.save(path, "controller/http-01", {"rss_idle_mb": Figure(81.0, 0.0)}, "second")
    assert guard.load(path, "controller/dns-01") == {"rss_idle_mb": {"value": 80.0,
                                                                    "noise": 0.01}}
    assert guard.load(path, "controller/http-01")["rss_idle_mb"]["value"] == 81.0
    # A later run that skipped a part keeps that part's accepted figure.
    guard.save(path, "controller/dns-01", {"latency_median_s": Figure(0.2, 0.1)}, "third")
    assert set(guard.load(path, "controller/dns-01")) == {"rss_idle_mb", "latency_median_s"}
