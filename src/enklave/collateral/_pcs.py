"""A client for the Intel PCS / PCCS / Azure THIM v4 collateral API (stdlib HTTP only).

It fetches the TCB Info, QE Identity, PCK CRL and Root CA CRL for one FMSPC and TEE type,
with their issuer chains (URL-encoded PEM in response headers), and assembles a
:class:`~enklave.collateral.Collateral`. What is checked here: transport (HTTPS, or plain
HTTP to a loopback host only, also for redirects), HTTP status, body size, the body shapes
(JSON with the right top-level key, CRLs as DER, PEM or hex), that the TCB Info is for the
asked FMSPC and TEE, that the QE Identity is the QE or TD_QE one, and that the PCK CRL
comes from the asked CA. What is NOT checked here: signatures, chains and validity
windows; the verifier checks those, so a hostile or broken server can make a fetch fail
but cannot make a bad quote verify.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from ..errors import CollateralError
from ..models.quote import Quote
from . import _pcsparse as _p
from ._cache import CachedResponse, CollateralCache
from ._model import Collateral

__all__ = [
    "AZURE_THIM_URL",
    "INTEL_PCS_URL",
    "INTEL_ROOT_CA_CRL_URL",
    "PcsClient",
    "PcsCrl",
    "PcsDocument",
]

log = logging.getLogger("enklave.collateral")

INTEL_PCS_URL: Final = "https://api.trustedservices.intel.com"
INTEL_ROOT_CA_CRL_URL: Final = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
AZURE_THIM_URL: Final = "https://global.acccache.azure.net"

_KEY_HEADER: Final = "Ocp-Apim-Subscription-Key"
_TCB_CHAIN: Final = (
    "TCB-Info-Issuer-Chain",
    "SGX-TCB-Info-Issuer-Chain",
    "TDX-TCB-Info-Issuer-Chain",
)
_QE_CHAIN: Final = ("SGX-Enclave-Identity-Issuer-Chain", "Enclave-Identity-Issuer-Chain")
_CRL_CHAIN: Final = ("SGX-PCK-CRL-Issuer-Chain", "PCK-CRL-Issuer-Chain")
_KEPT_HEADERS: Final = frozenset(h.lower() for h in (*_TCB_CHAIN, *_QE_CHAIN, *_CRL_CHAIN))
_MAX_BODY: Final = 8 << 20

T = TypeVar("T")
_Parser = Callable[[bytes, Mapping[str, str], float], tuple[T, float]]


class PcsDocument(NamedTuple):
    """A signed JSON response: the whole body text as served, and its issuer chain (PEM)."""

    body: str
    issuer_chain: str


class PcsCrl(NamedTuple):
    """A CRL (DER) and, for PCK CRLs, its issuer chain (PEM; empty for the root CRL)."""

    der: bytes
    issuer_chain: str


class PcsClient:
    """Fetch DCAP collateral from Intel PCS, a PCCS or Azure THIM (v4 API).

    Args:
        base_url: the service root, e.g. ``https://api.trustedservices.intel.com`` (PCS),
            ``https://localhost:8081`` (PCCS), ``https://global.acccache.azure.net``
            (THIM); a trailing ``/sgx/certification/v4`` is accepted and dropped. Plain
            ``http://`` is allowed only for loopback hosts.
        cache: an on-disk cache; None fetches every time.
        timeout: seconds per HTTP request.
        api_key: sent as ``Ocp-Apim-Subscription-Key`` (never logged, never cached, not
            forwarded on redirects).
        root_ca_crl_url: where to get the Root CA CRL. Default: Intel's URL for Intel PCS,
            else the service's ``/sgx/certification/v4/rootcacrl`` (PCCS), falling back on
            HTTP 404 to the CRL distribution point of the root in the PCK CRL issuer chain.
        clock: unix time source, for cache freshness.

    Raises:
        CollateralError: a URL is malformed, not HTTPS, or plain HTTP to a non-loopback host.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cache: CollateralCache | None = None,
        timeout: float = 10.0,
        api_key: str | None = None,
        root_ca_crl_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = _p.normalize_base(base_url)
        if root_ca_crl_url is not None:
            _p.check_url(root_ca_crl_url, "root CA CRL URL")
        self.cache = cache
        self.timeout = timeout
        self.root_ca_crl_url = root_ca_crl_url
        self._api_key = api_key
        self._clock = clock
        self._opener = urllib.request.build_opener(_SafeRedirects())

    def __repr__(self) -> str:
        return f"PcsClient({self.base_url!r}, cache={self.cache!r})"

    # -- the collateral -------------------------------------------------------------------

    def collateral(
        self, fmspc: bytes | str, *, tdx: bool = False, ca: str = "processor"
    ) -> Collateral:
        """Fetch (or take from the cache) everything needed to verify quotes of one platform.

        Args:
            fmspc: 6 bytes, or 12 hex digits (any case).
            tdx: fetch the TDX TCB Info and the TD_QE identity instead of the SGX ones.
            ca: ``"processor"`` or ``"platform"``: which PCK CA's CRL (the issuer of the
                quote's PCK certificate).

        Raises:
            CollateralError: bad arguments, a network or HTTP failure, or a malformed or
                mismatched response (the message names the URL and what to do).
        """
        fmspc_hex = _p.fmspc_hex(fmspc)
        if ca not in _p.CAS:
            raise CollateralError(f"ca must be 'processor' or 'platform', got {ca!r}")
        tcb = self.tcb_info(fmspc_hex, tdx=tdx)
        qe = self.qe_identity(tdx=tdx)
        pck_crl = self.pck_crl(ca)
        root_crl = self.root_ca_crl(pck_crl_issuer_chain=pck_crl.issuer_chain)
        return Collateral.from_pcs_responses(
            tcb_info_response=tcb.body,
            qe_identity_response=qe.body,
            tcb_info_issuer_chain=tcb.issuer_chain,
            qe_identity_issuer_chain=qe.issuer_chain,
            pck_crl=pck_crl.der,
            pck_crl_issuer_chain=pck_crl.issuer_chain,
            root_ca_crl=root_crl.der,
        )

    def collateral_for(self, quote: Quote) -> Collateral:
        """The collateral for ``quote`` (the verifier's ``CollateralSource`` protocol).

        FMSPC and CA come from the quote's PCK certificate (its SGX extension and its
        issuer CN); the TEE type from the quote header. Nothing is verified here.

        Raises:
            CollateralError: the quote carries no PCK certificate chain (cert types 1-3),
                the PCK certificate is unreadable, or any fetch fails.
        """
        fmspc, ca = _p.fmspc_and_ca(quote)
        return self.collateral(fmspc, tdx=quote.tee == "tdx", ca=ca)

    # -- single documents -----------------------------------------------------------------

    def tcb_info(self, fmspc: bytes | str, *, tdx: bool = False) -> PcsDocument:
        """GET ``/{sgx|tdx}/certification/v4/tcb?fmspc=``; checks the FMSPC and TEE id."""
        fmspc_hex = _p.fmspc_hex(fmspc)
        tee = "tdx" if tdx else "sgx"
        url = f"{self.base_url}/{tee}/certification/v4/tcb?fmspc={fmspc_hex}"
        what = f"{tee.upper()} TCB Info for FMSPC {fmspc_hex}"

        def parse(body: bytes, headers: Mapping[str, str], now: float) -> tuple[PcsDocument, float]:
            text, inner = _p.signed_json(body, "tcbInfo", what, url)
            found = inner.get("fmspc")
            if not isinstance(found, str) or found.upper() != fmspc_hex:
                raise CollateralError(f"{what}: {url} served TCB Info for FMSPC {found!r}")
            tee_id = inner.get("id", "SGX")
            if tee_id != tee.upper():
                raise CollateralError(f"{what}: {url} served TCB Info with id {tee_id!r}")
            chain = _p.issuer_chain(headers, _TCB_CHAIN, what, url)
            return PcsDocument(text, chain), _p.next_update(inner, what, url)

        return self._get(url, what, parse)

    def qe_identity(self, *, tdx: bool = False) -> PcsDocument:
        """GET ``/{sgx|tdx}/certification/v4/qe/identity``; checks the id (QE or TD_QE)."""
        tee = "tdx" if tdx else "sgx"
        url = f"{self.base_url}/{tee}/certification/v4/qe/identity"
        expected = "TD_QE" if tdx else "QE"
        what = f"{expected} identity"

        def parse(body: bytes, headers: Mapping[str, str], now: float) -> tuple[PcsDocument, float]:
            text, inner = _p.signed_json(body, "enclaveIdentity", what, url)
            if inner.get("id") != expected:
                raise CollateralError(f"{what}: {url} served identity {inner.get('id')!r}")
            chain = _p.issuer_chain(headers, _QE_CHAIN, what, url)
            return PcsDocument(text, chain), _p.next_update(inner, what, url)

        return self._get(url, what, parse)

    def pck_crl(self, ca: str = "processor") -> PcsCrl:
        """GET ``/sgx/certification/v4/pckcrl?ca=&encoding=der`` (DER, PEM or hex body)."""
        if ca not in _p.CAS:
            raise CollateralError(f"ca must be 'processor' or 'platform', got {ca!r}")
        url = f"{self.base_url}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
        what = f"PCK {ca.capitalize()} CA CRL"

        def parse(body: bytes, headers: Mapping[str, str], now: float) -> tuple[PcsCrl, float]:
            der, crl = _p.crl(body, what, url)
            issuer = _p.common_name(crl.issuer).lower()
            if ca not in issuer:
                raise CollateralError(f"{what}: {url} served a CRL issued by {issuer!r}")
            chain = _p.issuer_chain(headers, _CRL_CHAIN, what, url)
            return PcsCrl(der, chain), _p.crl_next_update(crl, now)

        return self._get(url, what, parse)

    def root_ca_crl(self, *, pck_crl_issuer_chain: str | None = None) -> PcsCrl:
        """The Root CA CRL (see ``root_ca_crl_url``); DER, PEM or hex body.

        Args:
            pck_crl_issuer_chain: used only for the fallback when a PCCS has no
                ``rootcacrl`` endpoint: the root certificate's CRL distribution point.
        """
        if self.root_ca_crl_url is not None:
            return self._root_crl_from(self.root_ca_crl_url)
        if urllib.parse.urlsplit(self.base_url).hostname == "api.trustedservices.intel.com":
            return self._root_crl_from(INTEL_ROOT_CA_CRL_URL)
        try:
            return self._root_crl_from(f"{self.base_url}/sgx/certification/v4/rootcacrl")
        except CollateralError as exc:
            cause = exc.__cause__
            fallback = _p.root_crl_point(pck_crl_issuer_chain)
            if not isinstance(cause, urllib.error.HTTPError) or cause.code != 404 or not fallback:
                raise
            log.info("%s has no rootcacrl endpoint; using %s", self.base_url, fallback)
            _p.check_url(fallback, "root CA CRL distribution point")
            return self._root_crl_from(fallback)

    def _root_crl_from(self, url: str) -> PcsCrl:
        what = "Root CA CRL"

        def parse(body: bytes, headers: Mapping[str, str], now: float) -> tuple[PcsCrl, float]:
            der, crl = _p.crl(body, what, url)
            return PcsCrl(der, ""), _p.crl_next_update(crl, now)

        return self._get(url, what, parse)

    # -- transport ------------------------------------------------------------------------

    def _get(self, url: str, what: str, parse: _Parser[T]) -> T:
        """Return the parsed response for ``url``, from the cache while it is fresh."""
        now = self._clock()
        if self.cache is not None:
            entry = self.cache.get(url, now=now)
            if entry is not None:
                try:
                    return parse(entry.body, entry.headers, now)[0]
                except CollateralError as exc:
                    log.warning("ignoring bad cached %s (%s); refetching", what, exc)
                    self.cache.discard(url)
        body, headers = self._fetch(url, what)
        value, next_update = parse(body, headers, now)
        if self.cache is not None:
            kept = {k: v for k, v in headers.items() if k in _KEPT_HEADERS}
            try:
                self.cache.put(CachedResponse(url, body, kept, next_update, now))
            except CollateralError as exc:  # a broken cache must not fail a good fetch
                log.warning("%s", exc)
        return value

    def _fetch(self, url: str, what: str) -> tuple[bytes, dict[str, str]]:
        """One GET; returns the body and the headers (names in lower case)."""
        _p.check_url(url, what)  # https, or http to loopback: no file:, no custom schemes
        request = urllib.request.Request(  # noqa: S310
            url, headers={"Accept": "*/*", "User-Agent": "enklave"}
        )
        if self._api_key:
            request.add_unredirected_header(_KEY_HEADER, self._api_key)
        log.info("fetching %s: %s", what, url)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(_MAX_BODY + 1)
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, what, url) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CollateralError(
                f"cannot fetch {what} from {url}: {reason}; check the URL, the network and "
                "any proxy settings (HTTPS_PROXY), then retry"
            ) from exc
        if len(body) > _MAX_BODY:
            raise CollateralError(f"{what}: {url} sent more than {_MAX_BODY} bytes; wrong URL?")
        return body, headers


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to URLs the client would accept itself (no HTTPS downgrade)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        _p.check_url(newurl, f"redirect target of {req.full_url}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _http_error(exc: urllib.error.HTTPError, what: str, url: str) -> CollateralError:
    detail = ""
    try:
        text = exc.read(512).decode("utf-8", "replace").strip()
        detail = "".join(c if c.isprintable() else "?" for c in text)  # no terminal escapes
    except (OSError, http.client.HTTPException, ValueError):
        pass
    request_id = exc.headers.get("Request-ID") if exc.headers is not None else None
    hints = {
        400: "the request was refused as malformed; check the FMSPC and CA values",
        401: "access denied; check the API key (Ocp-Apim-Subscription-Key)",
        403: "access denied; check the API key or the PCCS access rules",
        404: "the service has no such collateral; check the FMSPC, the TEE type (SGX/TDX), "
        "the CA, and that the URL is a PCS/PCCS v4 API root",
        429: "rate limited; retry later",
    }
    hint = hints.get(exc.code, "the service failed; retry later or use another PCCS/PCS")
    message = f"cannot fetch {what}: {url} answered HTTP {exc.code} {exc.reason}"
    if detail:
        message += f" ({detail[:200]})"
    if request_id:
        message += f" [Request-ID {request_id}]"
    message += f"; {hint}"
    return CollateralError(message)
