"""The benchmark in its short mode: it runs and reports every number; the numbers are not asserted."""

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).parent.parent
DEV = PROJECT / "tests" / "fixtures" / "dev-sample.jsonl"


def test_bench_quick_reports_every_figure_as_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--quick", "--json", "--dev", str(DEV)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT,
        timeout=300,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "cold_start_s",
        "match_ms_p50",
        "match_ms_p99",
        "baseline_match_ms_p50",
        "accuracy",
        "baseline_accuracy",
        "dispatcher_msgs_per_s",
        "peak_rss_mb",
    ):
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, key
