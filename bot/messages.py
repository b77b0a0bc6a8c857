"""Neutral messages between the channels and the dispatcher: no platform type crosses this line."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What a person sent. Everything but text, commands and choices is answered with an explanation."""

    TEXT = "text"
    COMMAND = "command"  # text holds the command word without "/" or "!"
    CHOICE = "choice"  # text holds the action of a pressed button
    FEEDBACK = "feedback"  # text holds "up" or "down", reference the answer's id
    EDITED = "edited"
    PHOTO = "photo"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO = "video"
    STICKER = "sticker"
    DOCUMENT = "document"
    LOCATION = "location"
    CONTACT = "contact"
    UNREADABLE = "unreadable"  # encrypted with keys the bot does not have
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from a person, whatever the channel."""

    channel: str  # "telegram", "matrix", "console", "ask"
    chat_id: str
    user_id: str
    text: str = ""
    kind: Kind = Kind.TEXT
    language_hint: str | None = None  # the language the chat app reports
    reference: str | None = None  # the answer a feedback refers to
    sent_at: float | None = None  # when the platform received it (Unix time), if known
    message_id: str | None = None  # the platform's id of the update or event, to act on it only once
    attachment: dict[str, str] | None = None  # a file sent: the channel's reference, passed on in a hand-off


@dataclass(frozen=True, slots=True)
class Choice:
    """A button (Telegram) or numbered option (Matrix, console): a label and the action it sends back."""

    label: str
    action: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from the bot to the person. `text` is plain text; channels escape and format it."""

    text: str
    language: str
    choices: tuple[Choice, ...] = ()
    handoff: bool = False
    urgent: bool = False
    topic: str | None = None
    confidence: float = 0.0
    alternatives: tuple[str, ...] = ()
    answer_id: str | None = None  # set on answers that can be rated 👍/👎
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaffMention:
    """A staff member to notify, by permanent id on each platform."""

    name: str
    matrix_id: str = ""
    telegram_id: str = ""


@dataclass(frozen=True, slots=True)
class StaffPost:
    """One message from the bot into a ticket's thread in the staff rooms. `text` is plain text."""

    ticket: int
    text: str
    root: bool = False  # the ticket's first message, which starts its thread
    mentions: tuple[StaffMention, ...] = ()
    attachment: dict[str, str] | None = None  # a file the person sent, by its source channel's reference


@dataclass(frozen=True, slots=True)
class StaffMessage:
    """A message written in a staff room, by a permanent id, in a ticket's thread or outside one."""

    room: str  # "matrix" or "telegram"
    sender: str
    text: str
    event_id: str
    thread: str | None = None  # the ticket's thread: Matrix root event id, Telegram forum topic id
    is_file: bool = False  # not text: a file (see attachment) or something that cannot be passed on
    attachment: dict[str, str] | None = None  # a file staff sent, by its channel's reference
