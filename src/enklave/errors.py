"""One exception tree for everything enklave raises.

Every error derives from :class:`EnklaveError` and carries a short, stable ``code``
(safe to show to a remote peer) and a message that says what failed and what to do
next. Foreign exceptions are translated where they enter enklave and chained with
``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AtlsError",
    "AttestationError",
    "BoundsError",
    "BundleError",
    "CertificateError",
    "CollateralError",
    "CollateralExpired",
    "ConfigError",
    "DeployError",
    "EnclaveCallError",
    "EnclaveClosed",
    "EnclaveLoadError",
    "EnclaveLost",
    "EncodingError",
    "EnklaveError",
    "FrameError",
    "InterfaceError",
    "NotInEnclaveError",
    "OcallError",
    "PlatformError",
    "PolicyError",
    "ProtocolError",
    "QuoteFormatError",
    "SealError",
    "SigningError",
    "VerificationError",
]


class EnklaveError(Exception):
    """Base of every error enklave raises.

    Attributes:
        code: a short machine-readable reason (e.g. ``"bounds"``), safe to send to a
            remote peer; the message may hold local detail.
    """

    code: str = "enklave"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(EnklaveError):
    """``enklave.toml`` is missing, malformed, or has an unknown key or out-of-range value."""

    code = "config"


class EncodingError(EnklaveError):
    """Bytes are not valid deterministic CBOR within enklave's limits (size, depth, types)."""

    code = "encoding"


class FrameError(EncodingError):
    """A length-prefixed frame is malformed or larger than the allowed maximum."""

    code = "frame"


class ProtocolError(EnklaveError):
    """A well-formed frame that breaks the host/enclave message protocol."""

    code = "protocol"


class InterfaceError(EnklaveError):
    """An ECALL/OCALL declaration is invalid (missing bound, unsupported type, bad name)."""

    code = "interface"


class BoundsError(EnklaveError):
    """A value does not match its declared type or bounds (argument or OCALL result)."""

    code = "bounds"


class SigningError(EnklaveError):
    """A signing key or SIGSTRUCT is malformed, or a signature does not verify."""

    code = "signing"


class BundleError(EnklaveError):
    """A bundle file is malformed or cannot be read."""

    code = "bundle"


class EnclaveLoadError(EnklaveError):
    """The enclave refused to load: signature, measurement or interface check failed.

    No application code ran when this is raised.
    """

    code = "load"


class EnclaveCallError(EnklaveError):
    """An exception was raised inside the enclave while serving an ECALL.

    Attributes:
        type_name: the exception's class name inside the enclave.
        remote_message: the exception's message.
        remote_traceback: the enclave-side traceback, only for debug enclaves.
    """

    code = "ecall"

    def __init__(
        self,
        type_name: str,
        remote_message: str,
        *,
        remote_traceback: str | None = None,
        code: str | None = None,
    ) -> None:
        text = f"enclave raised {type_name}: {remote_message}"
        if remote_traceback:
            text += "\n--- enclave traceback (debug enclave) ---\n" + remote_traceback
        super().__init__(text, code=code)
        self.type_name = type_name
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class OcallError(EnklaveError):
    """Inside the enclave: an OCALL failed on the host or returned a bad result."""

    code = "ocall"


class EnclaveLost(EnklaveError):
    """The enclave process died or its channel broke; call ``restart()`` to relaunch it."""

    code = "lost"


class EnclaveClosed(EnklaveError):
    """The enclave handle was closed; open a new one."""

    code = "closed"


class SealError(EnklaveError):
    """A sealed blob cannot be unsealed (tampered, wrong aad, other enclave, newer SVN)."""

    code = "seal"


class PlatformError(EnklaveError):
    """The (simulated) platform is unusable: missing or unreadable platform secret."""

    code = "platform"


class NotInEnclaveError(EnklaveError):
    """A trusted-side API was called outside a running enclave."""

    code = "not_in_enclave"


class AttestationError(EnklaveError):
    """Base for remote-attestation failures (quotes, collateral, verification, policy)."""

    code = "attestation"


class QuoteFormatError(AttestationError):
    """Bytes are not a well-formed SGX/TDX DCAP quote (or a part of one, or a PCK extension)."""

    code = "quote_format"


class CollateralError(AttestationError):
    """Collateral (TCB Info, QE Identity, CRLs, issuer chains) is malformed, of the wrong kind,
    or cannot be fetched; fetch fresh collateral for this quote's FMSPC and TEE type."""

    code = "collateral"


class CollateralExpired(CollateralError):
    """A certificate, CRL, TCB Info or QE Identity is expired or not yet valid at ``now``;
    fetch fresh collateral or check the clock."""

    code = "collateral_expired"


class VerificationError(AttestationError):
    """A DCAP check failed; ``code`` names the check (e.g. ``invalid_quote_signature``)."""

    code = "verification"


class PolicyError(AttestationError):
    """The evidence verified but the policy refused it; ``check`` names the policy check."""

    code = "policy"

    def __init__(self, message: str, *, check: str = "policy", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.check = check


class CertificateError(AttestationError):
    """Bytes are not a usable attested-TLS certificate: malformed DER/PEM, an unsupported
    algorithm, a bad signature, or no evidence extension. ``code`` says which."""

    code = "certificate"


class AtlsError(EnklaveError):
    """An attested-TLS connection or server failed for a reason other than verification
    (network, TLS handshake, closed peer); ``code`` says which."""

    code = "atls"


class DeployError(EnklaveError):
    """Building an image, a base image or manifests, or running them, failed (podman,
    mmdebstrap, Gramine tools); the message names the command and the fix."""

    code = "deploy"
