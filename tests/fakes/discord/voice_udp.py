"""The voice UDP server: IP discovery, then RTP packets decrypted and recorded.

IP discovery: the client sends 74 bytes (``>HHI`` type 1, length 70, SSRC, padding); the
answer is 74 bytes, type 2, the client's address as ASCII NUL-terminated from byte 8,
its port big-endian in the last two bytes.

RTP in ``aead_xchacha20_poly1305_rtpsize``: the AAD is the RTP header (12 bytes plus
CSRCs, plus the 4-byte extension header when the X bit is set); the nonce is the
packet's last 4 bytes followed by 20 zero bytes; the ciphertext is everything between.
An encrypted extension body comes first in the plaintext and is stripped.

Datagrams are read by a dedicated thread blocking in ``recvmsg``: asyncio's datagram
transport wakes the event loop once per datagram, which at 200 streams x 50 packets/s
cost about two thirds of a core; the thread does one syscall, one dict lookup, one
decrypt and one append per packet (about 10 us). Decoding is left to ``audio.py``.

A packet's arrival time is the kernel's receive timestamp (``SO_TIMESTAMPNS``, Linux),
moved onto ``time.monotonic()``: the reader shares the GIL with the bot under test, and
a reader kept waiting for it would otherwise stamp a burst of late arrivals, and split
an utterance, where the packets came in on time. Where the option is missing (or for
the first packets, while the kernel turns its timestamps on) the reader's clock is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError

from tests.fakes.discord.audio import VoicePacket, VoiceStream
from tests.fakes.discord.world import Notifier

log = logging.getLogger(__name__)

DISCOVERY_SIZE = 74
_NONCE_PAD = bytes(20)
_MIN_RTP = 12 + 16 + 4  # header, Poly1305 tag, nonce suffix
_unpack_header = struct.Struct(">HI").unpack_from
_AFTER_DISCOVERY = 0.03
_RECEIVE_BUFFER = 4 * 1024 * 1024
_STOP = b"fake-discord-udp-stop"
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), absent from the socket module: a struct
# timespec of CLOCK_REALTIME, two native longs.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
_FORGET = b"fake-discord-udp-forget:"


@dataclass(eq=False)
class UDPSession:
    """What the server knows about one SSRC: its guild, key and stream."""

    guild_id: int
    key: bytes | None
    stream: VoiceStream
    client: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Discovery:
    """One IP discovery request."""

    ssrc: int
    address: tuple[str, int]
    time: float


@dataclass(eq=False)
class UDPStats:
    """Counters for datagrams that were not recordable audio."""

    unknown_ssrc: int = 0
    malformed: int = 0
    no_key: int = 0
    discoveries: list[Discovery] = field(default_factory=list)


class VoiceUDP:
    """A voice server's UDP socket and the thread reading it.

    ``chatter`` (seconds) sends every known client a small RTCP-like datagram at that
    interval and once just after its IP discovery, as a server relaying other members
    would send traffic; None sends nothing but discovery answers. It matters to
    discord.py 2.7.1: its socket reader thread only notices a replaced socket after a
    datagram (or its 30 s ``select`` timeout), so without traffic its voice reconnects
    stall in IP discovery.
    """

    def __init__(self, notifier: Notifier, *, chatter: float | None = None) -> None:
        self._notifier = notifier
        self.sessions: dict[int, UDPSession] = {}
        self.stats = UDPStats()
        self.chatter = chatter
        self.chatter_sent = 0
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_pending = False
        self._chatter_handle: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int = 0) -> int:
        """Bind ``host:port`` (0: ephemeral), start the reader; return the bound port."""
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Bursts from many players must not overflow the default ~200 KB buffer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind((host, port))
        self.sock = sock
        bound = int(sock.getsockname()[1])
        self._thread = threading.Thread(
            target=self._read, name=f"fake-discord-udp:{bound}", daemon=True
        )
        self._thread.start()
        if self.chatter is not None:
            self._chatter_handle = self._loop.call_later(self.chatter, self._chat)
        return bound

    def close(self) -> None:
        """Stop the reader thread (it is woken by a datagram to itself) and close the socket."""
        if self._chatter_handle is not None:
            self._chatter_handle.cancel()
            self._chatter_handle = None
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            sock.sendto(_STOP, sock.getsockname())
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        sock.close()

    def _read(self) -> None:
        sock = self.sock
        assert sock is not None
        receive = sock.recvmsg
        unpack = _TIMESPEC.unpack_from
        wall, monotonic = time.time, time.monotonic
        while not self._stopping:
            try:
                data, ancillary, _, address = receive(2048, _ANCILLARY)
            except OSError:
                break
            if self._stopping:
                break
            if data.startswith(_FORGET):
                self.sessions.pop(int(data[len(_FORGET) :]), None)
                continue
            arrival = monotonic()
            for level, kind, stamp in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanoseconds = unpack(stamp)
                    arrival -= wall() - (seconds + nanoseconds * 1e-9)
            try:
                self.datagram_received(data, address, arrival)
            except Exception:
                log.exception("fake voice UDP: datagram from %s", address)

    def _wake(self) -> None:
        """Tell the loop's waiters (from the reader thread): only while someone waits."""
        loop = self._loop
        if loop is None or self._wake_pending or not self._notifier.waiting:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._woken)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self._wake_pending = False

    def _woken(self) -> None:
        self._wake_pending = False
        self._notifier.notify()

    def _chat(self) -> None:
        if self.sock is None or self.chatter is None or self._loop is None:
            return
        for ssrc, session in list(self.sessions.items()):
            if session.client is not None:
                self._chat_to(ssrc, session.client)
        self._chatter_handle = self._loop.call_later(self.chatter, self._chat)

    def _chat_to(self, ssrc: int, address: tuple[str, int]) -> None:
        if self.sock is not None:
            # An RTCP receiver report header (PT 201) for the client's SSRC: never taken
            # for a discovery answer, ignored by discord.py.
            with contextlib.suppress(OSError):
                self.sock.sendto(struct.pack(">BBHI", 0x81, 201, 1, ssrc), address)
            self.chatter_sent += 1

    def register(self, ssrc: int, guild_id: int, stream: VoiceStream) -> UDPSession:
        """Expect packets from ``ssrc`` for ``guild_id`` (the key comes later)."""
        session = UDPSession(guild_id, None, stream)
        self.sessions[ssrc] = session
        return session

    def set_key(self, ssrc: int, key: bytes) -> None:
        """The secret key sent in SESSION_DESCRIPTION for ``ssrc``."""
        self.sessions[ssrc].key = key

    def forget(self, ssrc: int) -> UDPSession | None:
        """Stop accepting ``ssrc`` (its session ended or is suspended); returns its session."""
        return self.sessions.pop(ssrc, None)

    def forget_after_queued(self, ssrc: int) -> None:
        """Stop accepting ``ssrc`` once the datagrams already received have been read.

        The client left: what it sent before saying so is in the socket's queue and was
        delivered, as Discord would have it; a marker sent to the socket itself is read
        after them (a datagram queue is in order) and ends the session there.
        """
        sock = self.sock
        if sock is not None:
            try:
                sock.sendto(_FORGET + str(ssrc).encode(), sock.getsockname())
            except OSError:
                pass
            else:
                return
        self.sessions.pop(ssrc, None)

    def restore(self, ssrc: int, session: UDPSession) -> None:
        """Accept ``ssrc`` again (a resumed session keeps its SSRC, key and stream)."""
        self.sessions[ssrc] = session

    def datagram_received(
        self, data: bytes, addr: tuple[str, int], arrival: float | None = None
    ) -> None:
        """Handle one datagram (called on the reader thread); ``arrival`` is when it came
        in on ``time.monotonic()`` (default: now)."""
        size = len(data)
        if size == DISCOVERY_SIZE and data[0] == 0 and data[1] == 1:
            self._discover(data, addr)
            return
        if size < _MIN_RTP:
            self.stats.malformed += 1
            self._wake()
            return
        ssrc = int.from_bytes(data[8:12], "big")
        session = self.sessions.get(ssrc)
        if session is None:
            self.stats.unknown_ssrc += 1
            self._wake()
            return
        key = session.key
        if key is None:
            self.stats.no_key += 1
            self._wake()
            return
        first = data[0]
        header = 12 + 4 * (first & 0x0F)
        extension_words = 0
        if first & 0x10:
            extension_words = int.from_bytes(data[header + 2 : header + 4], "big")
            header += 4
        try:
            plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[header:-4], data[:header], data[-4:] + _NONCE_PAD, key
            )
        except CryptoError:
            session.stream.decrypt_failures += 1
            self._wake()
            return
        if extension_words:
            plain = plain[4 * extension_words :]
        sequence, timestamp = _unpack_header(data, 2)
        session.client = addr
        session.stream.packets.append(
            VoicePacket(
                time.monotonic() if arrival is None else arrival, sequence, timestamp, ssrc, plain
            )
        )
        self._wake()

    def _discover(self, data: bytes, addr: tuple[str, int]) -> None:
        ssrc = int.from_bytes(data[4:8], "big")
        self.stats.discoveries.append(Discovery(ssrc, addr, time.monotonic()))
        session = self.sessions.get(ssrc)
        if session is not None:
            session.client = addr
        reply = bytearray(DISCOVERY_SIZE)
        struct.pack_into(">HHI", reply, 0, 2, 70, ssrc)
        ip = addr[0].encode("ascii")
        reply[8 : 8 + len(ip)] = ip
        struct.pack_into(">H", reply, DISCOVERY_SIZE - 2, addr[1])
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(bytes(reply), addr)
        loop = self._loop
        if self.chatter is not None and loop is not None:
            # One more datagram once discord.py has dropped its discovery listener, so
            # its reader thread parks instead of sitting in select() on this socket.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    loop.call_later, _AFTER_DISCOVERY, self._chat_to, ssrc, addr
                )
        self._wake()


class StreamStore:
    """Every :class:`VoiceStream`, per guild, and the SSRCs handed out."""

    def __init__(self) -> None:
        self.by_guild: dict[int, list[VoiceStream]] = {}
        self._next_ssrc = 0x1000

    def new_stream(self, guild_id: int) -> VoiceStream:
        """A fresh SSRC and its (empty) stream in ``guild_id``."""
        self._next_ssrc += 1
        stream = VoiceStream(guild_id, self._next_ssrc)
        self.by_guild.setdefault(guild_id, []).append(stream)
        return stream

    def streams(self, guild_id: int) -> list[VoiceStream]:
        """The guild's streams, oldest first (a reconnect starts a new SSRC)."""
        return list(self.by_guild.get(guild_id, ()))

    def all(self) -> list[VoiceStream]:
        """Every stream of every guild."""
        return [s for streams in self.by_guild.values() for s in streams]
