"""Encryption at rest for snapshot files: AES-256-GCM in chunked frames, and the keys for it.

A file is a header and a run of frames::

    header  b"CFSNAP1\\n" | chunk size (u32) | salt (32 bytes) | key id length (u16) | key id
    frame   final flag (u8: 0 or 1) | ciphertext length (u32) | ciphertext + 16-byte tag

Every file gets its own key, derived with HKDF-SHA256 from the named master key and the
file's random salt, so the nonce of a chunk can simply be its index (12 bytes, big-endian):
it is never reused under one key. Each frame's associated data is the SHA-256 of the header,
the chunk's index and its final flag: an edited header, a reordered, dropped or repeated
frame, a file cut after any frame, or bytes after the final one all fail to decrypt.
Decryption writes nothing under the destination's name until the last frame has
authenticated, so a plain RDB is never left behind half-written.

``KeyRing`` owns the master keys: one file per key id (as given by KmsKeyId), under a
directory of the data dir. Key files are 0600, the directory 0700; a key readable by others
is refused rather than used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CFSNAP1\n"
CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
KEY_SIZE = 32
SALT_SIZE = 32
TAG_SIZE = 16
_FRAME = struct.Struct(">BI")
_HKDF_INFO = b"cachefleet snapshot file v1"


class EncryptionError(Exception):
    """A file could not be encrypted or decrypted; the message says why."""


class DecryptionFailed(EncryptionError):
    """The file is not ours, was changed, cut short or reordered, or needs another key."""


class KeyNotFound(EncryptionError):
    """No key of that id in the key ring."""


@dataclass(frozen=True)
class EncryptedFile:
    """What encrypt_file/decrypt_file did: the key used and the sizes on both sides."""

    key_id: str
    plaintext_size: int
    ciphertext_size: int
    chunks: int


# ---------------------------------------------------------------------------- keys


class KeyRing:
    """The master keys of one data directory, by key id (a KmsKeyId, or ``DEFAULT_KEY_ID``)."""

    DEFAULT_KEY_ID = "default"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)

    def path(self, key_id: str) -> Path:
        if not key_id or len(key_id) > 2048:
            raise EncryptionError(f"invalid key id {key_id!r}: 1 to 2048 characters")
        # Quoted, so any KmsKeyId (an ARN, an alias/..., a UUID) is one plain file name.
        name = urllib.parse.quote(key_id, safe="-_.")
        if len(name) > 240:
            name = "sha256-" + hashlib.sha256(key_id.encode()).hexdigest()
        return self.directory / f"{name}.key"

    def create(self, key_id: str = DEFAULT_KEY_ID) -> bytes:
        """A new random key under ``key_id``; EncryptionError if that id already has one."""
        path = self.path(key_id)
        key = secrets.token_bytes(KEY_SIZE)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".new-key-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
            # link() refuses an existing name: two creators of one id cannot overwrite each other.
            os.link(temporary, path)
        except FileExistsError as error:
            raise EncryptionError(f"key {key_id!r} already exists") from error
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return key

    def get(self, key_id: str = DEFAULT_KEY_ID) -> bytes:
        path = self.path(key_id)
        try:
            with open(path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                key = handle.read()
        except FileNotFoundError as error:
            raise KeyNotFound(f"no key {key_id!r} in {self.directory}") from error
        if mode & 0o077:
            raise EncryptionError(f"key file {path} is readable by others (mode {mode & 0o777:04o}); chmod 600 it")
        if len(key) != KEY_SIZE:
            raise EncryptionError(f"key file {path} holds {len(key)} bytes, not {KEY_SIZE}")
        return key

    def ensure(self, key_id: str = DEFAULT_KEY_ID) -> bytes:
        """The key of ``key_id``, created on first use."""
        try:
            return self.get(key_id)
        except KeyNotFound:
            try:
                return self.create(key_id)
            except EncryptionError:
                return self.get(key_id)  # created meanwhile by someone else

    def exists(self, key_id: str) -> bool:
        return self.path(key_id).exists()

    def ids(self) -> list[str]:
        return sorted(
            urllib.parse.unquote(p.name[: -len(".key")])
            for p in self.directory.glob("*.key")
            if not p.name.startswith("sha256-")
        )

    def delete(self, key_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key_id).unlink()


# ---------------------------------------------------------------------------- streams


def _header(chunk_size: int, salt: bytes, key_id: str) -> bytes:
    encoded = key_id.encode()
    return MAGIC + struct.pack(">I", chunk_size) + salt + struct.pack(">H", len(encoded)) + encoded


def _file_cipher(master: bytes, salt: bytes) -> AESGCM:
    if len(master) != KEY_SIZE:
        raise EncryptionError(f"a master key has {KEY_SIZE} bytes, not {len(master)}")
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_HKDF_INFO).derive(master)
    return AESGCM(derived)


def _aad(digest: bytes, index: int, final: bool) -> bytes:
    return digest + struct.pack(">QB", index, 1 if final else 0)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _read_full(reader: BinaryIO, view: memoryview) -> int:
    """Fills ``view`` unless the stream ends first; the byte count."""
    total = 0
    while total < len(view):
        count = reader.readinto(view[total:])  # type: ignore[attr-defined]
        if not count:
            break
        total += count
    return total


class EncryptingWriter:
    """Encrypts what is written to it, chunk by chunk, into ``writer``; ``close`` writes the final chunk.

    For data pushed as it is produced (a BGSAVE followed as it is written): a full chunk is
    held back until more data comes, because only then is it known not to be the final one.
    """

    def __init__(self, writer: BinaryIO, *, key: bytes, key_id: str, chunk_size: int = CHUNK_SIZE) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise EncryptionError(f"chunk size {chunk_size} outside 1-{MAX_CHUNK_SIZE}")
        salt = secrets.token_bytes(SALT_SIZE)
        header = _header(chunk_size, salt, key_id)
        self._digest = hashlib.sha256(header).digest()
        self._cipher = _file_cipher(key, salt)
        self._writer = writer
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._key_id = key_id
        self._index = self._plaintext = 0
        self._written = len(header)
        writer.write(header)

    def _seal(self, chunk: bytes | bytearray | memoryview, final: bool) -> None:
        sealed = self._cipher.encrypt(_nonce(self._index), chunk, _aad(self._digest, self._index, final))
        self._writer.write(_FRAME.pack(1 if final else 0, len(sealed)))
        self._writer.write(sealed)
        self._written += _FRAME.size + len(sealed)
        self._plaintext += len(chunk)
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        size = self._chunk_size
        # Keep at least one byte back: the last full chunk may turn out to be the final one.
        if len(self._pending) > size:
            full = (len(self._pending) - 1) // size
            view = memoryview(self._pending)
            for index in range(full):
                self._seal(view[index * size : (index + 1) * size], final=False)
            view.release()
            del self._pending[: full * size]
        return len(data)

    def close(self) -> EncryptedFile:
        self._seal(self._pending, final=True)
        self._pending = bytearray()
        return EncryptedFile(key_id=self._key_id, plaintext_size=self._plaintext, ciphertext_size=self._written, chunks=self._index)


def encrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    key: bytes,
    key_id: str,
    chunk_size: int = CHUNK_SIZE,
    observe: Callable[[memoryview], object] | None = None,
) -> EncryptedFile:
    """Encrypts ``reader`` to its end into ``writer``; ``observe`` sees the plaintext, in order."""
    encrypting = EncryptingWriter(writer, key=key, key_id=key_id, chunk_size=chunk_size)
    buffer = memoryview(bytearray(chunk_size))
    while length := _read_full(reader, buffer):
        if observe is not None:
            observe(buffer[:length])
        encrypting.write(buffer[:length])
    return encrypting.close()


def read_key_id(reader: BinaryIO) -> tuple[str, int, bytes]:
    """(key id, chunk size, salt) from an encrypted file's header; DecryptionFailed if it has none."""
    fixed = reader.read(len(MAGIC) + 4 + SALT_SIZE + 2)
    if len(fixed) < len(MAGIC) + 4 + SALT_SIZE + 2 or not fixed.startswith(MAGIC):
        raise DecryptionFailed("not a Cachefleet encrypted file (no CFSNAP1 header)")
    (chunk_size,) = struct.unpack(">I", fixed[len(MAGIC) : len(MAGIC) + 4])
    salt = fixed[len(MAGIC) + 4 : len(MAGIC) + 4 + SALT_SIZE]
    (id_length,) = struct.unpack(">H", fixed[-2:])
    raw_id = reader.read(id_length)
    if len(raw_id) != id_length or not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionFailed("truncated or damaged encrypted file header")
    return raw_id.decode(errors="replace"), chunk_size, salt


def decrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    keys: KeyRing | Callable[[str], bytes],
    observe: Callable[[bytes], object] | None = None,
) -> EncryptedFile:
    """Decrypts and authenticates every frame into ``writer``; DecryptionFailed on any mismatch.

    Plaintext reaches ``writer`` frame by frame, before the end is known to be whole: write
    to a temporary file and keep it only on success (``decrypt_file`` does).
    """
    key_id, chunk_size, salt = read_key_id(reader)
    header = _header(chunk_size, salt, key_id)
    digest = hashlib.sha256(header).digest()
    lookup = keys.get if isinstance(keys, KeyRing) else keys
    cipher = _file_cipher(lookup(key_id), salt)
    read = len(header)
    index = plaintext = 0
    while True:
        frame = reader.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            raise DecryptionFailed(f"truncated encrypted file: it ends after chunk {index} without its final chunk")
        flag, length = _FRAME.unpack(frame)
        if flag not in (0, 1) or not TAG_SIZE <= length <= chunk_size + TAG_SIZE:
            raise DecryptionFailed(f"damaged encrypted file: chunk {index} has an impossible frame header")
        sealed = reader.read(length)
        if len(sealed) < length:
            raise DecryptionFailed(f"truncated encrypted file: chunk {index} is cut short")
        try:
            chunk = cipher.decrypt(_nonce(index), sealed, _aad(digest, index, flag == 1))
        except InvalidTag as error:
            raise DecryptionFailed(
                f"chunk {index} does not authenticate: the file was changed or reordered, or key {key_id!r} is not the one it was written with"
            ) from error
        if observe is not None and chunk:
            observe(chunk)
        writer.write(chunk)
        read += _FRAME.size + length
        plaintext += len(chunk)
        index += 1
        if flag == 1:
            if reader.read(1):
                raise DecryptionFailed("damaged encrypted file: data follows its final chunk")
            return EncryptedFile(key_id=key_id, plaintext_size=plaintext, ciphertext_size=read, chunks=index)


# ---------------------------------------------------------------------------- files


@contextlib.contextmanager
def _atomic_output(destination: Path) -> Iterator[BinaryIO]:
    """A 0600 temporary file beside ``destination`` that takes its name only if the block succeeds."""
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as handle:
            yield cast(BinaryIO, handle)
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def encrypt_file(
    source: Path,
    destination: Path,
    keyring: KeyRing,
    key_id: str = KeyRing.DEFAULT_KEY_ID,
    *,
    chunk_size: int = CHUNK_SIZE,
    observe: Callable[[memoryview], object] | None = None,
) -> EncryptedFile:
    """Encrypts ``source`` into ``destination`` (0600, written atomically) under ``key_id``."""
    key = keyring.get(key_id)
    with open(source, "rb", buffering=0) as reader, _atomic_output(destination) as writer:
        return encrypt_stream(reader, writer, key=key, key_id=key_id, chunk_size=chunk_size, observe=observe)


def decrypt_file(
    source: Path, destination: Path, keyring: KeyRing, *, observe: Callable[[bytes], object] | None = None
) -> EncryptedFile:
    """Decrypts ``source`` into ``destination`` (0600); nothing is left there if it fails.

    ``observe`` sees the plaintext in order; an exception it raises (``rdb.StreamVerifier``
    finding the RDB corrupt, say) fails the decryption like a bad tag does.
    """
    with open(source, "rb") as reader, _atomic_output(destination) as writer:
        return decrypt_stream(reader, writer, keys=keyring, observe=observe)


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def file_key_id(path: Path) -> str:
    with open(path, "rb") as handle:
        return read_key_id(handle)[0]
