"""asyncio front end: the same enclave handle, with awaitable calls."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from ..models.identity import Identity
from ._enclave import Enclave

__all__ = ["AsyncEnclave"]


class _AsyncCallProxy:
    def __init__(self, owner: AsyncEnclave) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        sync = getattr(self._owner.enclave.call, name)

        async def ecall(*args: Any, **kwargs: Any) -> Any:
            return await self._owner.run(functools.partial(sync, *args, **kwargs))

        ecall.__name__ = name
        return ecall


class AsyncEnclave:
    """``await enc.call.greet("Ada")``: ECALLs run on a private thread pool sized to
    ``max_threads``, so the event loop never blocks; OCALLs run on those threads too.

    Example::

        async with await AsyncEnclave.open("hello.bundle", ocalls=...) as enc:
            print(await enc.call.greet("Ada"))
    """

    def __init__(self, enclave: Enclave) -> None:
        self.enclave = enclave
        self._pool = ThreadPoolExecutor(
            max_workers=enclave.config.max_threads, thread_name_prefix="enklave-ecall"
        )
        self.call = _AsyncCallProxy(self)

    @classmethod
    async def open(cls, bundle: Any, **kwargs: Any) -> AsyncEnclave:
        """As :meth:`Enclave.open`, without blocking the event loop."""
        enclave = await asyncio.to_thread(functools.partial(Enclave.open, bundle, **kwargs))
        return cls(enclave)

    async def run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    @property
    def identity(self) -> Identity:
        return self.enclave.identity

    async def restart(self) -> None:
        await asyncio.to_thread(self.enclave.restart)

    async def close(self) -> None:
        await asyncio.to_thread(self.enclave.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncEnclave:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
