"""`welcomebot bench`: start-up, matching speed, throughput and memory, measured, not guessed.

A plain baseline runs in the same process for comparison: rapidfuzz `process.extractOne` with its
default scorer over every example phrase of every language, no index and no normalisation.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rapidfuzz import process

from bot.config import Settings
from bot.messages import Incoming
from bot.wiring import build_dispatcher


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cold_start_seconds() -> float:
    """A new process, from launch to its first answer on standard output."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot", "ask"],
        input=b'{"text": "Wie melde ich meine Wohnung an?"}\n',
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def run_bench(settings: Settings, dev_path: Path, quick: bool = False, as_json: bool = False) -> int:
    rows = [json.loads(line) for line in dev_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if quick:
        rows = rows[:60]
    repeats = 1 if quick else 5
    results: dict[str, Any] = {"messages": len(rows), "repeats": repeats}
    results["cold_start_s"] = round(cold_start_seconds(), 3)

    with tempfile.TemporaryDirectory() as folder:
        configured = replace(
            settings,
            db_path=str(Path(folder) / "bench.db"),
            pseudonym_key="bench",
            rate_limit_burst=10**9,
            rate_limit_per_minute=10**9,
        )
        dispatcher = build_dispatcher(configured)
        matcher, detector = dispatcher.matcher, dispatcher.detector
        languages = [detector.detect(r["text"]).language for r in rows]

        timings: list[float] = []
        for _ in range(repeats):
            for row, language in zip(rows, languages, strict=True):
                started = time.perf_counter()
                matcher.match(row["text"], language)
                timings.append(time.perf_counter() - started)
        results["match_ms_p50"] = round(_percentile(timings, 0.5) * 1000, 3)
        results["match_ms_p99"] = round(_percentile(timings, 0.99) * 1000, 3)

        phrases, topics = [], []
        for topic, by_language in dispatcher.knowledge.examples.items():
            for examples in by_language.values():
                phrases.extend(examples)
                topics.extend([topic] * len(examples))
        baseline_timings: list[float] = []
        baseline_right = ours_right = 0
        for row in rows:
            started = time.perf_counter()
            found = process.extractOne(row["text"], phrases)
            baseline_timings.append(time.perf_counter() - started)
            baseline_topic = topics[found[2]] if found else None
            baseline_right += (None if baseline_topic == "null" else baseline_topic) == row["topic"]
            understanding = dispatcher.understand(row["text"])
            ours = "safety.emergency" if understanding.emergency else understanding.match.topic
            ours_right += ours == row["topic"]
        results["baseline_match_ms_p50"] = round(_percentile(baseline_timings, 0.5) * 1000, 3)
        results["baseline_match_ms_p99"] = round(_percentile(baseline_timings, 0.99) * 1000, 3)
        results["accuracy"] = round(ours_right / len(rows), 4)
        results["baseline_accuracy"] = round(baseline_right / len(rows), 4)
        results["speedup_p50_vs_baseline"] = round(
            results["baseline_match_ms_p50"] / max(results["match_ms_p50"], 1e-9), 1
        )
        results["accuracy_ratio_vs_baseline"] = round(results["accuracy"] / max(results["baseline_accuracy"], 1e-9), 2)

        async def throughput() -> float:
            messages = [
                Incoming("bench", f"chat-{i % 500}", f"person-{i % 500}", rows[i % len(rows)]["text"])
                for i in range(len(rows) * repeats * 2)
            ]
            started = time.perf_counter()
            for message in messages:
                await dispatcher.handle(message)
            return len(messages) / (time.perf_counter() - started)

        results["dispatcher_msgs_per_s"] = round(asyncio.run(throughput()), 1)
        dispatcher.store.close()
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    if as_json:
        print(json.dumps(results))
    else:
        width = max(len(k) for k in results)
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
        print(f"(median of matching times over {len(rows)} dev messages x {repeats}; one process, one core)")
    return 0
