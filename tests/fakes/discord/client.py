"""Pointing the real, unmodified discord.py at a :class:`FakeDiscord`.

Only three things change, none of them inside discord.py's code:

* ``discord.http.Route.BASE``: where REST goes (the webhook adapter builds its routes
  with the same class, so interaction answers follow);
* ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``: where a non-sharded client (and
  a re-IDENTIFY after op 9) connects; ``AutoShardedClient`` asks ``GET /gateway/bot``;
* the bot's ``connector=``: an aiohttp connector whose SSL context trusts the fake's CA,
  for the voice websocket, which discord.py always opens as ``wss://``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)
FAKE_TOKEN = "fake.discord.token"


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake``; restore them after."""
    route_base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = route_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def discord_client_options(
    fake: FakeDiscord, *, guild_ready_timeout: float = 0.05, **extra: Any
) -> dict[str, Any]:
    """Keyword arguments for a ``discord.Client``/``commands.Bot`` talking to ``fake``.

    ``connector`` trusts the fake's CA (call this inside the running loop: aiohttp binds
    the connector to it); the small ``guild_ready_timeout`` makes ``on_ready`` fire as
    soon as the fake's GUILD_CREATEs are in (discord.py waits 2 s by default).
    """
    connector = aiohttp.TCPConnector(ssl=fake.client_ssl_context(), limit=0)
    return {"connector": connector, "guild_ready_timeout": guild_ready_timeout, **extra}


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, bot: ClientT, *, token: str = FAKE_TOKEN, timeout: float = 10.0
) -> AsyncIterator[ClientT]:
    """Log ``bot`` in to ``fake``, wait for ``on_ready``, and close it at the end.

    The URLs stay pointed at the fake for the whole block, so reconnects go there too.
    An exception that stopped the bot's connection is re-raised on exit.
    """
    with pointed_at(fake):
        try:
            await bot.login(token)
            runner = asyncio.create_task(bot.connect(), name="fake-discord bot")
            ready = asyncio.create_task(bot.wait_until_ready())
            try:
                done, _ = await asyncio.wait(
                    {runner, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                ready.cancel()
            if runner in done:
                runner.result()
                raise RuntimeError("the bot stopped before it was ready")
            if not done:
                raise TimeoutError(f"the bot was not ready within {timeout}s")
            try:
                yield bot
            finally:
                await bot.close()
                await asyncio.wait_for(runner, timeout)
        finally:
            if not bot.is_closed():
                await bot.close()


class OpusPackets(discord.AudioSource):
    """An ``is_opus()`` source that plays ready-made 20 ms Opus packets once."""

    def __init__(self, packets: Sequence[bytes]) -> None:
        self._packets = list(packets)
        self._next = 0

    def read(self) -> bytes:
        """The next packet; ``b""`` at the end (discord.py then stops the player)."""
        if self._next >= len(self._packets):
            return b""
        packet = self._packets[self._next]
        self._next += 1
        return packet

    def is_opus(self) -> bool:
        """Always: these are Opus packets, so discord.py needs no libopus encoder."""
        return True


class FastSleepLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``call_later`` delays pass ``factor`` times faster.

    ``asyncio.sleep`` (and, on 3.11, ``wait_for``) schedule through ``call_later``, so
    discord.py's fixed retry sleeps (1 + 2·try seconds after a 500) shrink without
    touching discord.py. Use only for REST-only scenarios: every ``call_later`` user in
    the loop, the fake included, runs fast. Run with
    ``asyncio.Runner(loop_factory=FastSleepLoop.factory(20))``.
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` after ``delay / factor`` real seconds."""
        return super().call_later(delay / self.factor, callback, *args, context=context)

    @classmethod
    def factory(cls, factor: float) -> Callable[[], FastSleepLoop]:
        """A ``loop_factory`` for :class:`asyncio.Runner`."""
        return lambda: cls(factor)
