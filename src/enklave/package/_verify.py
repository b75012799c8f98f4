"""The enclave's load-time checks on its own bundle, before any app code runs."""

from __future__ import annotations

import hmac

from ..errors import EnclaveLoadError, SigningError
from ..models.identity import Identity
from ._bundle import Bundle
from ._measure import FileEntry, file_entry, mrenclave_of

__all__ = ["verify_bundle"]


def verify_bundle(bundle: Bundle, runtime: list[FileEntry], *, simulated: bool) -> Identity:
    """Check a parsed bundle as an SGX loader would, and return the enclave's identity.

    Checks, in order: the SIGSTRUCT's RSA signature (and Q1/Q2, exponent); that the
    SIGSTRUCT's ISVPRODID, ISVSVN and DEBUG agree with the measured config; that every
    app file matches its manifest entry; that MRENCLAVE recomputed from the config, the
    interface, the manifest and *this process's own* runtime files equals
    SIGSTRUCT.ENCLAVEHASH.

    Raises:
        EnclaveLoadError: naming the file or field that failed.
    """
    sig = bundle.sigstruct
    try:
        sig.verify()
    except SigningError as exc:
        raise EnclaveLoadError(
            f"SIGSTRUCT rejected: {exc}. The bundle was tampered with or signed wrongly; "
            "rebuild it with `enklave build`"
        ) from exc
    _check_sigstruct_fields(bundle)
    _check_files(bundle)
    measured = mrenclave_of(
        bundle.config.to_canonical(), bundle.interface.descriptor(), bundle.manifest, runtime
    )
    if not hmac.compare_digest(measured, sig.enclave_hash):
        raise EnclaveLoadError(_explain_mismatch(bundle, runtime, measured))
    return Identity(
        mrenclave=sig.enclave_hash,
        mrsigner=sig.mrsigner,
        product_id=sig.isv_prod_id,
        security_version=sig.isv_svn,
        debug=sig.debug,
        simulated=simulated,
    )


def _check_sigstruct_fields(bundle: Bundle) -> None:
    sig, cfg = bundle.sigstruct, bundle.config
    pairs = (
        ("ISVPRODID", sig.isv_prod_id, "product_id", cfg.product_id),
        ("ISVSVN", sig.isv_svn, "security_version", cfg.security_version),
        ("ATTRIBUTES.DEBUG", sig.debug, "debug", cfg.debug),
    )
    for sig_field, sig_value, cfg_key, cfg_value in pairs:
        if sig_value != cfg_value:
            raise EnclaveLoadError(
                f"SIGSTRUCT field {sig_field} ({sig_value}) differs from the measured config "
                f"{cfg_key} ({cfg_value}); the bundle was tampered with, rebuild it"
            )


def _check_files(bundle: Bundle) -> None:
    recorded = {p: (n, h) for p, n, h in bundle.manifest}
    present = {p for p, _ in bundle.files}
    for path in sorted(set(recorded) ^ present):
        raise EnclaveLoadError(
            f"measured file {path!r} is {'missing from' if path in recorded else 'not in'} "
            "the bundle manifest; the bundle was tampered with, rebuild it"
        )
    for path, data in bundle.files:
        _, size, digest = file_entry(path, data)
        want_size, want_digest = recorded[path]
        if size != want_size or not hmac.compare_digest(digest, want_digest):
            raise EnclaveLoadError(
                f"measured file {path!r} does not match its measurement "
                f"(sha256 {digest.hex()[:16]}..., expected {want_digest.hex()[:16]}...); "
                "the file was modified after signing: rebuild and re-sign the bundle"
            )


def _explain_mismatch(bundle: Bundle, runtime: list[FileEntry], measured: bytes) -> str:
    head = (
        f"MRENCLAVE mismatch: measured {measured.hex()}, "
        f"SIGSTRUCT.ENCLAVEHASH {bundle.sigstruct.enclave_hash.hex()}; "
    )
    built = {p: h for p, _, h in bundle.runtime}
    mine = {p: h for p, _, h in runtime}
    changed = sorted(p for p in set(built) | set(mine) if built.get(p) != mine.get(p))
    if changed:
        return head + (
            f"the enklave runtime differs from the one the bundle was built with "
            f"({', '.join(changed[:5])}); rebuild the bundle with this enklave version"
        )
    return head + (
        "the measured config, interface descriptor or manifest was modified after signing; "
        "rebuild and re-sign the bundle"
    )
