"""The local provider's process bookkeeping, against real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest

from cachefleet.providers.local import _alive

# The main thread leaves (a raw exit of that thread only) while another thread keeps the
# process, and its listening socket, for a while: a killed multi-threaded engine looks like
# this for a moment, a zombie main thread with its sockets still open.
LINGERING = textwrap.dedent(
    """
    import ctypes, socket, sys, threading, time
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    threading.Thread(target=time.sleep, args=(1.5,)).start()
    ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: this thread only
    """
)


def _state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def test_a_zombie_main_thread_with_live_threads_still_holds_its_sockets():
    child = subprocess.Popen([sys.executable, "-c", LINGERING], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        deadline = time.monotonic() + 5
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _state(child.pid) == "Z"
        # Its socket is still in use, and the provider must not call it gone yet.
        with socket.socket() as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
        assert _alive(child.pid)
        deadline = time.monotonic() + 5
        while _alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not _alive(child.pid)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # free once it is really gone
    finally:
        child.kill()
        child.wait()
