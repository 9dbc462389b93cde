"""A TCP proxy that delays one direction: set between Asterisk and the CTI's FastAGI port, it
holds every byte the server sends (its AGI commands) for `delay_s` before Asterisk gets it, in
order, the close included; what Asterisk sends passes at once. `delay_s` may change while calls
run: a chunk takes the delay in force when the server sent it. Runs its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DelayProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self.delay_s = 0.0
        self.connections = 0
        self.delayed_chunks = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> DelayProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.listen_port,
                                                  backlog=1024)

    async def _client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
                      ) -> None:
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            c_writer.close()
            return
        up = asyncio.ensure_future(self._pipe(c_reader, s_writer, delayed=False))
        down = asyncio.ensure_future(self._pipe(s_reader, c_writer, delayed=True))
        try:
            await asyncio.gather(up, down)
        except (ConnectionError, asyncio.CancelledError):
            up.cancel()
            down.cancel()
        finally:
            for w in (c_writer, s_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    delayed: bool) -> None:
        """Copy until EOF; a delayed direction queues (due time, bytes) and a sender releases
        each at its time, so a later, shorter delay never overtakes an earlier chunk."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # EOF: half-close after everything before it
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        out = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(65536)
                delay = self.delay_s if delayed else 0.0
                if delay and data:
                    self.delayed_chunks += 1
                queue.put_nowait((time.monotonic() + delay, data))
                if not data:
                    break
            await out
        finally:
            out.cancel()


@contextmanager
def delay_proxy(listen_port: int, target_port: int) -> Iterator[DelayProxy]:
    proxy = DelayProxy(listen_port, target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
