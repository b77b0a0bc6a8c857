"""The load test in its short mode: it must work; its numbers are read from the full run, not asserted."""

from tests.load_telegram import run_load


async def test_short_load_run_answers_every_message_once_in_order() -> None:
    result = await run_load(people=40, messages=3, seconds=3)
    assert result["replies"] == result["messages"] == 120
    assert result["exactly_one_reply_each"] and result["in_order_per_person"]
    assert result["latency_ms_p50"] is not None
