"""Host <-> enclave channel: framed deterministic CBOR, the message protocol, multiplexing.

Internal to enklave; applications use :mod:`enklave.host` and :mod:`enklave.enclave`.
"""

from __future__ import annotations

from ._endpoint import ChannelClosed, Endpoint
from ._mux import Message, Mux

__all__ = ["ChannelClosed", "Endpoint", "Message", "Mux"]
