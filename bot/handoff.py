"""Hand-off tickets: a person is passed to Welcome Center staff, and the bot relays both ways.

Everything a ticket does is stored before it is sent: the ticket and its transcript in SQLite,
each relay in the outbox under a source id taken from the message it relays. Doing a step twice
(after a crash, before the inbox knew it was done) therefore changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping

from bot.i18n import N_, Catalogs, format_time, language_name_in
from bot.knowledge import KnowledgeBase
from bot.messages import Incoming, Reply, StaffMention, StaffPost
from bot.outlets import Outlets
from bot.staff import StaffConfig, StaffMember
from bot.store import Store, Ticket

log = logging.getLogger(__name__)

RECENT_MESSAGES = 5
RECENT_SECONDS = 3600
RECENT_PEOPLE = 10_000
STAFF_COMMANDS = ("claim", "release", "close", "note", "send")


CHANNEL_NAMES = {"telegram": "Telegram", "matrix": "Matrix", "console": "Console"}
PASSED_ON = N_(
    "I have passed your request to the Welcome Center team. A staff member will answer you here "
    "in this chat. Everything you write now goes to them. To end the conversation, write /end."
)
PASSED_ON_UNTIL = N_(
    "I have passed your request to the Welcome Center team. They are not working right now. "
    "A staff member will answer you here from {time}. Everything you write now goes to them. To end "
    "the conversation, write /end."
)
CLAIMED = N_("{name} from the Welcome Center is now looking after your request.")
FROM_STAFF = N_("Welcome Center ({name})")
STAFF_ONLY = N_("This command is only for Welcome Center staff.")
ALREADY_CONNECTED = N_(
    "You are already connected with the Welcome Center team. Just write your message here. To end the "
    "conversation, write /end."
)
FILE_LOST = N_("The file the person sent could not be passed on.")
CLOSE_REASONS = {
    "staff": (
        N_("The Welcome Center has ended this conversation. You can ask me questions again at any time."),
        N_("Closed by {name}."),
    ),
    "person": (
        N_("You have ended the conversation with the Welcome Center. You can ask me questions again at any time."),
        N_("The person ended the conversation. This request is closed."),
    ),
    "inactive": (
        N_(
            "This conversation with the Welcome Center was ended because nobody wrote for a while. Write /human "
            "if you need a person again."
        ),
        N_("Closed after {hours} hours without activity."),
    ),
    "unreachable": (
        "",
        N_("The person can no longer be reached (they blocked the bot or left the chat). This request is closed."),
    ),
    "deleted": (
        "",
        N_("The person deleted their data: this request is closed and its transcript erased."),
    ),
}


class RecentMessages:
    """The last few messages of each person, in memory only and for an hour, for a new ticket's context.

    Message text is never written to disk outside a hand-off; this is what a ticket shows of the
    conversation before it.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_person: OrderedDict[str, deque[tuple[float, str, str | None]]] = OrderedDict()

    def remember(self, person: str, text: str, topic: str | None) -> None:
        messages = self._by_person.pop(person, None) or deque(maxlen=RECENT_MESSAGES)
        messages.append((self.clock(), text, topic))
        self._by_person[person] = messages
        while len(self._by_person) > RECENT_PEOPLE:
            self._by_person.popitem(last=False)

    def of(self, person: str) -> list[tuple[float, str, str | None]]:
        cutoff = self.clock() - RECENT_SECONDS
        return [m for m in self._by_person.get(person, ()) if m[0] >= cutoff]

    def forget(self, person: str) -> None:
        self._by_person.pop(person, None)


class Handoffs:
    """Opens, relays and closes tickets; the staff desk and the dispatcher both work through it."""

    def __init__(
        self,
        store: Store,
        outlets: Outlets,
        staff: StaffConfig,
        knowledge: KnowledgeBase,
        catalogs: Catalogs,
        staff_language: str = "de",
        retention_days: int = 30,
    ) -> None:
        self.store = store
        self.outlets = outlets
        self.staff = staff
        self.knowledge = knowledge
        self.catalogs = catalogs
        self.staff_language = staff_language
        self.retention_days = retention_days
        self.recent = RecentMessages(store.clock)

    # -- the person's side --------------------------------------------------------------------------

    def active(self, person: str) -> Ticket | None:
        return self.store.open_ticket_of(person)

    def start(self, person: str, incoming: Incoming, language: str, urgent: bool, topic: str | None) -> Reply:
        """Open a ticket (or find the open one) and tell the person what happens next."""
        _ = self.catalogs.get(language).gettext
        origin = origin_of(incoming)
        recent = self.recent.of(person)
        topics = list(dict.fromkeys(t for _at, _text, t in recent if t) or ([topic] if topic else []))
        ticket, opened = self.store.open_ticket(
            person, incoming.channel, incoming.chat_id, language, urgent, origin, topics
        )
        if not opened and ticket.origin != origin:  # (an emergency during a hand-off is emergency_during's)
            return Reply(_(ALREADY_CONNECTED), language, handoff=True, urgent=urgent)
        for number, (_at, text, message_topic) in enumerate(recent):
            self.store.add_ticket_message(ticket.id, f"recent:{number}", "person", text, message_topic)
        self.outlets.to_staff(f"ticket:{ticket.id}", [self._ticket_post(ticket, recent)])
        self.recent.forget(person)
        opening = self._next_opening()
        if opening is None:
            return Reply(_(PASSED_ON), language, handoff=True, urgent=urgent)
        text = _(PASSED_ON_UNTIL).format(time=format_time(opening, language))
        return Reply(text, language, handoff=True, urgent=urgent)

    def relay_from_person(self, ticket: Ticket, incoming: Incoming, text: str, topic: str | None) -> None:
        """Pass what the person wrote (or a file they sent) to the ticket's thread; recorded once."""
        origin = origin_of(incoming)
        _ = self.catalogs.get(self.staff_language).gettext
        if incoming.attachment is None and not text:
            text = _("[The person sent something that cannot be passed on: {kind}]").format(kind=incoming.kind.value)
        recorded = text or _("[a file: {kind}]").format(kind=incoming.kind.value)
        self.store.add_ticket_message(ticket.id, origin, "person", recorded, topic)
        post = StaffPost(ticket.id, self._person_line(recorded, topic), attachment=incoming.attachment)
        self.outlets.to_staff(f"relay:{origin}", [post])

    def emergency_during(self, ticket: Ticket, incoming: Incoming) -> None:
        if not ticket.urgent:
            self.store.update_ticket(ticket.id, urgent=1)
        self._note(
            ticket,
            f"urgent:{origin_of(incoming)}",
            N_("Possible emergency: the person was given the emergency numbers. Please look at this now."),
            mentions=self.staff.staff,
        )

    def close(self, ticket: Ticket, reason: str, source: str, staff_name: str = "") -> None:
        """Close a ticket and tell both sides why."""
        self.store.update_ticket(ticket.id, status="closed", closed=self.store.clock())
        to_person, to_staff = CLOSE_REASONS[reason]
        if to_person:
            text = self.catalogs.gettext(ticket.language, to_person)
            self.outlets.to_person(ticket, f"close:{source}", [Reply(text, ticket.language)])
        hours = f"{self.staff.inactivity_hours:g}"
        self._note(ticket, f"close:{source}", to_staff, name=staff_name, hours=hours)

    def person_unreachable(self, ticket_id: int) -> None:
        """The person blocked the bot or left the chat: staff are told, and the request ends."""
        ticket = self.store.ticket(ticket_id)
        if ticket is not None and ticket.is_open:
            self.close(ticket, "unreachable", f"unreachable:{ticket_id}")

    def privacy_lines(self, person: str, language: str) -> list[str]:
        """What the person's hand-offs hold, for /privacy."""
        ngettext = self.catalogs.get(language).ngettext
        lines = []
        for ticket in self.store.tickets_of(person):
            count = self.store.ticket_message_count(ticket.id)
            if ticket.is_open:
                lines.append(
                    ngettext(
                        "Your open conversation with the Welcome Center: {count} message",
                        "Your open conversation with the Welcome Center: {count} messages",
                        count,
                    ).format(count=count)
                )
            else:
                assert ticket.closed is not None
                until = dt.datetime.fromtimestamp(ticket.closed + self.retention_days * 86400, dt.UTC)
                lines.append(
                    ngettext(
                        "Your closed conversation with the Welcome Center ({count} message), deleted on {date}",
                        "Your closed conversation with the Welcome Center ({count} messages), deleted on {date}",
                        count,
                    ).format(count=count, date=format_time(until, language))
                )
        return lines

    # -- the staff's side ---------------------------------------------------------------------------

    def claim(self, ticket: Ticket, member: StaffMember, source: str) -> None:
        self.store.update_ticket(ticket.id, status="claimed", staff=member.matrix_id or member.telegram_id)
        text = self.catalogs.gettext(ticket.language, CLAIMED).format(name=member.name)
        self.outlets.to_person(ticket, f"claim:{source}", [Reply(text, ticket.language)])
        self._note(ticket, f"claim:{source}", N_("{name} has claimed this request."), name=member.name)

    def release(self, ticket: Ticket, source: str) -> None:
        self.store.update_ticket(ticket.id, status="open", staff=None)
        self._note(
            ticket,
            f"release:{source}",
            N_("Released: this request is open again."),
            mentions=tuple(self.staff.speakers(ticket.language)),
        )

    def staff_reply(
        self,
        ticket: Ticket,
        member: StaffMember,
        text: str,
        source: str,
        topic: str | None = None,
        attachment: dict[str, str] | None = None,
    ) -> None:
        """Pass staff's words, a file, or a vetted answer on `topic` to the person, from "Welcome Center (name)"."""
        if ticket.status == "open":
            self.claim(ticket, member, source)
        recorded = f"[{topic}]" if topic else text or f"[{attachment['name'] if attachment else ''}]"
        self.store.add_ticket_message(ticket.id, source, "staff", recorded, topic)
        sender = self.catalogs.gettext(ticket.language, FROM_STAFF).format(name=member.name)
        reply = Reply(f"{sender}:\n{text}" if text else f"{sender}:", ticket.language)
        self.outlets.to_person(ticket, f"staff:{source}", [reply], attachment)

    def note(self, ticket: Ticket, text: str, source: str) -> None:
        self.store.add_ticket_message(ticket.id, source, "note", text, None)
        self.store.update_ticket(ticket.id)

    def send_answer(self, ticket: Ticket, member: StaffMember, topic_id: str, source: str) -> None:
        answer = self.knowledge.answer(topic_id, ticket.language)
        if answer is not None:
            self.staff_reply(ticket, member, answer.text, source, topic=topic_id)

    def expire(self) -> int:
        """Close tickets that stayed silent for the configured hours after the office (re)opened."""
        now = self.store.clock()
        closed = 0
        for ticket in self.store.open_tickets():
            start = dt.datetime.fromtimestamp(ticket.last_activity, dt.UTC)
            if not self.staff.hours.is_open(start):
                start = self.staff.hours.next_opening(start) or start
            if now > start.timestamp() + self.staff.inactivity_hours * 3600:
                self.close(ticket, "inactive", f"inactive:{ticket.id}:{ticket.last_activity}")
                closed += 1
        return closed

    # -- helpers ------------------------------------------------------------------------------------

    def title(self, topic: str | None) -> str:
        """A topic's title in the staff's language, so staff know what a message is about."""
        if topic is None:
            return ""
        answer = self.knowledge.answer(topic, self.staff_language)
        return answer.title if answer and answer.title else topic

    def _person_line(self, text: str, topic: str | None) -> str:
        """What the person wrote, with the title of the topic the bot thinks it is about."""
        return "💬 " + (f"[{self.title(topic)}] " if topic else "") + text

    def _next_opening(self) -> dt.datetime | None:
        """None while the office is open; otherwise when it opens next."""
        now = dt.datetime.fromtimestamp(self.store.clock(), dt.UTC)
        return None if self.staff.hours.is_open(now) else self.staff.hours.next_opening(now)

    def _ticket_post(self, ticket: Ticket, recent: list[tuple[float, str, str | None]]) -> StaffPost:
        _ = self.catalogs.get(self.staff_language).gettext
        header = _("URGENT request #{id} (possible emergency)") if ticket.urgent else _("New request #{id}")
        language = f"{language_name_in(ticket.language, self.staff_language)} ({ticket.language})"
        lines = [
            header.format(id=ticket.id),
            _("Language: {language} · Channel: {channel}").format(
                language=language, channel=CHANNEL_NAMES.get(ticket.channel, ticket.channel)
            ),
            _("Topics: {topics}").format(topics=", ".join(self.title(t) for t in ticket.topics) or "–"),
        ]
        if recent:
            lines.append(_("Latest messages:"))
            lines += [self._person_line(_shorten(text), t) for _at, text, t in recent]
        speakers = self.staff.speakers(ticket.language)
        if speakers:
            lines.append(_("Speaks the language: {names}").format(names=", ".join(m.name for m in speakers)))
        else:
            lines.append(_("Nobody on the team speaks this language: use !send <topic> to send a vetted answer in it."))
        opening = self._next_opening()
        if opening is not None:
            lines.append(
                _("Outside office hours: the person was told we answer from {time}.").format(
                    time=format_time(opening, self.staff_language)
                )
            )
        lines.append(
            _(
                "Reply in this thread: your words go to the person. Commands: !claim, !release, !close, "
                "!note <text>, !send <topic>"
            )
        )
        mentions = self.staff.staff if ticket.urgent else tuple(speakers)
        return StaffPost(ticket.id, "\n".join(lines), root=True, mentions=_mentions(mentions))

    def _note(
        self,
        ticket: Ticket,
        source: str,
        message: str,
        mentions: tuple[StaffMember, ...] = (),
        **values: str,
    ) -> None:
        self.outlets.to_staff(source, [self.notice(ticket.id, message, values, mentions=mentions)])

    def notice(
        self,
        ticket_id: int,
        message: str,
        values: Mapping[str, str] | None = None,
        suffix: str = "",
        mentions: tuple[StaffMember, ...] = (),
    ) -> StaffPost:
        """A message of the bot's own in a ticket's thread, in the staff's language."""
        text = "ℹ️ " + self.catalogs.gettext(self.staff_language, message).format(**(values or {}))
        return StaffPost(ticket_id, text + ("\n" + suffix if suffix else ""), mentions=_mentions(mentions))


def _shorten(text: str, limit: int = 500) -> str:
    """Earlier messages in a new ticket are cut, so the ticket fits in one message; the transcript keeps them whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mentions(members: tuple[StaffMember, ...] | list[StaffMember]) -> tuple[StaffMention, ...]:
    return tuple(StaffMention(m.name, m.matrix_id, m.telegram_id) for m in members)


def origin_of(incoming: Incoming) -> str:
    """The id of the platform message, so acting on it twice has no effect; unique where none is known."""
    return f"{incoming.channel}:{incoming.message_id or uuid.uuid4().hex}"
