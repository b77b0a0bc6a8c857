"""Where relayed messages go: a person's chat on any channel, or the ticket threads in the staff rooms.

A relay is written to the SQLite outbox before anything is sent, under a source id taken from the
message it relays and its destination, so writing it twice (after a crash) stores it once, and a
person and the staff room in the same channel never share one. The channel's own delivery
loop then sends it in order, with retries, exactly as it sends answers.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from bot.messages import Reply, StaffPost
from bot.store import Store, Ticket

log = logging.getLogger(__name__)


class Outlet(Protocol):
    """What a channel offers for relays: how it renders them, and a way to wake its sender."""

    staff_room: str | None  # the chat id of the staff room on this channel, if it has one

    def render(self, reply: Reply, chat_id: str) -> list[dict[str, Any]]: ...

    def render_staff(self, post: StaffPost) -> dict[str, Any]: ...

    def kick(self, chat_id: str) -> None: ...

    async def fetch(self, attachment: dict[str, str]) -> tuple[bytes, str, str]: ...


class Outlets:
    """The channels that can carry relays, by name."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._outlets: dict[str, Outlet] = {}

    def register(self, channel: str, outlet: Outlet) -> None:
        self._outlets[channel] = outlet

    def to_person(
        self, ticket: Ticket, source: str, replies: list[Reply], attachment: dict[str, str] | None = None
    ) -> None:
        """Relay to the person's chat; a file staff sent goes after the text."""
        outlet = self._outlets.get(ticket.channel)
        if outlet is None:
            log.error("no %s channel is running: a staff reply cannot be passed on yet", ticket.channel)
            return
        bodies = [
            json.dumps({**body, "relay_ticket": ticket.id})  # so a person who cannot be reached closes it
            for reply in replies
            for body in outlet.render(reply, ticket.chat_id)
        ]
        if attachment is not None:
            bodies[-1] = json.dumps({**json.loads(bodies[-1]), "file": attachment})
        if self.store.enqueue(ticket.channel, ticket.chat_id, f"to-person:{source}", bodies):
            outlet.kick(ticket.chat_id)

    def to_staff(self, source: str, posts: list[StaffPost]) -> None:
        """Post into the ticket's thread in every staff room."""
        for channel, outlet in self._outlets.items():
            if outlet.staff_room:
                bodies = [json.dumps(outlet.render_staff(post)) for post in posts]
                if self.store.enqueue(channel, outlet.staff_room, f"to-staff:{source}", bodies):
                    outlet.kick(outlet.staff_room)

    async def fetch(self, attachment: dict[str, str]) -> tuple[bytes, str, str]:
        """A file a person sent, from the channel it came through: (data, file name, media type)."""
        return await self._outlets[attachment["channel"]].fetch(attachment)
