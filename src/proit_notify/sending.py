"""Hand claimed messages to channel threads, and take their outcomes back in order.

While a worker thread waits for the SMTP server or SMS gateway, the runner's thread reads
the ERP, renders and claims the next message; with ``connections`` > 1 several workers
talk to the server at once. Only the runner's thread touches the ERP and the ledger: a
worker only calls ``Channel.send``. A message is re-checked and claimed only when a worker
is free to send it at once, so at most ``workers`` messages are in flight: a crash leaves
that few ``sending`` rows (they become ``unknown``, never resent).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from .channels import Channel, Outgoing, SendResult

T = TypeVar("T")
Done = Callable[[Future[SendResult]], T]


class Dispatcher(Generic[T]):
    """One thread pool per channel; ``done`` callbacks run in the caller's thread."""

    def __init__(self, workers: Mapping[str, int]) -> None:
        self._workers = dict(workers)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._flights: deque[tuple[str, Future[SendResult], Done[T]]] = deque()

    def submit(self, channel: Channel, message: Outgoing, done: Done[T]) -> None:
        """Start sending ``message``; ``done`` turns its outcome into a result later."""
        pool = self._pools.get(channel.name)
        if pool is None:
            size = max(1, self._workers.get(channel.name, 1))
            pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"send-{channel.name}")
            self._pools[channel.name] = pool
        self._flights.append((channel.name, pool.submit(channel.send, message), done))

    def ready(self) -> Iterator[T]:
        """The outcomes finished so far, in the order sent (never waits)."""
        while self._flights and self._flights[0][1].done():
            _, future, finish = self._flights.popleft()
            yield finish(future)

    def wait_for_room(self, channel: str) -> Iterator[T]:
        """Wait until a thread of ``channel`` is free; yields the outcomes taken meanwhile."""
        workers = max(1, self._workers.get(channel, 1))
        while sum(1 for name, _, _ in self._flights if name == channel) >= workers:
            _, future, finish = self._flights.popleft()
            yield finish(future)

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
