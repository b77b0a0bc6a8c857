"""Staff profiles and office hours from the file named by STAFF_CONFIG, validated at start-up.

Staff are identified by permanent ids only (Matrix user id, Telegram numeric id): display names and
usernames can change and be taken over, so they never decide who may work a ticket.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.i18n import BERLIN

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_MATRIX_ID = re.compile(r"^@[^:\s]+:[^\s]+$")


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: a wrong date is then reported with its place, not as a crash."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class StaffConfigError(ValueError):
    """The staff file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class StaffMember:
    name: str  # shown to the person: "Welcome Center (<name>)"
    languages: tuple[str, ...]
    matrix_id: str = ""
    telegram_id: str = ""


@dataclass(frozen=True)
class OfficeHours:
    """Weekly opening spans in Stuttgart time, and holidays on which the office is closed."""

    weekly: dict[int, tuple[tuple[dt.time, dt.time], ...]] = field(default_factory=dict)  # weekday 0 = Monday
    holidays: frozenset[dt.date] = frozenset()

    def is_open(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(BERLIN)
        if local.date() in self.holidays:
            return False
        return any(start <= local.time() < end for start, end in self.weekly.get(local.weekday(), ()))

    def next_opening(self, moment: dt.datetime) -> dt.datetime | None:
        """The next time the office opens after `moment` (None if it never does)."""
        local = moment.astimezone(BERLIN)
        for offset in range(370):
            day = local.date() + dt.timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, _end in self.weekly.get(day.weekday(), ()):
                opening = dt.datetime.combine(day, start, BERLIN)
                if opening > local:
                    return opening
        return None


@dataclass(frozen=True)
class StaffConfig:
    staff: tuple[StaffMember, ...]
    hours: OfficeHours
    inactivity_hours: float = 24.0  # office hours a ticket may stay silent before it is closed

    def by_id(self, permanent_id: str) -> StaffMember | None:
        for member in self.staff:
            if permanent_id in (member.matrix_id, member.telegram_id):
                return member
        return None

    def speakers(self, language: str) -> list[StaffMember]:
        return [member for member in self.staff if language in member.languages]


ALWAYS_OPEN = OfficeHours({day: ((dt.time(0, 0), dt.time(23, 59, 59)),) for day in range(7)})


def load_staff_config(path: str | Path, languages: tuple[str, ...]) -> StaffConfig:
    """Read and validate the staff file; every problem is reported at once, with its place."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as error:
        raise StaffConfigError(f"STAFF_CONFIG: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise StaffConfigError(f"{path}: not valid YAML: {error}") from None
    problems: list[str] = []
    if not isinstance(data, dict):
        raise StaffConfigError(f"{path}: expected the keys office_hours and staff")
    hours = _office_hours(data.get("office_hours"), problems)
    staff = _staff(data.get("staff"), languages, problems)
    inactivity = data.get("close_inactive_after_hours", 24)
    if not isinstance(inactivity, (int, float)) or isinstance(inactivity, bool) or inactivity <= 0:
        problems.append(f"close_inactive_after_hours: expected a positive number of hours, got {inactivity!r}")
        inactivity = 24
    if problems:
        raise StaffConfigError(f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return StaffConfig(staff, hours, float(inactivity))


def _office_hours(raw: Any, problems: list[str]) -> OfficeHours:
    if not isinstance(raw, dict):
        problems.append("office_hours: expected 'weekly' (day: \"09:00-12:00, 13:00-16:00\") and 'holidays'")
        return ALWAYS_OPEN
    weekly: dict[int, tuple[tuple[dt.time, dt.time], ...]] = {}
    days = raw.get("weekly") or {}
    if not isinstance(days, dict):
        problems.append('office_hours.weekly: expected one line per day, e.g. monday: "09:00-12:00"')
        days = {}
    for day, spans in days.items():
        name = str(day).lower()
        if name not in DAYS:
            problems.append(f"office_hours.weekly: unknown day {day!r} (use {', '.join(DAYS)})")
            continue
        parsed = []
        for span in str(spans or "").split(","):
            if not span.strip():
                continue
            found = _SPAN.match(span)
            times = _times(found) if found else None
            if times is None:
                problems.append(f"office_hours.weekly.{name}: {span.strip()!r} is not a span like 09:00-12:00")
                continue
            parsed.append(times)
        weekly[DAYS.index(name)] = tuple(sorted(parsed))
    holidays = set()
    for value in raw.get("holidays") or []:
        try:
            holidays.add(dt.date.fromisoformat(str(value)))
        except ValueError:
            problems.append(f"office_hours.holidays: {value!r} is not a date like 2026-12-24")
    if not any(weekly.values()):
        problems.append("office_hours.weekly: no opening hours at all; requests would wait forever")
    return OfficeHours(weekly, frozenset(holidays))


def _times(found: re.Match[str]) -> tuple[dt.time, dt.time] | None:
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60):
        return None
    start = dt.time(h1, m1)
    end = dt.time(23, 59, 59) if (h2, m2) == (24, 0) else dt.time(h2, m2)
    return (start, end) if start < end else None


def _staff(raw: Any, languages: tuple[str, ...], problems: list[str]) -> tuple[StaffMember, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("staff: expected a list of staff members (name, languages, matrix and/or telegram id)")
        return ()
    members = []
    seen: set[str] = set()
    for number, entry in enumerate(raw, start=1):
        where = f"staff #{number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected name, languages, matrix, telegram")
            continue
        name = str(entry.get("name") or "").strip()
        if not name:
            problems.append(f"{where}: 'name' is missing (shown to the person as 'Welcome Center (<name>)')")
        spoken = entry.get("languages") or []
        if isinstance(spoken, str):
            spoken = [part.strip() for part in spoken.split(",")]
        unknown = [code for code in spoken if code not in languages]
        if unknown:
            problems.append(f"{where} ({name}): languages not supported by the bot: {', '.join(map(str, unknown))}")
        matrix_id = str(entry.get("matrix") or "").strip()
        if matrix_id and not _MATRIX_ID.match(matrix_id):
            problems.append(f"{where} ({name}): matrix {matrix_id!r} is not a Matrix user id like @name:server")
        telegram_id = str(entry.get("telegram") or "").strip()
        if telegram_id and not telegram_id.isdigit():
            problems.append(f"{where} ({name}): telegram {telegram_id!r} must be the numeric user id, not a username")
        if not matrix_id and not telegram_id:
            problems.append(f"{where} ({name}): give a matrix user id and/or a telegram numeric id")
        for permanent in (matrix_id, telegram_id):
            if permanent and permanent in seen:
                problems.append(f"{where} ({name}): {permanent} is listed twice")
            seen.add(permanent)
        members.append(StaffMember(name, tuple(str(c) for c in spoken), matrix_id, telegram_id))
    return tuple(members)
