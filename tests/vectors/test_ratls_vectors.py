"""Real attested-TLS certificates (../shared/testvectors/ratls): formats, key binding, quotes.

Every certificate (and Cosmian's evidence.json) is parsed and its key binding checked against
index.json's facts; those with collateral are verified under Intel's root with a policy that
accepts the status the README reports. The same computation renders the results table in
docs/atls-vectors.md, and a test keeps that table true. Regenerate it with
``python -m tests.vectors.test_ratls_vectors``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from enklave.atls._binding import bind
from enklave.atls._formats import CertEvidence, find_evidence
from enklave.atls._ias import IasEvidence, verify_ias
from enklave.atls._inspect import inspect_certificate, load_cosmian_bundle
from enklave.atls._verify import _check_signature, verify_certificate
from enklave.atls._x509 import Certificate, load_certificates
from enklave.collateral import Collateral
from enklave.errors import (
    CertificateError,
    CollateralError,
    CollateralExpired,
    EnklaveError,
    PolicyError,
    VerificationError,
)
from enklave.models.evidence import Evidence
from enklave.verify import AllOf, NotDebug, TcbAccepted, TrustAnchor, Verifier

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent
RATLS = SHARED / "shared" / "testvectors" / "ratls"
DOC = REPO / "docs" / "atls-vectors.md"
pytestmark = pytest.mark.skipif(not RATLS.exists(), reason="shared test vectors are absent")

INDEX: list[dict[str, Any]] = (
    json.loads((RATLS / "index.json").read_text()) if RATLS.exists() else []
)
CERTS = [e for e in INDEX if "cert" in e]
IDS = [e["file"] for e in CERTS]
COSMIAN_STRICT_TIMES = (1686873340, 1687220642)  # PCK CRL nextUpdate - 1 s, QE issueDate
ALL_STATUSES = ("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
                "ConfigurationAndSWHardeningNeeded", "OutOfDate",
                "OutOfDateConfigurationNeeded")  # fmt: skip
TABLE_START, TABLE_END = "<!-- vectors-table:start -->", "<!-- vectors-table:end -->"
#: CA-signed certificates and the files (shipped with them) holding the certificates that
#: signed them; verify_certificate gets these as ``issuers``.
ISSUERS = {
    "dstack-ratls-example/server.crt": "dstack-ratls-example/server.crt",  # its own bundle
    "dstack/app-03cf1ffd.cert": "dstack/ca-03cf1ffd.cert",
    "dstack/app-743d14de.cert": "dstack/ca-743d14de.cert",
    "dstack/app-no-elog-743d14de.cert": "dstack/ca-03cf1ffd.cert",  # sic: not ca-743d14de
}


def expected_rule(text: str | list[str]) -> str | None:
    """Map index.json's binding description to our rule name (None: not bound)."""
    text = " ".join(text) if isinstance(text, list) else text
    if "UNEXPLAINED" in text or "NOT bound" in text:
        return None
    for needle, rule in (
        ("ratls-cert", "dstack-sha512"), ("SHA512(subjectPublicKey", "rawkey-sha512"),
        ("PEM text + trailing NUL", "pem-nul-sha256"), ("claims buffer", "dice-claims"),
        ("SHA256(SPKI DER) in", "spki-sha256"), ("SHA256(subjectPublicKey BIT", "rawkey-sha256"),
    ):  # fmt: skip
        if needle in text:
            return rule
    raise AssertionError(f"no rule for {text!r}")


@cache
def load(rel: str) -> tuple[Certificate, Collateral | None]:
    data = (RATLS / rel).read_bytes()
    if rel.endswith(".json"):
        return load_cosmian_bundle(data)
    return load_certificates(data)[0], None


def verify_certificate_signature(cert: Certificate, issuers: list[Certificate]) -> None:
    """verify_certificate's signature step alone (self-signed when ``issuers`` is empty)."""
    _check_signature(cert, tuple(issuers))


def issuers_of(rel: str) -> list[Certificate]:
    """The certificates that may have signed ``rel`` (none: it must be self-signed)."""
    return load_certificates((RATLS / ISSUERS[rel]).read_bytes()) if rel in ISSUERS else []


def entry(rel: str) -> dict[str, Any]:
    return next(e for e in INDEX if e["file"] == rel)


def cross_check(rel: str) -> tuple[Collateral, int, dict[str, Any]] | None:
    cc = entry(rel).get("cross_check_with_repo_collateral")
    if not cc:
        return None
    collateral = Collateral.from_json((SHARED / cc["collateral"]).read_text())
    return collateral, cc["now_unix"], cc["dcap_qvl_0_7_0_result"]


def quote_result(ev: CertEvidence, collateral: Collateral, now: int, expiry: str = "strict"
                 ) -> Any:
    """The quote's own verification (binding checked separately), under a status-only policy."""
    from enklave.models.quote import parse_quote

    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=collateral)
    assert ev.quote is not None
    report_data = parse_quote(ev.quote).body.report_data
    return verifier.verify(Evidence(quote=ev.quote), TcbAccepted(ALL_STATUSES), now=now,
                           binding=report_data, expiry=expiry)  # type: ignore[arg-type]


def _short(ids: tuple[str, ...]) -> str:
    return ", ".join(i.removeprefix("INTEL-") for i in sorted(ids)) or "none"


def _ias_cell(ev: CertEvidence) -> str:
    ias = ev.details["ias"]
    assert isinstance(ias, IasEvidence)
    root = Certificate.load((RATLS / "integritee-pallets/AttestationReportSigningCACert.pem")
                            .read_bytes())
    try:
        verify_ias(ias, root=root)
        sig = "signature OK"
    except EnklaveError as exc:
        sig = exc.code
    version = "no version field" if ias.version is None else f"v{ias.version}"
    return f"IAS {sig}, {ias.status}, {version}, debug={ias.enclave.debug} (EPID retired)"


def _policy_cell(status: str, debug: bool) -> str:
    if debug:
        return f"allow_debug + TcbAccepted({status}); NotDebug refuses"
    return f"NotDebug + TcbAccepted({status})"


def _quote_cells(rel: str, cert: Certificate, ev: CertEvidence, bound: bool,
                 collateral: Collateral | None) -> tuple[str, str, str]:
    if ev.format == "ias":  # checked inside the cert's validity window
        when = int(cert.not_before.timestamp()) + 1
        return (_ias_cell(ev), _vc_cell(rel, cert, NoCollateral(), when, TcbAccepted()),
                "none (EPID)")
    if collateral is not None:  # Cosmian: its own collateral, windows do not overlap
        res = quote_result(ev, collateral, COSMIAN_STRICT_TIMES[1], "report")
        return (f"own collateral: collateral_expired (strict, both times); expiry=report: "
                f"{res.status} [{_short(res.advisory_ids)}]", "collateral_expired",
                "none (strict); expiry=report + TcbAccepted(OutOfDate)")
    check = cross_check(rel)
    if check is None:
        return "collateral: none", "not run", "none (no collateral)"
    coll, now, _ = check
    try:
        res = quote_result(ev, coll, now)
    except EnklaveError as exc:
        return exc.code, _vc_cell(rel, cert, coll, now, TcbAccepted(ALL_STATUSES)), "none"
    policy = TcbAccepted((res.status,)) if res.debug else AllOf(
        (NotDebug(), TcbAccepted((res.status,))))
    accepted = _policy_cell(res.status, res.debug) if bound else "none (not bound)"
    return (f"{res.status} [{_short(res.advisory_ids)}]",
            _vc_cell(rel, cert, coll, now, policy), accepted)


class NoCollateral:
    """A collateral source that has none (the check must stop before needing it)."""

    def collateral_for(self, quote: Any) -> Collateral:
        raise CollateralError("no collateral for this quote")


def _vc_cell(rel: str, cert: Certificate, collateral: Any, now: int, policy: Any) -> str:
    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=collateral)
    try:
        verify_certificate(cert, verifier=verifier, policy=policy, now=now,
                           issuers=issuers_of(rel))
    except EnklaveError as exc:
        return exc.code
    return "accepted"


def row(rel: str) -> list[str]:
    """One table row: file, formats, key, bindings, self-sig, quote, verify_certificate, policy."""
    cert, collateral = load(rel)
    found = find_evidence(cert)
    bindings = []
    for ev in found:
        try:
            bindings.append(bind(cert, ev).rule)
        except EnklaveError as exc:
            bindings.append(f"✗ {exc.code}")
    try:
        cert.verify_signature()
        selfsig = "ok"
    except CertificateError as exc:
        selfsig = exc.code
    if rel in ISSUERS:
        try:
            verify_certificate_signature(cert, issuers_of(rel))
            selfsig += f"; under `{ISSUERS[rel]}`: ok"
        except CertificateError as exc:  # pragma: no cover - the shipped CAs sign them
            selfsig += f"; under `{ISSUERS[rel]}`: {exc.code}"
    quote, vc, accepted = _quote_cells(rel, cert, found[0], not bindings[0].startswith("✗"),
                                       collateral)
    return [f"`{rel}`", " + ".join(ev.format for ev in found),
            f"{cert.key_type} ({cert.signature_algorithm})", " / ".join(bindings), selfsig,
            quote, vc, accepted]


def render_table() -> str:
    head = ["file", "format(s)", "key (cert signature)", "binding", "signature",
            "quote verification (status [advisories] or error)", "verify_certificate",
            "accepted by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row(rel)) + " |" for rel in IDS]
    return "\n".join(lines)


# ---- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", IDS)
def test_parses_and_binds_as_index_says(rel: str) -> None:
    cert, _ = load(rel)
    facts = entry(rel)["cert"]
    assert cert.serial == int(facts["serial"], 16)
    assert [e.oid for e in cert.extensions] == [x["oid"] for x in facts["extensions"]]
    found = {ev.oid: ev for ev in find_evidence(cert)}
    for fact in facts["evidence"]:
        if "binding" not in fact:
            continue
        ev = found[fact["oid"]]
        want = expected_rule(fact["binding"])
        if want is None:
            with pytest.raises(VerificationError) as info:
                bind(cert, ev)
            assert info.value.code == "key_binding"
        else:
            assert bind(cert, ev).rule == want


@pytest.mark.parametrize("rel", IDS)
def test_self_signature_as_index_says(rel: str) -> None:
    cert, _ = load(rel)
    if entry(rel)["cert"]["self_signature_valid"]:
        cert.verify_signature()
    else:
        with pytest.raises(CertificateError) as info:
            cert.verify_signature()
        assert info.value.code == "bad_signature"


@pytest.mark.parametrize("rel", ["dstack/app-03cf1ffd.cert", "dstack/app-743d14de.cert"])
def test_dstack_ca_signed_certs_verify_under_their_ca(rel: str) -> None:
    cert, _ = load(rel)
    ca = Certificate.load((RATLS / rel.replace("app-", "ca-").replace("no-elog-", "")).read_bytes())
    cert.verify_signature(ca)


@pytest.mark.parametrize("rel", sorted(ISSUERS))
def test_ca_signed_certs_verify_under_their_issuers(rel: str) -> None:
    cert, _ = load(rel)
    with pytest.raises(CertificateError):
        cert.verify_signature()
    verify_certificate_signature(cert, issuers_of(rel))


def _dstack_verify(rel: str, issuers: Any) -> Any:
    cert, _ = load(rel)
    coll, now, _ = cross_check(rel)  # type: ignore[misc]
    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=coll)
    return verify_certificate(cert.der, verifier=verifier, policy=TcbAccepted(ALL_STATUSES),
                              now=now, issuers=issuers)


def test_dstack_app_cert_passes_its_ca_signature_and_fails_at_the_quote() -> None:
    ca = (RATLS / "dstack/ca-03cf1ffd.cert").read_bytes()
    with pytest.raises(CertificateError) as info:  # no issuers: it must be self-signed
        _dstack_verify("dstack/app-03cf1ffd.cert", ())
    assert info.value.code == "bad_signature"
    for issuers in ([ca], [Certificate.load(ca)]):  # signature ok; no TCB level fits the quote
        with pytest.raises(VerificationError) as info:
            _dstack_verify("dstack/app-03cf1ffd.cert", issuers)
        assert info.value.code == "tcb_not_supported"


def test_dstack_app_cert_under_an_issuer_not_passed_is_refused() -> None:
    app_ca = load_certificates((RATLS / "dstack-ratls-example/server.crt").read_bytes())[1:]
    with pytest.raises(CertificateError) as info:  # Dstack App/KMS CA: not its issuer's name
        _dstack_verify("dstack/app-03cf1ffd.cert", app_ca)
    assert info.value.code == "unknown_issuer" and "Phala KMS CA" in info.value.message


def test_dstack_issuer_with_the_right_name_but_another_key_is_refused() -> None:
    other = (RATLS / "dstack/ca-743d14de.cert").read_bytes()  # same subject, another key
    assert Certificate.load(other).subject == load("dstack/app-03cf1ffd.cert")[0].issuer
    with pytest.raises(CertificateError) as info:
        _dstack_verify("dstack/app-03cf1ffd.cert", [other])
    assert info.value.code == "bad_signature"
    with pytest.raises(VerificationError) as vinfo:  # with the right one as well: it passes
        _dstack_verify("dstack/app-03cf1ffd.cert",
                       [other, (RATLS / "dstack/ca-03cf1ffd.cert").read_bytes()])
    assert vinfo.value.code == "tcb_not_supported"


@pytest.mark.parametrize("rel", [r for r in IDS if cross_check(r) is not None])
def test_quotes_with_collateral_verify_as_readme_reports(rel: str) -> None:
    cert, _ = load(rel)
    ev = find_evidence(cert)[0]
    coll, now, reported = cross_check(rel)  # type: ignore[misc]
    if "No matching TCB level" in reported.get("error", ""):
        with pytest.raises(VerificationError) as info:
            quote_result(ev, coll, now)
        assert info.value.code == "tcb_not_supported"
        return
    res = quote_result(ev, coll, now)
    if "status" in reported:  # dcap-qvl gave a status: ours must be the same
        assert res.status == reported["status"]
        assert sorted(res.advisory_ids) == sorted(reported["advisory_ids"])
        assert not res.debug
    else:  # dcap-qvl refused a debug enclave by its own policy; Intel's rules give a status
        assert "Debug mode" in reported["error"] and res.debug


WITH_STATUS = [r for r in IDS if (c := cross_check(r)) is not None
               and "No matching TCB level" not in c[2].get("error", "")]


@pytest.mark.parametrize("rel", WITH_STATUS)
def test_policy_accepts_reported_status_and_refuses_debug(rel: str) -> None:
    cert, _ = load(rel)
    ev = find_evidence(cert)[0]
    coll, now, _ = cross_check(rel)  # type: ignore[misc]
    status = quote_result(ev, coll, now).status
    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=coll)
    binding = bind(cert, ev)
    carried = Evidence(quote=ev.quote or b"", claims=binding.claims or b"")
    kw: dict[str, Any] = ({"claims": binding.claims} if binding.claims is not None
                          else {"binding": binding.report_data_prefix})
    strict = AllOf((NotDebug(), TcbAccepted((status,))))
    debug = parse_debug(ev)
    if debug:
        with pytest.raises(PolicyError) as info:
            verifier.verify(carried, strict, now=now, **kw)
        assert info.value.check == "debug"
        verifier.verify(carried, TcbAccepted((status,)), now=now, **kw)
    else:
        enclave = verifier.verify(carried, strict, now=now, **kw)
        assert enclave.status == status
    with pytest.raises(PolicyError):  # the default statuses never include these
        verifier.verify(carried, TcbAccepted(), now=now, **kw)


def parse_debug(ev: CertEvidence) -> bool:
    from enklave.models.quote import parse_quote

    return parse_quote(ev.quote or b"").body.debug


@pytest.mark.parametrize("rel", ["echeck/sample.pem", "gramine-ratls-golang/tlscert.der",
                                 "mutual-ratls-example/server_tlscert.der",
                                 "rats-tls/rats-tls-cert-sample.pem",
                                 "interoperable-ra-tls/gramine-cert.pem"])
def test_verify_certificate_end_to_end(rel: str) -> None:
    cert, _ = load(rel)
    coll, now, _ = cross_check(rel)  # type: ignore[misc]
    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=coll)
    status = quote_result(find_evidence(cert)[0], coll, now).status
    debug = parse_debug(find_evidence(cert)[0])
    with pytest.raises(PolicyError):
        verify_certificate(cert, verifier=verifier, policy=AllOf((NotDebug(), TcbAccepted())),
                           now=now)
    peer = verify_certificate(cert.der, verifier=verifier,
                              policy=TcbAccepted((status,)) if debug else AllOf(
                                  (NotDebug(), TcbAccepted((status,)))), now=now)
    assert peer.enclave.status == status and peer.binding == bind(cert, find_evidence(cert)[0]).rule


def test_cosmian_bundle_uses_its_own_collateral() -> None:
    cert, coll = load("cosmian_enclave/evidence.json")
    assert coll is not None
    ev = find_evidence(cert)[0]
    assert bind(cert, ev).rule == "rawkey-sha256"
    for now in COSMIAN_STRICT_TIMES:  # no instant lies inside every validity window
        with pytest.raises(CollateralExpired):
            quote_result(ev, coll, now)
    res = quote_result(ev, coll, COSMIAN_STRICT_TIMES[1], "report")
    assert res.status == "OutOfDate" and res.collateral_expired
    report = inspect_certificate((RATLS / "cosmian_enclave/evidence.json").read_bytes())
    assert report.source == "cosmian-evidence-json"
    assert report.to_dict()["evidence"][0]["binding"]["rule"] == "rawkey-sha256"


@pytest.mark.parametrize("rel", [r for r in IDS if r.startswith(("integritee", "fortanix"))])
def test_ias_reports_verify_under_the_ias_root(rel: str) -> None:
    cert, _ = load(rel)
    (ev,) = find_evidence(cert)
    root = Certificate.load((RATLS / "integritee-pallets/AttestationReportSigningCACert.pem")
                            .read_bytes())
    summary = verify_ias(ev.details["ias"], root=root)
    if "TEST8_PRODUCTION" in rel:
        assert summary["status"] == "CONFIGURATION_AND_SW_HARDENING_NEEDED"
        assert not summary["debug"]
    elif rel.startswith("integritee"):
        assert summary["status"] == "CONFIGURATION_NEEDED" and summary["debug"]
    elif "invalid_signature" in rel:
        assert summary["status"] == "SIGNATURE_INVALID"
    elif "wrong_version" in rel:
        assert summary["version"] is None
    else:
        assert summary["status"] == "OK"
    if rel.startswith("integritee"):  # REPORTDATA is the ed25519 app key, not the TLS key
        key = (RATLS / "integritee-pallets" / rel.split("/")[1]
               .replace("ra_dump_cert_", "enclave-signing-pubkey-")
               .replace("_PRODUCTION", "-PRODUCTION").replace(".der", ".bin")).read_bytes()
        assert ev.details["ias"].enclave.report_data[:32] == key[-32:]


@pytest.mark.parametrize("rel", [r for r in IDS if r.startswith(("integritee", "fortanix"))])
def test_verify_certificate_never_accepts_epid(rel: str) -> None:
    cert, _ = load(rel)
    with pytest.raises(EnklaveError) as info:  # CA-signed: stops at the self-signature
        verify_certificate(cert, verifier=Verifier(anchors=TrustAnchor.intel(),
                                                   collateral=NoCollateral()),
                           policy=TcbAccepted(ALL_STATUSES), now=cert.not_before)
    assert info.value.code == "bad_signature"


def test_tampered_ias_report_is_refused() -> None:
    cert, _ = load("fortanix-rust-sgx/test_enclave_cert.pem")
    (ev,) = find_evidence(cert)
    ias = ev.details["ias"]
    root = Certificate.load((RATLS / "integritee-pallets/AttestationReportSigningCACert.pem")
                            .read_bytes())
    forged = IasEvidence(ias.form, ias.report_body.replace(b'"OK"', b'"OK" '), ias.report,
                         ias.signature, ias.signing_certs, ias.enclave)
    with pytest.raises(VerificationError) as info:
        verify_ias(forged, root=root)
    assert info.value.code == "bad_ias_signature"
    with pytest.raises(VerificationError) as info:
        verify_ias(ias, root=ias.signing_certs[0])
    assert info.value.code == "untrusted_root"


@pytest.mark.parametrize("rel", IDS)
def test_inspect_never_raises_on_real_certs(rel: str) -> None:
    report = inspect_certificate((RATLS / rel).read_bytes()).to_dict()
    json.dumps(report)
    assert report["evidence"] and report["error"] is None


def test_doc_table_is_current() -> None:
    text = DOC.read_text()
    assert TABLE_START in text and TABLE_END in text, "docs/atls-vectors.md lost its markers"
    current = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert current == render_table(), (
        "docs/atls-vectors.md is stale: run python -m tests.vectors.test_ratls_vectors"
    )


if __name__ == "__main__":  # regenerate the table in docs/atls-vectors.md
    doc = DOC.read_text()
    before, rest = doc.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    DOC.write_text(f"{before}{TABLE_START}\n{render_table()}\n{TABLE_END}{after}")
    print(f"updated {DOC}")
