"""Hand claimed messages to sending threads, one lane per account, and take outcomes back.

A lane is one account of one channel (``("email", "webshop")``, ``("sms", "aspsms")``) with
as many threads as the account has connections. While a thread waits for the SMTP server
or SMS gateway, the runner's thread reads the ERP, renders and claims the next message.
Only the runner's thread touches the ERP and the ledger: a thread only calls
``Channel.send``. The runner claims a message only once its lane has a free thread
(:meth:`Dispatcher.wait_for_room`), so every ``sending`` row is a message a thread is
talking to the server about: a crash leaves at most ``connections`` of them per account.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

from .channels import Channel, Outgoing, SendResult

T = TypeVar("T")
Done = Callable[[Future[SendResult]], T]
Lane = tuple[str, str]  # (channel, account)


class Dispatcher(Generic[T]):
    """One thread pool per lane; ``done`` callbacks run in the caller's thread."""

    def __init__(self, capacity: Mapping[Lane, int]) -> None:
        self._capacity = dict(capacity)
        self._pools: dict[Lane, ThreadPoolExecutor] = {}
        self._flights: deque[tuple[Lane, Future[SendResult], Done[T]]] = deque()

    def capacity(self, lane: Lane) -> int:
        return max(1, self._capacity.get(lane, 1))

    def in_flight(self, lane: Lane) -> int:
        return sum(1 for flying, _, _ in self._flights if flying == lane)

    def submit(self, lane: Lane, channel: Channel, message: Outgoing, done: Done[T]) -> None:
        """Start sending ``message``; ``done`` turns its outcome into a result later.

        Call only after :meth:`wait_for_room` for the same lane: a lane never queues.
        """
        assert self.in_flight(lane) < self.capacity(lane), "claimed without a free connection"
        pool = self._pools.get(lane)
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=self.capacity(lane), thread_name_prefix=f"send-{lane[0]}-{lane[1]}"
            )
            self._pools[lane] = pool
        self._flights.append((lane, pool.submit(channel.send, message), done))

    def has_room(self, lane: Lane) -> bool:
        return self.in_flight(lane) < self.capacity(lane)

    def wait_any(self) -> Iterator[T]:
        """Wait until some message in flight finished; yields the finished outcomes."""
        if not self._flights:
            return
        wait([future for _, future, _ in self._flights], return_when=FIRST_COMPLETED)
        finished = [flight for flight in self._flights if flight[1].done()]
        for flight in finished:
            self._flights.remove(flight)
        for _, future, finish in finished:
            yield finish(future)

    def ready(self) -> Iterator[T]:
        """The outcomes finished so far, in the order sent (never waits)."""
        while self._flights and self._flights[0][1].done():
            _, future, finish = self._flights.popleft()
            yield finish(future)

    def wait_for_room(self, lane: Lane) -> Iterator[T]:
        """Wait until ``lane`` has a free thread; yields every outcome that finished
        meanwhile, of any lane (so a message accepted by a fast account is recorded while a
        slow account is waited for, and a crash then leaves it ``sent``, not ``unknown``)."""
        while not self.has_room(lane):
            yield from self.wait_any()

    def drain(self, *, quiet: bool = False) -> Iterator[T]:
        """Wait for every message in flight. ``quiet``: while another error is leaving
        the run, an error of a callback is dropped (the callback recorded what it could)."""
        while self._flights:
            _, future, finish = self._flights.popleft()
            try:
                yield finish(future)
            except Exception:
                if not quiet:
                    raise

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()
