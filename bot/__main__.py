"""The `welcomebot` command: run, chat, ask, check, eval, purge and bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot import config
from bot.logs import setup_logging

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher


def _settings(args: argparse.Namespace) -> config.Settings:
    try:
        return config.from_env()
    except config.SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check(args: argparse.Namespace) -> int:
    from bot.check import report
    from bot.knowledge import load

    settings = _settings(args)
    languages = tuple(args.languages.split(",")) if args.languages else settings.languages
    content = Path(args.content) if args.content else settings.content_dir
    text, ok = report(load(content, languages), content / "translations")
    print(text)
    return 0 if ok else 1


def _memory_dispatcher(settings: config.Settings) -> Dispatcher:
    """Each line or row a new person, nothing kept, no rate limit: for `ask` and `eval`."""
    from dataclasses import replace

    from bot.wiring import build_dispatcher

    return build_dispatcher(replace(settings, db_path=":memory:", rate_limit_burst=10**9, rate_limit_per_minute=10**9))


def cmd_ask(args: argparse.Namespace) -> int:
    from bot import ask

    dispatcher = _memory_dispatcher(_settings(args))
    asyncio.run(ask.run(dispatcher, sys.stdin.buffer, sys.stdout))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate, format_report, load_rows

    settings = _settings(args)
    languages = tuple(args.languages.split(",")) if args.languages else settings.languages
    rows = load_rows(Path(args.file), languages)
    dispatcher = _memory_dispatcher(settings)
    result = asyncio.run(evaluate(dispatcher, rows))
    print(
        json.dumps(result.as_dict(), ensure_ascii=False, indent=1)
        if args.json
        else format_report(result, args.mistakes)
    )
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.channels.console import chat
    from bot.wiring import build_dispatcher

    settings = _settings(args)
    setup_logging(settings)
    asyncio.run(chat(build_dispatcher(settings)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runner import run
    from bot.staff import StaffConfigError

    settings = _settings(args)
    setup_logging(settings)
    try:
        return asyncio.run(run(settings))
    except (config.SettingsError, StaffConfigError) as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.store import Store
    from bot.wiring import pseudonym_key

    settings = _settings(args)
    store = Store(settings.db_path, pseudonym_key(settings))
    removed = store.purge(settings.retention_people_days, settings.retention_handoff_days)
    print(
        f"Removed {removed} people inactive for more than {settings.retention_people_days} days "
        f"and hand-off transcripts closed more than {settings.retention_handoff_days} days ago."
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bot.bench import run_bench

    return run_bench(_settings(args), Path(args.dev), quick=args.quick, as_json=args.json)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="welcomebot", description="The Welcome Center Stuttgart's chatbot.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start every configured channel (the console if none)").set_defaults(func=cmd_run)
    commands.add_parser("chat", help="talk to the bot in this terminal").set_defaults(func=cmd_chat)
    commands.add_parser("ask", help="answer JSON lines from standard input").set_defaults(func=cmd_ask)
    check = commands.add_parser("check", help="validate knowledge/, intents/ and translations/")
    check.add_argument("--content", help="folder holding knowledge/, intents/, translations/")
    check.add_argument("--languages", help="comma-separated language codes (default: all configured)")
    check.set_defaults(func=cmd_check)
    evaluate = commands.add_parser("eval", help="score a labelled JSONL file")
    evaluate.add_argument("file")
    evaluate.add_argument("--languages", help="only rows in these comma-separated languages")
    evaluate.add_argument("--json", action="store_true", help="print the numbers as JSON")
    evaluate.add_argument("--mistakes", action="store_true", help="list every wrong answer")
    evaluate.set_defaults(func=cmd_eval)
    commands.add_parser("purge", help="delete data older than the retention periods").set_defaults(func=cmd_purge)
    bench = commands.add_parser("bench", help="measure speed, throughput and memory")
    bench.add_argument("--dev", default=str(config.PROJECT_DIR.parent / "shared" / "spec" / "eval-dev.jsonl"))
    bench.add_argument("--quick", action="store_true", help="a short run that only checks the benchmark works")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
