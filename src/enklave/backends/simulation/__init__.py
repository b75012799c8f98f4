"""The simulated DCAP platform: real-format quotes and collateral under a SIMULATED root.

Quotes, PCK certificates, TCB Info, QE Identity and CRLs are byte-for-byte in Intel's
formats and signed exactly as Intel signs them, but under a simulated root CA ("enklave
SIMULATED SGX Root CA", organisation "enklave simulation (NOT Intel)"). They verify only
against that root; any verifier pinned to Intel's SGX Root CA rejects them.

Example::

    import time

    from enklave.backends.simulation import SimPlatform
    from enklave.verify import DcapVerifier

    platform = SimPlatform.init(tcb="SWHardeningNeeded")   # or SimPlatform.load()
    quote = platform.quote(bytes(64), mrenclave=bytes(32), mrsigner=bytes(32),
                           isv_prod_id=1, isv_svn=1, debug=False)
    verifier = DcapVerifier(platform.root_certificate_pem, simulated=True)
    now = int(time.time())
    result = verifier.verify(quote, platform.collateral(now=now), now=now)
    assert result.status == "SWHardeningNeeded"
"""

from __future__ import annotations

from ._pcs import PcsResponse, PcsResponses
from ._platform import TCB_SITUATIONS, SimPlatform

__all__ = ["TCB_SITUATIONS", "PcsResponse", "PcsResponses", "SimPlatform"]
