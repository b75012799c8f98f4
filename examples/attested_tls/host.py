"""attested_tls: the untrusted half and a relying party.

The host only starts the enclave's server; it never holds the TLS key and sees only
ciphertext. The relying party (``client_verifier``) trusts nothing the host says: it
checks the certificate's evidence against explicit trust anchors, collateral and a policy.
"""

from __future__ import annotations

from pathlib import Path

from enklave.atls import PeerVerifier
from enklave.backends.simulation import SimPlatform
from enklave.errors import PlatformError
from enklave.host import Enclave
from enklave.verify import Policy, TrustAnchor, Verifier, default_policy


def open_attested_tls(bundle: Path, sim_home: Path, **kwargs: object) -> Enclave:
    """Start the enclave (no OCALLs: the server runs entirely inside)."""
    return Enclave.open(bundle, sim_home=sim_home, **kwargs)  # type: ignore[arg-type]


def _platform(sim_home: Path) -> SimPlatform:
    """The simulated platform the enclaves quote on (made on first use, as they do)."""
    try:
        return SimPlatform.load(sim_home)
    except PlatformError:
        return SimPlatform.init(sim_home)


def collateral_json(sim_home: Path) -> bytes:
    """What a host would fetch from its PCCS for the enclaves' quotes (here: simulated)."""
    return _platform(sim_home).collateral().to_json().encode()


def client_verifier(sim_home: Path, *, mrenclave: bytes, policy: Policy | None = None
                    ) -> PeerVerifier:
    """A relying party's verifier for this app in simulation.

    Production would use ``TrustAnchor.intel()``, a PCCS client for collateral and the
    default policy without ``allow_simulated``.
    """
    platform = _platform(sim_home)
    verifier = Verifier(anchors=TrustAnchor.simulation(sim_home),
                        collateral=platform.collateral())
    chosen = policy or default_policy(mrenclave=[mrenclave], allow_simulated=True)
    return PeerVerifier(verifier=verifier, policy=chosen)
