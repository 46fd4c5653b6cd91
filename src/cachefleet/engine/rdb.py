"""RDB files: what a header says, whether a file is whole, and which engine can load it.

An RDB starts with a 9-byte signature, ``REDIS`` + four version digits (``REDIS0011``) or,
from Valkey 9, ``VALKEY`` + three (``VALKEY080``), then AUX fields (``redis-ver`` or
``valkey-ver``, ``ctime``, ``used-mem``...), the data, an EOF opcode (0xFF) and, from version
5 on, the CRC-64 (Jones polynomial, reflected, as the engines compute it) of everything
before it, little-endian. A checksum of 0 means the writer ran with ``rdbchecksum no``.

Which formats each installed build writes and loads was measured (see ``SUPPORT`` and
tests/acceptance/test_rdb_support.py, which measures it again against the real binaries):
an engine refuses a format it cannot read only when it starts, after its node exists, so a
restore checks first with ``check_loadable``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anycrc

log = logging.getLogger(__name__)

HEADER_SIZE = 9
TRAILER_SIZE = 9  # the EOF opcode and the 8-byte checksum
OPCODE_AUX = 0xFA
OPCODE_EOF = 0xFF
CHUNK_SIZE = 4 << 20
_HEADER = re.compile(rb"^(?:(REDIS)([0-9]{4})|(VALKEY)([0-9]{3}))$")
_CRC64 = anycrc.Model("CRC64-REDIS")


class RdbError(Exception):
    """An RDB file cannot be used; the message says why in words a user can act on."""


class RdbCorrupt(RdbError):
    """Not an RDB, cut short, or its content does not match its checksum."""


class RdbIncompatible(RdbError):
    """A whole RDB that the chosen engine version cannot load."""


@dataclass(frozen=True, order=True)
class RdbHeader:
    """The format an RDB is written in: ``REDIS`` 0001-9999 or ``VALKEY`` 001-999."""

    magic: str
    version: int

    @property
    def signature(self) -> str:
        return f"{self.magic}{self.version:0{4 if self.magic == 'REDIS' else 3}d}"

    def __str__(self) -> str:
        return self.signature


def parse_header(data: bytes) -> RdbHeader:
    """The header of an RDB from its first 9 bytes; RdbCorrupt if it is not one."""
    match = _HEADER.match(data[:HEADER_SIZE])
    if match is None or len(data) < HEADER_SIZE:
        raise RdbCorrupt(f"not an RDB file: it starts with {data[:HEADER_SIZE]!r}, not REDIS0nnn or VALKEYnnn")
    magic, digits = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return RdbHeader(magic.decode(), int(digits))


def read_header(path: Path) -> RdbHeader:
    with open(path, "rb") as handle:
        return parse_header(handle.read(HEADER_SIZE))


class Checksum:
    """The engines' CRC-64, fed in pieces (C speed: several GB/s, so it can ride along a copy)."""

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if len(data):
            self.value = _CRC64.calc(data, self.value)
            self.size += len(data)


def crc64(data: bytes | bytearray | memoryview) -> int:
    checksum = Checksum()
    checksum.update(data)
    return checksum.value


@dataclass(frozen=True)
class RdbFacts:
    """What a whole, verified RDB file is: for a snapshot's manifest and for restore checks."""

    header: RdbHeader
    size: int
    checksum: int  # as stored in the file; 0 when written with rdbchecksum no
    aux: dict[str, str] = field(default_factory=dict)

    @property
    def checksummed(self) -> bool:
        return self.checksum != 0

    @property
    def written_by(self) -> str:
        """``valkey 9.1.2``, ``redis 7.0.15``, or "" when the file does not say."""
        for key in ("valkey-ver", "redis-ver"):
            if key in self.aux:
                return f"{key.split('-')[0]} {self.aux[key]}"
        return ""


class StreamVerifier:
    """Checks an RDB fed to it in order, in pieces: for files copied, encrypted or decrypted in one pass.

    ``update`` takes every byte of the file; ``finish`` raises RdbCorrupt unless they made a
    whole RDB, and returns its facts. The checksum covers all but the last 8 bytes (which hold
    it), so the last 9 bytes are kept aside until the end.
    """

    def __init__(self) -> None:
        self._checksum = Checksum()
        self._head = bytearray()
        self._tail = bytearray()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if len(self._head) < 4096:
            self._head += bytes(data[: 4096 - len(self._head)])
        count = len(data)
        if count >= TRAILER_SIZE:
            # What was held back, and all but the last 9 bytes of this piece, are not the trailer.
            self._checksum.update(self._tail)
            self._checksum.update(memoryview(data)[: count - TRAILER_SIZE])
            self._tail = bytearray(data[count - TRAILER_SIZE :])
            return
        self._tail += data
        if len(self._tail) > TRAILER_SIZE:
            ready = len(self._tail) - TRAILER_SIZE
            self._checksum.update(memoryview(self._tail)[:ready])
            del self._tail[:ready]

    def finish(self) -> RdbFacts:
        size = self._checksum.size + len(self._tail)
        header = parse_header(bytes(self._head[:HEADER_SIZE]))
        has_checksum = header.magic == "VALKEY" or header.version >= 5
        if size < HEADER_SIZE + (TRAILER_SIZE if has_checksum else 1):
            raise RdbCorrupt(f"truncated RDB: {size} bytes, too short to hold its end marker")
        if not has_checksum:
            if self._tail[-1:] != bytes([OPCODE_EOF]):
                raise RdbCorrupt(f"truncated RDB: {size} bytes and no end-of-file marker")
            return RdbFacts(header=header, size=size, checksum=0, aux=aux_fields(bytes(self._head)))
        if self._tail[0] != OPCODE_EOF:
            raise RdbCorrupt(f"truncated RDB: {size} bytes and no end-of-file marker where the checksum should start")
        computed = Checksum()
        computed.value, computed.size = self._checksum.value, self._checksum.size
        computed.update(self._tail[:1])
        (stored,) = struct.unpack("<Q", bytes(self._tail[1:]))
        if stored and stored != computed.value:
            raise RdbCorrupt(
                f"corrupt or truncated RDB: its checksum is {stored:016x} but its {size} bytes sum to {computed.value:016x}"
            )
        return RdbFacts(header=header, size=size, checksum=stored, aux=aux_fields(bytes(self._head)))


def verify(path: Path, *, chunk_size: int = CHUNK_SIZE, observe: Callable[[memoryview], object] | None = None) -> RdbFacts:
    """Reads the whole file once and checks it; RdbCorrupt says what is wrong.

    ``observe`` sees every byte in order (to copy or hash the file in the same pass).
    """
    verifier = StreamVerifier()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        parse_header(handle.read(HEADER_SIZE))  # not an RDB at all: say so before reading it whole
        handle.seek(0)
        while count := handle.readinto(view):
            verifier.update(view[:count])
            if observe is not None:
                observe(view[:count])
    return verifier.finish()


def aux_fields(data: bytes) -> dict[str, str]:
    """The AUX fields after the header in an RDB's first bytes (who wrote it, when); best effort, never raises."""
    fields: dict[str, str] = {}
    position = HEADER_SIZE
    try:
        while position < len(data) and data[position] == OPCODE_AUX:
            key, position = _string(data, position + 1)
            value, position = _string(data, position)
            if key is not None and value is not None:
                fields[key] = value
    except (IndexError, struct.error):
        pass
    return fields


def _string(data: bytes, position: int) -> tuple[str | None, int]:
    """One RDB string at ``position``: (text, or None for an LZF-compressed one; next position)."""
    first = data[position]
    kind = first >> 6
    if kind == 0:
        length, position = first & 0x3F, position + 1
    elif kind == 1:
        length, position = ((first & 0x3F) << 8) | data[position + 1], position + 2
    elif first == 0x80:
        length, position = struct.unpack(">I", data[position + 1 : position + 5])[0], position + 5
    elif first == 0x81:
        length, position = struct.unpack(">Q", data[position + 1 : position + 9])[0], position + 9
    else:
        encoding = first & 0x3F
        if encoding in (0, 1, 2):
            width = 1 << encoding
            (number,) = struct.unpack("<" + "bhi"[encoding], data[position + 1 : position + 1 + width])
            return str(number), position + 1 + width
        if encoding == 3:  # LZF: compressed length, original length, payload
            compressed, position = _length(data, position + 1)
            _, position = _length(data, position)
            return None, position + compressed
        raise IndexError("unknown string encoding")
    if position + length > len(data):
        raise IndexError("string past the buffer")
    return data[position : position + length].decode(errors="replace"), position + length


def _length(data: bytes, position: int) -> tuple[int, int]:
    first = data[position]
    if first >> 6 == 3:
        raise IndexError("an encoded integer where a length belongs")
    if first >> 6 == 0:
        return first & 0x3F, position + 1
    if first >> 6 == 1:
        return ((first & 0x3F) << 8) | data[position + 1], position + 2
    if first == 0x80:
        return struct.unpack(">I", data[position + 1 : position + 5])[0], position + 5
    return struct.unpack(">Q", data[position + 1 : position + 9])[0], position + 9


# ---------------------------------------------------------------------------- who loads what

Ranges = dict[str, tuple[int, int]]  # magic -> (lowest, highest) version loaded


@dataclass(frozen=True)
class RdbSupport:
    """The RDB formats one engine release writes and loads (measured, not read off a changelog).

    ``strict`` is what it loads with ``rdb-version-check strict`` (the default, and what
    Cachefleet runs); ``relaxed`` adds what it tries with ``rdb-version-check relaxed``
    (Valkey only), where a file that uses a type the engine does not know still fails the start.
    """

    engine: str
    major_minor: str
    writes: RdbHeader
    strict: Ranges
    relaxed: Ranges

    def loads(self, header: RdbHeader, *, relaxed: bool = False) -> bool:
        low, high = (self.relaxed if relaxed else self.strict).get(header.magic, (1, 0))
        return low <= header.version <= high

    def describe(self, *, relaxed: bool = False) -> str:
        ranges = self.relaxed if relaxed else self.strict
        return " and ".join(
            f"{RdbHeader(magic, low)}-{RdbHeader(magic, high)}" if low != high else str(RdbHeader(magic, low))
            for magic, (low, high) in sorted(ranges.items(), reverse=True)
        )


_ANY_REDIS = 9999
_ANY_VALKEY = 999

# Measured with the installed builds (tests/acceptance/test_rdb_support.py): each one wrote a
# file, then loaded files whose header was rewritten (and checksum recomputed) to each format.
SUPPORT: dict[tuple[str, str], RdbSupport] = {
    ("redis", "7.0"): RdbSupport(
        "redis", "7.0", RdbHeader("REDIS", 10),
        strict={"REDIS": (1, 10)},
        relaxed={"REDIS": (1, 10)},  # no such setting in Redis OSS 7.0
    ),
    ("valkey", "8.1"): RdbSupport(
        "valkey", "8.1", RdbHeader("REDIS", 11),
        # 8.1 reads the version after either signature the same way; only VALKEY files of a
        # newer version load with relaxed checking (REDIS0012 of Redis 7.4+ never does).
        strict={"REDIS": (1, 11), "VALKEY": (1, 11)},
        relaxed={"REDIS": (1, 11), "VALKEY": (1, _ANY_VALKEY)},
    ),
    ("valkey", "9.1"): RdbSupport(
        "valkey", "9.1", RdbHeader("VALKEY", 80),
        # REDIS0012-0079 are Redis's own later formats ("foreign"): relaxed checking only.
        strict={"REDIS": (1, 11), "VALKEY": (80, 80)},
        relaxed={"REDIS": (1, 79), "VALKEY": (80, _ANY_VALKEY)},
    ),
}


def _label(engine: str) -> str:
    return "Valkey" if engine == "valkey" else "Redis OSS"


def support(engine: str, version: str) -> RdbSupport:
    """The measured facts of a release (``9.1`` or ``9.1.2``); RdbIncompatible if none are known."""
    major_minor = ".".join(version.split(".")[:2])
    found = SUPPORT.get((engine, major_minor))
    if found is None:
        raise RdbIncompatible(
            f"which RDB formats {_label(engine)} {major_minor} loads is not known; "
            "measure it with cachefleet.engine.rdb.probe_loads before restoring into it"
        )
    return found


def check_loadable(
    source: Path | str | bytes | RdbHeader, engine: str, version: str, *, relaxed: bool = False
) -> RdbHeader:
    """The RDB's header if ``engine`` ``version`` can load it; RdbIncompatible (or RdbCorrupt) if not.

    ``source`` is a file, its first bytes, or a header already read. Only the header is
    looked at: call ``verify`` for the whole file.
    """
    if isinstance(source, RdbHeader):
        header = source
    elif isinstance(source, bytes):
        header = parse_header(source)
    else:
        header = read_header(Path(source))
    target = support(engine, version)
    if target.loads(header, relaxed=relaxed):
        return header
    readers = [
        f"{_label(s.engine)} {s.major_minor}" for s in SUPPORT.values() if s.loads(header, relaxed=relaxed)
    ]
    raise RdbIncompatible(
        f"{_label(engine)} {target.major_minor} cannot load an RDB of format {header} "
        f"(it loads {target.describe(relaxed=relaxed)})"
        + (f"; restore it into {' or '.join(readers)}" if readers else "; no installed engine loads it")
    )


# ---------------------------------------------------------------------------- measuring a build


def rewrite_header(data: bytes, header: RdbHeader) -> bytes:
    """The same RDB under another signature, with its checksum recomputed (to probe engines)."""
    body = header.signature.encode() + data[HEADER_SIZE:-8]
    return body + struct.pack("<Q", crc64(body))


@contextlib.contextmanager
def _engine(binary: Path, directory: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A throw-away engine listening on a unix socket only (no address to allocate); yields its Popen."""
    socket_path = directory / "engine.sock"
    process = subprocess.Popen(
        [str(binary), "--port", "0", "--unixsocket", str(socket_path), "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--logfile", str(directory / "engine.log"), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _ask(socket_path: Path, *command: str, timeout: float = 5.0) -> bytes:
    import socket

    payload = b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(c), c.encode()) for c in command)
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(timeout)
        connection.connect(str(socket_path))
        connection.sendall(payload)
        return connection.recv(65536)


def _answers(process: subprocess.Popen[bytes], socket_path: Path, timeout: float = 15.0) -> bool:
    """Whether the engine came up serving (True) or exited (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if _ask(socket_path, "PING").startswith(b"+PONG"):
                return True
        time.sleep(0.005)
    raise TimeoutError(f"the engine neither served nor exited within {timeout:.0f} s")


def probe_writes(binary: Path) -> tuple[RdbHeader, bytes]:
    """Starts the build, saves one key, and returns (the header it wrote, the file)."""
    with tempfile.TemporaryDirectory(prefix="cachefleet-rdb-") as name:
        directory = Path(name)
        with _engine(binary, directory) as process:
            if not _answers(process, directory / "engine.sock"):
                raise RdbError(f"{binary} did not start: {(directory / 'engine.log').read_text(errors='replace')[-300:]}")
            _ask(directory / "engine.sock", "SET", "probe", "value")
            reply = _ask(directory / "engine.sock", "SAVE")
            if not reply.startswith(b"+OK"):
                raise RdbError(f"{binary} did not save: {reply!r}")
        data = (directory / "dump.rdb").read_bytes()
    return parse_header(data), data


def probe_loads(binary: Path, rdb: bytes, *, relaxed: bool = False) -> bool:
    """Whether the build starts and serves the keys of ``rdb`` (a whole file's bytes)."""
    with tempfile.TemporaryDirectory(prefix="cachefleet-rdb-") as name:
        directory = Path(name)
        (directory / "dump.rdb").write_bytes(rdb)
        args = ("--rdb-version-check", "relaxed" if relaxed else "strict") if relaxed else ()
        with _engine(binary, directory, *args) as process:
            if not _answers(process, directory / "engine.sock"):
                return False
            return _ask(directory / "engine.sock", "DBSIZE") != b":0\r\n"


def copy_verified(source: Path, destination: Path, *, chunk_size: int = CHUNK_SIZE) -> RdbFacts:
    """Copies an RDB and checks it in the same pass; the copy appears (0600) only if it is whole."""
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(descriptor, "wb") as out:
            facts = verify(source, chunk_size=chunk_size, observe=out.write)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return facts


def link_verified(source: Path, destination: Path) -> RdbFacts:
    """``destination`` as a hard link to ``source`` once the file verifies (no data written), 0600.

    For a plain snapshot on the node's file system: the engine never writes an RDB in place
    (it writes a temporary file and renames it over), so the link keeps this save as it is.
    Falls back to ``copy_verified`` across file systems.
    """
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    facts = verify(source)
    temporary = destination.with_name(f".{destination.name}.link")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.link(source, temporary)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        return copy_verified(source, destination)
    os.chmod(temporary, 0o600)
    os.replace(temporary, destination)
    return facts
