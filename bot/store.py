"""All SQLite storage behind one small interface; the schema is created and migrated here only.

People are stored under a keyed pseudonym of their platform id. Statistics carry no text and no ids.
`secure_delete` overwrites deleted rows, so what is erased is gone from the file, not just hidden.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

# Numbered, described upgrades; a database is brought up to the newest version when opened.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "people and anonymous answer statistics",
        """
        CREATE TABLE people (
            key TEXT PRIMARY KEY,          -- keyed pseudonym of channel and platform user id
            language TEXT,
            language_chosen INTEGER NOT NULL DEFAULT 0,
            last_topic TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            last_seen REAL NOT NULL
        );
        CREATE INDEX people_last_seen ON people(last_seen);
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            day TEXT NOT NULL,
            topic TEXT,
            language TEXT NOT NULL,
            confidence REAL NOT NULL,
            outcome TEXT NOT NULL,         -- answered, null, emergency, human
            feedback INTEGER               -- 1 helpful, -1 not helpful, NULL not rated
        );
        """,
    ),
    (
        "inbox and outbox: what arrived is kept until answered, what is to be sent until it was sent",
        """
        CREATE TABLE inbox (
            channel TEXT NOT NULL,
            update_id TEXT NOT NULL,       -- the platform's id of the update or event
            chat_id TEXT,
            payload TEXT,                  -- the raw update; emptied as soon as it is handled
            received REAL NOT NULL,
            handled INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (channel, update_id)
        );
        CREATE INDEX inbox_pending ON inbox(channel, handled, received);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            source TEXT NOT NULL,          -- what this answers: update or event id
            part INTEGER NOT NULL,
            body TEXT NOT NULL,            -- the reply as JSON
            created REAL NOT NULL,
            UNIQUE (channel, source, part)
        );
        CREATE INDEX outbox_chat ON outbox(channel, chat_id, id);
        CREATE TABLE unreachable (
            key TEXT PRIMARY KEY,          -- pseudonym of a person who blocked the bot
            since REAL NOT NULL
        );
        """,
    ),
    (
        "channel state: sync positions and first start, no personal data",
        """
        CREATE TABLE channel_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        "hand-off tickets, their transcripts and their threads in the staff rooms",
        """
        CREATE TABLE tickets (
            id INTEGER PRIMARY KEY,
            person TEXT NOT NULL,          -- pseudonym of the person
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,         -- the person's chat: needed to relay staff replies
            language TEXT NOT NULL,
            urgent INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,          -- open, claimed, closed
            staff TEXT,                    -- permanent id of the staff member who claimed it
            origin TEXT NOT NULL UNIQUE,   -- the message that opened it: opening twice is harmless
            topics TEXT NOT NULL DEFAULT '[]',
            opened REAL NOT NULL,
            last_activity REAL NOT NULL,
            closed REAL
        );
        CREATE UNIQUE INDEX tickets_one_open ON tickets(person) WHERE status != 'closed';
        CREATE INDEX tickets_status ON tickets(status, last_activity);
        CREATE TABLE ticket_messages (
            id INTEGER PRIMARY KEY,
            ticket INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
            origin TEXT NOT NULL,          -- the platform message it came from: recorded once
            author TEXT NOT NULL,          -- person, staff, note, bot
            text TEXT NOT NULL,
            topic TEXT,
            created REAL NOT NULL,
            UNIQUE (ticket, origin)
        );
        CREATE TABLE ticket_threads (
            ticket INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
            room TEXT NOT NULL,            -- matrix or telegram staff room
            thread TEXT NOT NULL,          -- Matrix thread root event id, Telegram forum topic id
            PRIMARY KEY (ticket, room),
            UNIQUE (room, thread)
        );
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    language: str | None
    language_chosen: bool
    last_topic: str | None
    failures: int
    last_seen: float


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    person: str
    channel: str
    chat_id: str
    language: str
    urgent: bool
    status: str
    staff: str | None
    origin: str
    topics: tuple[str, ...]
    opened: float
    last_activity: float
    closed: float | None

    @property
    def is_open(self) -> bool:
        return self.status != "closed"


_TICKET_COLUMNS = (
    "id, person, channel, chat_id, language, urgent, status, staff, origin, topics, opened, last_activity, closed"
)


def _ticket(row: tuple[Any, ...] | None) -> Ticket | None:
    if row is None:
        return None
    values = list(row)
    values[5] = bool(values[5])
    values[9] = tuple(json.loads(values[9]))
    return Ticket(*values)


class Store:
    """The bot's memory. One instance per process; calls are short and synchronous."""

    def __init__(self, path: str, pseudonym_key: str, clock: Callable[[], float] = time.time) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(connection)
        self.clock = clock
        self._key = pseudonym_key.encode()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, (_, script) in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                self.db.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside happen together or not at all."""
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.conn.execute("ROLLBACK")
            raise
        self.db.conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def pseudonym(self, channel: str, user_id: str) -> str:
        """A stable key for a person that reveals nothing without the secret key."""
        message = f"{channel}\x00{user_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def person(self, key: str) -> Person | None:
        row = self.db.execute(
            "SELECT key, language, language_chosen, last_topic, failures, last_seen FROM people WHERE key = ?", [key]
        ).fetchone()
        return Person(row[0], row[1], bool(row[2]), row[3], row[4], row[5]) if row else None

    def save_person(
        self,
        key: str,
        *,
        language: str | None,
        last_topic: str | None,
        failures: int,
        language_chosen: bool | None = None,
    ) -> None:
        chosen = 1 if language_chosen else 0
        self.db.execute(
            """INSERT INTO people (key, language, language_chosen, last_topic, failures, last_seen)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET language = excluded.language, last_topic = excluded.last_topic,
                 failures = excluded.failures, last_seen = excluded.last_seen,
                 language_chosen = CASE WHEN ? IS NULL THEN people.language_chosen ELSE excluded.language_chosen END""",
            [key, language, chosen, last_topic, failures, self.clock(), language_chosen],
        )

    def record_answer(self, topic: str | None, language: str, confidence: float, outcome: str) -> int:
        """Anonymous statistics: no text, no person. Returns the id feedback refers to."""
        day = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()
        cursor = self.db.execute(
            "INSERT INTO answers (day, topic, language, confidence, outcome) VALUES (?, ?, ?, ?, ?)",
            [day, topic, language, round(confidence, 2), outcome],
        )
        return int(cursor.lastrowid or 0)

    def record_feedback(self, answer_id: int, helpful: bool) -> bool:
        cursor = self.db.execute(
            "UPDATE answers SET feedback = ? WHERE id = ? AND topic IS NOT NULL", [1 if helpful else -1, answer_id]
        )
        return cursor.rowcount > 0

    def feedback_summary(self) -> list[tuple[str, str, int, int]]:
        """Per topic and language: helpful and not helpful counts."""
        rows = self.db.execute(
            """SELECT topic, language, SUM(feedback = 1), SUM(feedback = -1) FROM answers
               WHERE feedback IS NOT NULL GROUP BY topic, language ORDER BY topic, language"""
        ).fetchall()
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    # -- inbox and outbox: delivery that survives crashes -----------------------------------------

    def receive(self, channel: str, updates: list[tuple[str, str, str]]) -> int:
        """Store (update id, chat id, payload) triples durably; returns how many were new."""
        now = self.clock()
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO inbox (channel, update_id, chat_id, payload, received) VALUES (?, ?, ?, ?, ?)",
                [(channel, u, c, p, now) for u, c, p in updates],
            )
            return self.db.conn.total_changes - before

    def pending(self, channel: str, limit: int = 500) -> list[tuple[str, str, str]]:
        """Unhandled updates in the order they arrived: (update id, chat id, payload)."""
        rows = self.db.execute(
            "SELECT update_id, chat_id, payload FROM inbox WHERE channel = ? AND handled = 0 "
            "ORDER BY received, rowid LIMIT ?",
            [channel, limit],
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def handled(self, channel: str, update_id: str, chat_id: str, bodies: list[str]) -> None:
        """Mark an update answered and queue its replies, in one transaction: all or nothing."""
        now = self.clock()
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO outbox (channel, chat_id, source, part, body, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(channel, chat_id, update_id, part, body, now) for part, body in enumerate(bodies)],
            )
            self.db.conn.execute(
                "UPDATE inbox SET handled = 1, payload = NULL WHERE channel = ? AND update_id = ?", [channel, update_id]
            )

    def outbox(
        self, channel: str, chat_id: str | None = None, limit: int = 1000
    ) -> list[tuple[int, str, str, int, str]]:
        """Replies still to be sent, oldest first: (id, chat id, source, part, body)."""
        query = "SELECT id, chat_id, source, part, body FROM outbox WHERE channel = ?"
        params: list[object] = [channel]
        if chat_id is not None:
            query += " AND chat_id = ?"
            params.append(chat_id)
        rows = self.db.execute(query + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def sent(self, outbox_id: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE id = ?", [outbox_id])

    def drop_chat(self, channel: str, chat_id: str) -> int:
        """Forget what is queued for a chat that can no longer be reached."""
        return self.db.execute("DELETE FROM outbox WHERE channel = ? AND chat_id = ?", [channel, chat_id]).rowcount

    def mark_unreachable(self, key: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO unreachable (key, since) VALUES (?, ?)", [key, self.clock()])

    def is_unreachable(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM unreachable WHERE key = ?", [key]).fetchone() is not None

    def reachable_again(self, key: str) -> None:
        self.db.execute("DELETE FROM unreachable WHERE key = ?", [key])

    def state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM channel_state WHERE key = ?", [key]).fetchone()
        return str(row[0]) if row else None

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO channel_state (key, value) VALUES (?, ?)", [key, value])

    def is_known(self, channel: str, update_id: str) -> bool:
        """Whether an update or event was received before (handled or not)."""
        return (
            self.db.execute("SELECT 1 FROM inbox WHERE channel = ? AND update_id = ?", [channel, update_id]).fetchone()
            is not None
        )

    def forget_handled_updates(self, older_than_seconds: float) -> int:
        cutoff = self.clock() - older_than_seconds
        return self.db.execute("DELETE FROM inbox WHERE handled = 1 AND received < ?", [cutoff]).rowcount

    def enqueue(self, channel: str, chat_id: str, source: str, bodies: list[str]) -> bool:
        """Queue messages that answer no inbox update (relays); the same source twice is stored once."""
        now = self.clock()
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO outbox (channel, chat_id, source, part, body, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(channel, chat_id, source, part, body, now) for part, body in enumerate(bodies)],
            )
            return self.db.conn.total_changes > before

    # -- hand-off tickets ---------------------------------------------------------------------------

    def open_ticket(
        self, person: str, channel: str, chat_id: str, language: str, urgent: bool, origin: str, topics: list[str]
    ) -> tuple[Ticket, bool]:
        """The person's open ticket, opened now if there is none; True if it was opened now."""
        with self.transaction():
            existing = self.ticket_by_origin(origin) or self.open_ticket_of(person)
            if existing is not None:
                return existing, False
            now = self.clock()
            cursor = self.db.conn.execute(
                "INSERT INTO tickets (person, channel, chat_id, language, urgent, status, origin, topics, opened, "
                "last_activity) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                [person, channel, chat_id, language, int(urgent), origin, json.dumps(topics), now, now],
            )
        ticket = self.ticket(int(cursor.lastrowid or 0))
        assert ticket is not None
        return ticket, True

    def ticket(self, ticket_id: int) -> Ticket | None:
        return _ticket(self.db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE id = ?", [ticket_id]).fetchone())

    def ticket_by_origin(self, origin: str) -> Ticket | None:
        return _ticket(self.db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE origin = ?", [origin]).fetchone())

    def open_ticket_of(self, person: str) -> Ticket | None:
        query = f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE person = ? AND status != 'closed'"
        return _ticket(self.db.execute(query, [person]).fetchone())

    def tickets_of(self, person: str) -> list[Ticket]:
        rows = self.db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE person = ? ORDER BY id", [person])
        return [t for t in map(_ticket, rows.fetchall()) if t is not None]

    def open_tickets(self) -> list[Ticket]:
        rows = self.db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE status != 'closed' ORDER BY id")
        return [t for t in map(_ticket, rows.fetchall()) if t is not None]

    def update_ticket(self, ticket_id: int, **changes: object) -> None:
        """Change status, staff, urgent or topics; every change counts as activity."""
        allowed = {"status", "staff", "urgent", "topics", "closed"}
        assert set(changes) <= allowed, set(changes) - allowed
        values = {k: json.dumps(v) if k == "topics" else v for k, v in changes.items()}
        values["last_activity"] = self.clock()
        assignments = ", ".join(f"{column} = ?" for column in values)
        self.db.execute(f"UPDATE tickets SET {assignments} WHERE id = ?", [*values.values(), ticket_id])

    def add_ticket_message(self, ticket_id: int, origin: str, author: str, text: str, topic: str | None) -> bool:
        """Add to the transcript; False if this platform message was recorded before."""
        now = self.clock()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO ticket_messages (ticket, origin, author, text, topic, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [ticket_id, origin, author, text, topic, now],
        )
        if cursor.rowcount:
            self.db.execute("UPDATE tickets SET last_activity = ? WHERE id = ?", [now, ticket_id])
        return cursor.rowcount > 0

    def ticket_message_count(self, ticket_id: int) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM ticket_messages WHERE ticket = ?", [ticket_id]).fetchone()[0])

    def set_thread(self, ticket_id: int, room: str, thread: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO ticket_threads (ticket, room, thread) VALUES (?, ?, ?)", [ticket_id, room, thread]
        )

    def thread_of(self, ticket_id: int, room: str) -> str | None:
        row = self.db.execute(
            "SELECT thread FROM ticket_threads WHERE ticket = ? AND room = ?", [ticket_id, room]
        ).fetchone()
        return str(row[0]) if row else None

    def ticket_by_thread(self, room: str, thread: str) -> Ticket | None:
        query = "SELECT ticket FROM ticket_threads WHERE room = ? AND thread = ?"
        row = self.db.execute(query, [room, thread]).fetchone()
        return self.ticket(int(row[0])) if row else None

    def forget_person(self, key: str) -> None:
        """Erase a person and their hand-off transcripts (messages and threads go with their tickets)."""
        with self.transaction():
            self.db.conn.execute("DELETE FROM people WHERE key = ?", [key])
            self.db.conn.execute("DELETE FROM tickets WHERE person = ?", [key])
            self.db.conn.execute("DELETE FROM unreachable WHERE key = ?", [key])

    def purge(self, people_days: int, handoff_days: int = 30) -> int:
        """Delete people inactive, and transcripts closed, longer than their retention periods.

        Returns how many people and tickets were removed."""
        now = self.clock()
        cutoff = now - people_days * 86400
        cursor = self.db.execute(
            "DELETE FROM people WHERE last_seen < ? "
            "AND key NOT IN (SELECT person FROM tickets WHERE status != 'closed')",
            [cutoff],
        )
        self.db.execute("DELETE FROM unreachable WHERE since < ?", [cutoff])
        tickets = self.db.execute(
            "DELETE FROM tickets WHERE status = 'closed' AND closed < ?", [now - handoff_days * 86400]
        )
        self.forget_handled_updates(86400)
        return cursor.rowcount + tickets.rowcount

    def close(self) -> None:
        self.db.conn.close()
