"""Dispatcher: a lane (one account) never has more messages in flight than connections."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from proit_notify.channels import ChannelName, Outgoing, SendResult
from proit_notify.sending import Dispatcher


class Gate:
    """A channel whose sends wait until the test opens the gate of their account."""

    name: ChannelName = "email"

    def __init__(self) -> None:
        self.gates = {"a": threading.Event(), "b": threading.Event()}
        self.started: list[str] = []
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> SendResult:
        with self._lock:
            self.started.append(message.key)
        assert message.account is not None
        self.gates[message.account].wait(5)
        return SendResult("sent", message.key)

    def prepare(self, account: str | None) -> None: ...
    def check(self) -> list[str]:
        return []

    def encode(self, message: Outgoing) -> Outgoing:
        return message

    def refuse(self, message: Outgoing) -> str | None:
        return None

    def close(self) -> None: ...


def msg(key: str, account: str) -> Outgoing:
    return Outgoing(key, "email", "x@y.ch", None, "s", "t", account=account)


def result(future: Future[SendResult]) -> str:
    return future.result().detail


def test_a_busy_account_does_not_hold_up_another_and_never_queues() -> None:
    gate = Gate()
    sender: Dispatcher[str] = Dispatcher({("email", "a"): 1, ("email", "b"): 2})
    try:
        sender.submit(("email", "a"), gate, msg("a1", "a"), result)
        # b has two connections: two messages at once while a's only one is busy
        assert list(sender.wait_for_room(("email", "b"))) == []
        sender.submit(("email", "b"), gate, msg("b1", "b"), result)
        assert list(sender.wait_for_room(("email", "b"))) == []
        sender.submit(("email", "b"), gate, msg("b2", "b"), result)
        assert sender.in_flight(("email", "a")) == 1
        assert sender.in_flight(("email", "b")) == 2
        # claiming a third message of b without waiting for room is a bug, not a queue
        with pytest.raises(AssertionError, match="without a free connection"):
            sender.submit(("email", "b"), gate, msg("b3", "b"), result)
        # waiting for room on a: b's outcomes that finish meanwhile are taken too
        gate.gates["b"].set()
        b_done = [f for lane, f, _ in sender._flights if lane == ("email", "b")]
        for future in b_done:
            future.result(5)
        gate.gates["a"].set()
        taken = list(sender.wait_for_room(("email", "a")))
        assert sorted(taken + list(sender.drain())) == ["a1", "b1", "b2"]
        assert "a1" in taken
    finally:
        for g in gate.gates.values():
            g.set()
        sender.close()
    assert sorted(gate.started) == ["a1", "b1", "b2"]
