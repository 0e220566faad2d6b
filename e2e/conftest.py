"""Fixtures that run the real pieces: nats-server, the relay binary, a NATS consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _require(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set; run `make test` (it starts the services)", pytrace=False)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsServer:
    url: str
    port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = _require("CONVEYOR_TEST_NATS_SERVER")
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"nats-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    port = free_port()
    srv = NatsServer(url=f"nats://127.0.0.1:{port}", port=port, store=tmp_path / "js")
    srv.start()
    yield srv
    srv.stop()


def database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}?sslmode=disable"


class Relay:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        binary = _require("CONVEYOR_BIN")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "run", "--config", str(self.config)], stdout=out, stderr=out
            )
        if wait:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if "relay started" in self.log.read_text():
                    return
                if self.proc.poll() is not None:
                    pytest.fail(f"relay exited early:\n{self.log.read_text()}")
                time.sleep(0.05)
            pytest.fail(f"relay did not start:\n{self.log.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


@pytest.fixture
def relay_factory(tmp_path: Path, nats_server: NatsServer) -> Iterator[Any]:
    relays: list[Relay] = []

    def make(
        extra: str = "", nats_url: str | None = None, name: str = "r1", poll: str = "2s"
    ) -> Relay:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(
            f"""
database:
  url: {database_url()}
relay:
  id: {name}
  poll_interval: {poll}
  lease: 5s
sinks:
  main:
    type: nats
    url: {nats_url or nats_server.url}
    stream: CONVEYOR
    subjects: ["events.>"]
    create_stream: true
routes:
  - name: all
    sink: main
    destination: "events.{{event_type}}"
log:
  level: debug
  format: json
{extra}
"""
        )
        r = Relay(cfg, tmp_path / f"{name}.log")
        relays.append(r)
        return r

    yield make
    for r in relays:
        if r.proc is not None:
            r.stop()


@dataclass
class Received:
    subject: str
    headers: dict[str, str]
    data: bytes


def consume(url: str, want: int, timeout: float = 10.0, stream: str = "CONVEYOR") -> list[Received]:
    """Read the stream from the start with a real NATS client until `want` messages or timeout."""

    async def run() -> list[Received]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe("events.>", stream=stream, ordered_consumer=True)
            out: list[Received] = []
            deadline = time.monotonic() + timeout
            while len(out) < want and time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=max(0.05, deadline - time.monotonic()))
                except nats.errors.TimeoutError:
                    break
                out.append(Received(msg.subject, dict(msg.headers or {}), msg.data))
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    return asyncio.run(run())
