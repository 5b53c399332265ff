"""Regression guard for the benches: figures against the last accepted ones (bench/baseline.json).

Pure functions (no timing, no I/O but `load`/`save`), so the comparison logic is unit tested
(tests/unit/test_bench_guard.py). A bench measures each figure in several runs; `summarize`
gives the median and the run-to-run noise (the spread of the runs relative to their median);
`compare` gives each figure's ratio to its baseline and flags it when it is worse by more than
the noise of both measurements (never less than `floor`, 5 %).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Whether a larger value of a figure is better; figures not named here are "lower is better"
# (seconds, bytes, requests per certificate).
HIGHER_IS_BETTER = frozenset({"throughput_certs_per_s"})
# Even the figures that hardly vary move by a few % between runs: requests per certificate
# with how a burst's record writes fall into the 5 s flushes, RSS with what the lab holds.
FLOOR = 0.05


@dataclass(frozen=True)
class Figure:
    value: float
    noise: float  # relative: 0.1 is +-10 % between runs


@dataclass(frozen=True)
class Verdict:
    name: str
    value: float
    baseline: float | None
    ratio: float | None  # value / baseline
    band: float  # the relative change that counts as noise
    worse: bool  # worse than the baseline by more than `band`

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "baseline": self.baseline,
                "ratio": None if self.ratio is None else round(self.ratio, 3),
                "noise_band": round(self.band, 3), "regressed": self.worse}


def summarize(runs: Sequence[float]) -> Figure:
    """Median of the runs and their spread ((max - min) / median / 2: the half-width of the
    band the runs fell in, relative); one run has no known noise (0)."""
    if not runs:
        raise ValueError("no runs")
    median = statistics.median(runs)
    if len(runs) < 2 or median == 0:
        return Figure(median, 0.0)
    return Figure(median, (max(runs) - min(runs)) / abs(median) / 2)


def compare(figures: Mapping[str, Figure], baseline: Mapping[str, Mapping[str, float]],
            floor: float = FLOOR) -> list[Verdict]:
    """Each figure against its baseline (`{"name": {"value": v, "noise": n}}`): worse when it
    moved in the bad direction by more than the larger of both noises and `floor`."""
    verdicts: list[Verdict] = []
    for name in sorted(figures):
        figure = figures[name]
        base = baseline.get(name)
        if base is None or not base.get("value"):
            verdicts.append(Verdict(name, figure.value, None, None, figure.noise, False))
            continue
        reference = float(base["value"])
        band = max(floor, figure.noise, float(base.get("noise", 0.0)))
        ratio = figure.value / reference
        change = (1 - ratio) if name in HIGHER_IS_BETTER else (ratio - 1)
        verdicts.append(Verdict(name, figure.value, reference, ratio, band, change > band))
    return verdicts


def regressions(verdicts: Sequence[Verdict]) -> list[str]:
    """One line per figure worse than its baseline beyond the noise."""
    return [f"{v.name}: {v.value:g} vs baseline {v.baseline:g} (x{v.ratio:.2f}, noise "
            f"band {v.band:.0%})" for v in verdicts if v.worse and v.ratio is not None
            and v.baseline is not None]


def load(path: Path, key: str) -> dict[str, dict[str, float]]:
    """The accepted figures of one bench variant (e.g. `controller/dns-01`); {} when none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    found = data.get(key) if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return {}
    return {name: entry for name, entry in found.items() if isinstance(entry, dict)}


def save(path: Path, key: str, figures: Mapping[str, Figure], note: str) -> None:
    """Accept `figures` as the new baseline of `key`; the other variants, and figures of `key`
    this run did not measure, are kept."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    kept = data.get(key) if isinstance(data.get(key), dict) else {}
    # A figure this run did not measure (a part skipped) keeps its accepted value.
    data[key] = {**kept, "note": note,
                 **{name: {"value": f.value, "noise": round(f.noise, 4)}
                    for name, f in sorted(figures.items())}}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
