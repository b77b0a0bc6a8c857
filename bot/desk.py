"""The staff desk: what staff write in a staff room, turned into ticket actions or relays.

Only staff listed in STAFF_CONFIG by permanent id, and members of the staff room right now as the
server says, may work tickets. Anything else gets a refusal and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.handoff import Handoffs
from bot.i18n import N_
from bot.messages import StaffMessage, StaffPost
from bot.normalise import normalise
from bot.staff import StaffMember
from bot.store import Ticket

MAX_CANDIDATES = 8
HELP = N_(
    "Commands in a request's thread: !claim (take it over), !release (give it back), !close (end it), "
    "!note <text> (internal, not passed on), !send <topic or search word> (a vetted answer in the person's "
    "language). Anything else you write in the thread goes to the person."
)

IsMember = Callable[[str], Awaitable[bool]]


class StaffDesk:
    def __init__(self, handoffs: Handoffs) -> None:
        self.handoffs = handoffs
        self.store = handoffs.store
        self._ = handoffs.catalogs.get(handoffs.staff_language).gettext

    async def handle(self, message: StaffMessage, is_member: IsMember) -> list[StaffPost]:
        """Act on one staff-room message; returns the bot's answers for that room."""
        _ = self._
        text = message.text.strip()
        command, _sep, argument = text[1:].partition(" ") if text.startswith("!") else ("", "", "")
        command = command.lower()
        ticket = self.store.ticket_by_thread(message.room, message.thread) if message.thread else None
        if ticket is None:
            if command == "help":
                return [StaffPost(0, _(HELP))]
            if command:
                return [StaffPost(0, _("Please write inside the thread of a request."))]
            return []  # conversation among staff outside tickets is none of the bot's business
        member = self.handoffs.staff.by_id(message.sender)
        if member is None or not await is_member(message.sender):
            return [
                self._post(
                    ticket,
                    N_(
                        "Only Welcome Center staff listed in the staff configuration who are "
                        "members of this room can work requests. Nothing was done."
                    ),
                )
            ]
        source = f"{message.room}:{message.event_id}"
        if not command:
            return self._reply(ticket, member, message, source)
        if not ticket.is_open and command != "note":
            return [self._post(ticket, N_("This request is closed. Nothing was done."))]
        if command == "claim":
            if ticket.status == "claimed" and ticket.staff not in (member.matrix_id, member.telegram_id):
                return [self._post(ticket, N_("This request is already claimed by someone else. Use !release first."))]
            self.handoffs.claim(ticket, member, source)
            return []
        if command == "release":
            self.handoffs.release(ticket, source)
            return []
        if command == "close":
            self.handoffs.close(ticket, "staff", source, staff_name=member.name)
            return []
        if command == "note":
            self.handoffs.note(ticket, argument.strip(), source)
            return [self._post(ticket, N_("Note saved (not passed on to the person)."))]
        if command == "send":
            return self._send(ticket, member, argument.strip(), source)
        if command == "help":
            return [self._post(ticket, HELP)]
        return [self._post(ticket, N_("Unknown command. Write !help for the list."))]

    def _reply(self, ticket: Ticket, member: StaffMember, message: StaffMessage, source: str) -> list[StaffPost]:
        if message.is_file and message.attachment is None:
            return [self._post(ticket, N_("Only text and files can be passed on to the person."))]
        if not ticket.is_open:
            return [self._post(ticket, N_("This request is closed; your message was not passed on."))]
        self.handoffs.staff_reply(ticket, member, message.text.strip(), source, attachment=message.attachment)
        return []

    def _send(self, ticket: Ticket, member: StaffMember, term: str, source: str) -> list[StaffPost]:
        candidates = self.topics_for(term)
        if len(candidates) != 1:
            if not candidates:
                return [self._post(ticket, N_("No topic matches “{term}”."), term=term)]
            listed = "\n".join(f"• {topic} – {self.handoffs.title(topic)}" for topic in candidates[:MAX_CANDIDATES])
            return [self._post(ticket, N_("Several topics match. Send one with !send <topic>:"), suffix=listed)]
        topic = candidates[0]
        self.handoffs.send_answer(ticket, member, topic, source)
        return [
            self._post(
                ticket, N_("Sent the answer “{title}” ({topic})."), title=self.handoffs.title(topic), topic=topic
            )
        ]

    def topics_for(self, term: str) -> list[str]:
        """Topic ids that a short search term names: the id itself, or words of the id or title."""
        topics = [t for t in self.handoffs.knowledge.topics if not t.startswith(("smalltalk.", "bot."))]
        wanted = normalise(term)
        if not wanted:
            return []
        if term in topics:
            return [term]
        return [t for t in topics if wanted in normalise(t) or wanted in normalise(self.handoffs.title(t))]

    def _post(self, ticket: Ticket, message: str, suffix: str = "", **values: str) -> StaffPost:
        return self.handoffs.notice(ticket.id, message, values, suffix)
