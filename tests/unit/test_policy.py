"""Policies and policy documents, over results shaped like the verifier's.

The DCAP checks themselves are tested against real quotes in tests/vectors; here only
the appraisal logic runs, so a minimal stand-in result carries a real report body.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from enklave.errors import PolicyError
from enklave.models.quote import SgxReportBody, TdReportBody
from enklave.verify import (
    AllOf,
    AnyOf,
    MeasurementIs,
    NotDebug,
    NotSimulated,
    SignerIs,
    TcbAccepted,
    UnsafeAcceptAnything,
    default_policy,
    parse_policy,
)

MRE = bytes(range(32))
MRS = bytes(range(32, 64))


def result(
    *,
    debug=False,
    simulated=False,
    status="UpToDate",
    advisories=(),
    svn=2,
    prod=1,
    mrenclave=MRE,
    td=False,
):
    if td:
        body = TdReportBody.build(
            mr_td=b"\x11" * 48, td_attributes=bytes([1 if debug else 0]) + bytes(7)
        )
    else:
        body = SgxReportBody.build(
            mrenclave=mrenclave,
            mrsigner=MRS,
            isv_prod_id=prod,
            isv_svn=svn,
            attributes=bytes([0x07 if debug else 0x05]) + bytes(15),
        )
    return SimpleNamespace(
        quote=SimpleNamespace(body=body),
        simulated=simulated,
        status=status,
        advisory_ids=tuple(advisories),
    )


def test_default_policy_accepts_a_matching_production_enclave():
    default_policy(mrenclave=[MRE], mrsigner=MRS, product_id=1, min_svn=2).check(result())


def test_rejects_debug_enclave_by_default():
    with pytest.raises(PolicyError) as err:
        default_policy(mrenclave=[MRE]).check(result(debug=True))
    assert err.value.check == "debug"


def test_rejects_debug_td_by_default():
    with pytest.raises(PolicyError) as err:
        default_policy().check(result(debug=True, td=True))
    assert err.value.check == "debug"


def test_rejects_simulated_evidence_by_default():
    with pytest.raises(PolicyError) as err:
        default_policy().check(result(simulated=True))
    assert err.value.check == "simulated"
    default_policy(allow_simulated=True).check(result(simulated=True))


@pytest.mark.parametrize(
    "status",
    [
        "OutOfDate",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDateConfigurationNeeded",
    ],
)
def test_rejects_outdated_tcb_by_default(status):
    with pytest.raises(PolicyError) as err:
        default_policy().check(result(status=status))
    assert err.value.check == "tcb_status"
    default_policy(accepted_statuses=[status]).check(result(status=status))


def test_sw_hardening_needed_is_accepted_by_default():
    default_policy().check(result(status="SWHardeningNeeded", advisories=["INTEL-SA-00615"]))


def test_rejects_named_advisory_and_unlisted_advisory():
    r = result(status="SWHardeningNeeded", advisories=["INTEL-SA-00615", "INTEL-SA-00289"])
    with pytest.raises(PolicyError) as err:
        TcbAccepted(statuses=("SWHardeningNeeded",), rejected_advisories=("INTEL-SA-00289",)).check(
            r
        )
    assert err.value.check == "advisories"
    with pytest.raises(PolicyError):
        TcbAccepted(statuses=("SWHardeningNeeded",), accepted_advisories=("INTEL-SA-00615",)).check(
            r
        )


def test_rejects_other_measurement():
    with pytest.raises(PolicyError) as err:
        MeasurementIs.of(bytes(32)).check(result())
    assert err.value.check == "mrenclave" and MRE.hex() in err.value.message


def test_rejects_svn_rollback_and_other_product_and_signer():
    with pytest.raises(PolicyError) as err:
        SignerIs(MRS, 1, 3).check(result(svn=2))
    assert err.value.check == "min_svn"
    with pytest.raises(PolicyError) as err:
        SignerIs(MRS, 9).check(result())
    assert err.value.check == "product_id"
    with pytest.raises(PolicyError) as err:
        SignerIs(bytes(32)).check(result())
    assert err.value.check == "mrsigner"


def test_all_of_and_any_of():
    ok, bad = MeasurementIs.of(MRE), MeasurementIs.of(bytes(32))
    AnyOf((bad, ok)).check(result())
    with pytest.raises(PolicyError) as err:
        AnyOf((bad, bad)).check(result())
    assert err.value.check == "any_of"
    with pytest.raises(PolicyError):
        AllOf((ok, bad)).check(result())
    AllOf((NotDebug(), NotSimulated(), ok)).check(result())


def test_unsafe_opt_out_is_named_and_logs(caplog):
    with caplog.at_level(logging.WARNING, logger="enklave.verify"):
        UnsafeAcceptAnything("lab test").check(
            result(debug=True, simulated=True, status="OutOfDate")
        )
    assert "UnsafeAcceptAnything" in caplog.text


def test_policy_document_toml_and_json_agree():
    toml = f'mrenclave = ["{MRE.hex()}"]\nmrsigner = "{MRS.hex()}"\nproduct_id = 1\nmin_svn = 2\n'
    doc = {"mrenclave": [MRE.hex()], "mrsigner": MRS.hex(), "product_id": 1, "min_svn": 2}
    for policy in (parse_policy(toml), parse_policy(json.dumps(doc), fmt="json")):
        policy.check(result())
        with pytest.raises(PolicyError):
            policy.check(result(svn=1))
        with pytest.raises(PolicyError):
            policy.check(result(debug=True))
        with pytest.raises(PolicyError):
            policy.check(result(simulated=True))


def test_policy_document_any_of_keeps_safety_defaults():
    policy = parse_policy(
        f'[[any_of]]\nmrenclave = "{bytes(32).hex()}"\n[[any_of]]\nmrenclave = "{MRE.hex()}"\n'
    )
    policy.check(result())
    with pytest.raises(PolicyError):
        policy.check(result(debug=True))
    with pytest.raises(PolicyError):
        policy.check(result(mrenclave=bytes(32 * [7])))


def test_policy_document_unsafe_needs_reason():
    assert isinstance(parse_policy('unsafe_accept_anything = "demo"'), UnsafeAcceptAnything)
    with pytest.raises(PolicyError):
        parse_policy("unsafe_accept_anything = true")


@pytest.mark.parametrize(
    "text",
    [
        'mrenclave = "zz"',
        "product_id = 70000",
        'min_svn = "1"',
        "allow_debug = 1",
        'accepted_tcb_statuses = ["Fine"]',
        'colour = "blue"',
        "any_of = []",
        "not toml [",
        "product_id = 1",  # product id without a signer
    ],
)
def test_bad_policy_documents_name_the_problem(text):
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert err.value.message
