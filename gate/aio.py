"""Running the async I/O layer from the synchronous engine and renderer interfaces."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``factory()`` to completion from synchronous code.

    ``asyncio.run`` refuses to start inside a thread whose loop is running (a
    caller that is itself async, such as a test or an embedding service); then
    the coroutine gets a loop of its own in a worker thread. The coroutine is
    created where it runs, so it is never bound to the wrong loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="gate-aio"
    ) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
