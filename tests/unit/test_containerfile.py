"""Golden-file tests of the Containerfile `enklave image build` generates (no podman needed).

Golden files live in tests/golden/containerfile/; regenerate with ``UPDATE_GOLDEN=1`` and
review the diff: every line of the Containerfile is a security or reproducibility choice
(offline hash-pinned install, non-root user, labels, entrypoint).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _golden import assert_golden
from enklave.deploy import DEFAULT_BASE, render_containerfile
from enklave.deploy._containerfile import entrypoint

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "containerfile"
LABELS = {
    "io.enklave.mrenclave": "ab" * 32,
    "io.enklave.mrsigner": "cd" * 32,
    "io.enklave.product-id": "1",
    "io.enklave.security-version": "2",
    "io.enklave.debug": "false",
    "io.enklave.backend": "simulation",
    "org.opencontainers.image.title": 'hello "quoted"',
}
CASES = {
    "with-host": {"has_host": True},
    "no-host": {"has_host": False},
    "port-9443": {"has_host": False, "port": 9443},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_containerfile_matches_golden(case):
    text = render_containerfile(base=DEFAULT_BASE, labels=LABELS, **CASES[case])
    assert_golden(text, GOLDEN / f"{case}.Containerfile")


def test_install_is_offline_and_hash_pinned():
    text = render_containerfile(base=DEFAULT_BASE, labels=LABELS, has_host=False)
    install = next(line for line in text.splitlines() if "pip install" in line)
    for flag in ("--no-index", "--require-hashes", "--only-binary=:all:",
                 "-r /wheels/requirements.lock"):
        assert flag in install


def test_runtime_stage_is_non_root_and_starts_serve():
    text = render_containerfile(base=DEFAULT_BASE, labels=LABELS, has_host=True)
    runtime = text.split("\n\n", 1)[1]
    assert "USER 10001:10001" in runtime
    assert runtime.index("USER 10001:10001") < runtime.index("ENTRYPOINT")
    assert "COPY --from=build /opt/enklave /opt/enklave" in runtime
    assert entrypoint(has_host=True)[-2:] == ["--ocalls", "/app/host.py"]
    assert "--ocalls" not in entrypoint(has_host=False)


def test_label_values_cannot_inject_instructions():
    text = render_containerfile(
        base=DEFAULT_BASE, labels={"x": 'v"\nRUN echo pwned'}, has_host=False)
    assert "\nRUN echo pwned" not in text


@pytest.mark.parametrize("labels,base", [
    ({"x\nRUN id": "v"}, DEFAULT_BASE),
    ({"x": "v"}, "img\nRUN id"),
])
def test_rejects_instruction_injection_via_label_key_or_base(labels, base):
    from enklave.errors import DeployError

    with pytest.raises(DeployError):
        render_containerfile(base=base, labels=labels, has_host=False)
