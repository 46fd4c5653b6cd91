"""engine/relay.py's acknowledgements, with a scripted source and target: the source hears of an
offset only once the target has answered every command before it, and a GETACK is answered in
order (its own bytes excluded), even while commands before it are still unanswered."""

from __future__ import annotations

import asyncio

from cachefleet.engine.access import NodeAccess
from cachefleet.engine.relay import Relay
from cachefleet.engine.resp import encode


class Recorder:
    """The relay's writer to the source: keeps what the relay sends back (its ACKs)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass

    def acks(self) -> list[int]:
        return [int(chunk.split(b"\r\n")[-2]) for chunk in self.sent if b"ACK" in chunk]


async def test_acks_follow_the_targets_answers_and_a_getack_is_answered_in_order():
    release = asyncio.Event()
    received: list[bytes] = []

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(encode("CLIENT", "SETNAME", "cachefleet-relay"))  # the relay names its connection
        writer.write(b"+OK\r\n")
        while True:
            data = await reader.read(65536)
            if not data:
                return
            received.append(data)
            await release.wait()  # the target answers only once the test lets it
            writer.write(b"+OK\r\n" * data.count(b"*3\r\n"))
            await writer.drain()

    server = await asyncio.start_server(target, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay = Relay(NodeAccess("127.0.0.1", 1))
    relay.offset = 1000
    source = asyncio.StreamReader()
    recorder = Recorder()
    relay._reader, relay._writer = source, recorder  # noqa: SLF001 - as full_sync leaves them
    applying = asyncio.create_task(relay.apply(NodeAccess("127.0.0.1", port)))

    first, second = encode("SET", "a", "1"), encode("SET", "b", "2")
    getack = encode("REPLCONF", "GETACK", "*")
    source.feed_data(first + second + getack)
    while not received:
        await asyncio.sleep(0.001)
    assert received == [first + second]  # the GETACK is the link's: not forwarded
    await asyncio.sleep(0.05)
    assert all(ack == 1000 for ack in recorder.acks())  # nothing answered yet: no offset moved
    release.set()
    end = 1000 + len(first) + len(second)
    while relay.offset != end + len(getack):
        await asyncio.sleep(0.001)
    assert end in recorder.acks()  # the GETACK's answer: the offset before it, after both commands
    assert relay.applied == 2

    # With nothing unanswered, a PING and a GETACK are answered at once and move the offset past them.
    ping = encode("PING")
    source.feed_data(ping + getack)
    while relay.offset != end + 2 * len(getack) + len(ping):
        await asyncio.sleep(0.001)
    assert recorder.acks()[-1] == end + len(getack) + len(ping)
    applying.cancel()
    await asyncio.gather(applying, return_exceptions=True)
    server.close()
    await server.wait_closed()
