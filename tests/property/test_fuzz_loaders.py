"""Fuzzing what operators and vendors hand the controller: IVR flow files, the TOML
configuration (and its environment overrides) and signed license files.

The property: every input gives either a result or the module's own error with its slug
(`flow-invalid` issues with a file and line, `config-invalid`, `license-*`) — never another
exception. A refused license leaves the file in force byte for byte. Inputs start from the
shipped files (ivr_flows/95598.yaml, deploy/ccserver.example.toml, a license signed by a
throw-away key), mutated, so most are nearly valid and get deep into the checks; signed
licenses with garbage fields reach the field parser behind the signature. Counts of inputs
tried are printed (`pytest -s`).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ccserver import config as config_mod
from ccserver import licensing
from ccserver.config import Config
from ccserver.errors import ConfigError
from ccserver.ivr.loader import FlowError, FlowIssue, load_flows, validate_file
from ccserver.licensing import LicenseError
from tests.fuzzing import fuzz

ROOT = Path(__file__).resolve().parents[2]
FLOW = (ROOT / "ivr_flows" / "95598.yaml").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "deploy" / "ccserver.example.toml").read_text(encoding="utf-8")
QUEUES = {q.name for q in Config().acd.queues}
LICENSE_SLUGS = {
    "license-malformed",
    "license-truncated",
    "license-unknown-key",
    "license-signature-invalid",
    "license-wrong-customer",
    "license-not-yet-valid",
    "license-expired",
}
NOW = time.time()


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """`text` with a few lines dropped, duplicated, swapped for junk or cut short,
    characters replaced, or truncated anywhere."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "dup", "junk", "cut", "char", "indent"]))
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "junk":
            lines[i] = draw(st.text(max_size=60))
        elif how == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif how == "char" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.characters()) + lines[i][j + 1 :]
        elif how == "indent":
            lines[i] = " " * draw(st.integers(1, 6)) + lines[i]
        if not lines:
            lines = [""]
    out = "\n".join(lines)
    return out[: draw(st.integers(0, len(out)))] if draw(st.integers(0, 4)) == 0 else out


# --- IVR flows -----------------------------------------------------------------------------

yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=15,
)


def test_flow_loader_fuzz_gives_issues_with_lines_never_a_traceback(tmp_path: Path) -> None:
    import yaml

    tried: Counter[str] = Counter()
    flows = tmp_path / "flows"
    flows.mkdir()
    file = flows / "f.yaml"

    @fuzz(250)
    @given(
        text=mutated_text(FLOW)
        | yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True))
        | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
        | st.sampled_from(["", "{", "a: &x [*x]", "a: !!python/object:os.system x", "- [" * 50])
    )
    def run(text: str) -> None:
        file.write_bytes(text.encode("utf-8", "surrogatepass"))
        flow, issues = validate_file(file, QUEUES)
        tried["files"] += 1
        tried["issues"] += len(issues)
        tried["valid"] += not issues
        assert flow is not None or issues
        assert all(isinstance(i, FlowIssue) and i.line >= 1 and i.message for i in issues)
        try:
            load_flows(flows, QUEUES)
        except FlowError as exc:
            assert exc.slug == "flow-invalid" and issues
            assert str(file) in exc.message

    run()
    print(f"IVR flow fuzz: {dict(tried)}")
    assert tried["files"] >= 200 and tried["issues"] > 0


# --- configuration -------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (ASCII escapes)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    return repr(value)


SECTIONS = sorted(Config.model_fields)
toml_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["127.0.0.1", "::1", "95598", "1001", "general", "10:00-12:00"])
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
generated_toml = st.dictionaries(
    st.sampled_from(SECTIONS) | st.text(max_size=8),
    st.dictionaries(
        st.sampled_from(
            ["port", "sip_port", "http_port", "ids", "numbers", "queues", "agents", "bind"]
        )
        | st.text(min_size=1, max_size=10),
        toml_values,
        max_size=4,
    ),
    max_size=4,
).map(
    lambda doc: "\n".join(
        f"[{json.dumps(section)}]\n"
        + "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in keys.items())
        for section, keys in doc.items()
    )
)
environments = st.dictionaries(
    st.sampled_from(["CCSERVER_", "CCSERVER_X", "CCSERVER_A__", "CCSERVER___B"])
    | st.builds(
        lambda s, k: f"CCSERVER_{s.upper()}__{k.upper()}",
        st.sampled_from(SECTIONS),
        st.sampled_from(["PORT", "SIP_PORT", "IDS", "BIND", "QUEUES", "X"]),
    ),
    st.text(max_size=20) | st.sampled_from(["[1, 2", "1e999", '"a"', "{a = 1}", "[]"]),
    max_size=3,
)


def test_config_load_fuzz_gives_a_config_or_config_invalid(tmp_path: Path) -> None:
    tried: Counter[str] = Counter()
    file = tmp_path / "ccserver.toml"

    @fuzz(300)
    @given(text=mutated_text(EXAMPLE) | generated_toml, environ=environments)
    def run(text: str, environ: dict[str, str]) -> None:
        file.write_bytes(text.encode("utf-8", "surrogatepass"))
        tried["files"] += 1
        try:
            loaded = config_mod.load(file, environ=environ)
        except ConfigError as exc:
            assert exc.slug == "config-invalid" and exc.message
            assert "Traceback" not in exc.message
            tried["refused"] += 1
            return
        tried["loaded"] += 1
        assert isinstance(loaded, Config)

    run()
    print(f"config fuzz: {dict(tried)}")
    assert tried["loaded"] > 0 and tried["refused"] > 0


# --- licenses ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendor() -> tuple[Ed25519PrivateKey, dict[str, Any], bytes]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    lic = licensing.new_license(
        customer_id="acme",
        customer_name="Acme Power",
        seats=50,
        ivr_channels=20,
        days=365,
        now=NOW,
        grace=licensing.Grace(10, 60),
        features=["ivr"],
    )
    return private, {licensing.key_id(public): public}, licensing.sign(lic, private)


def _resign(doc: Any, private: Ed25519PrivateKey) -> bytes:
    """A correctly signed file around any license object: what gets past the signature
    and reaches the field checks."""
    envelope = {
        "license": doc,
        "key_id": licensing.key_id(private.public_key()),
        "signature": base64.b64encode(private.sign(licensing.canonical(doc))).decode(),
    }
    return json.dumps(envelope).encode()


license_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**300, 10**400)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "9999-12-31T23:59:59Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=6,
)


@st.composite
def mutated_licenses(draw: st.DrawFn, good: bytes, private: Ed25519PrivateKey) -> bytes:
    envelope = json.loads(good)
    how = draw(st.sampled_from(["bytes", "cut", "field", "resign", "resign-nested", "envelope"]))
    if how == "bytes":
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 5))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "cut":
        return good[: draw(st.integers(0, len(good) - 1))]
    doc = envelope["license"]
    key = draw(st.sampled_from([*sorted(doc), "not_before", "grace", "unknown"]))
    value = draw(license_values)
    if how == "resign-nested" and isinstance(doc.get(key), dict) and doc[key]:
        doc[key][draw(st.sampled_from(sorted(doc[key])))] = value
    elif draw(st.integers(0, 5)) == 0:
        doc.pop(key, None)
    else:
        doc[key] = value
    if how in ("resign", "resign-nested"):
        return _resign(doc, private)
    if how == "envelope":
        envelope[draw(st.sampled_from(["license", "key_id", "signature", "x"]))] = value
    return json.dumps(envelope).encode()


def test_license_fuzz_refuses_with_a_slug_and_keeps_the_license_in_force(
    tmp_path: Path, vendor: tuple[Ed25519PrivateKey, dict[str, Any], bytes]
) -> None:
    private, keys, good = vendor
    target = tmp_path / "license.json"
    licensing.install(good, target, keys, now=NOW, customer_id="acme")
    tried: Counter[str] = Counter()

    @fuzz(400)
    @given(data=mutated_licenses(good, private))
    def run(data: bytes) -> None:
        tried["files"] += 1
        try:
            lic = licensing.install(data, target, keys, now=NOW, customer_id="acme")
        except LicenseError as exc:
            assert exc.slug in LICENSE_SLUGS, exc
            assert target.read_bytes() == good  # the license in force is untouched
            tried[exc.slug] += 1
            return
        tried["accepted"] += 1
        assert lic.customer_id == "acme" and lic.seats >= 0
        assert lic.describe()
        target.write_bytes(good)  # an accepted variant: back to the original for the next

    run()
    print(f"license fuzz: {dict(tried)}")
    assert tried["files"] >= 300 and tried["license-signature-invalid"] > 0
    assert tried["license-malformed"] > 0


@pytest.mark.parametrize(
    "grace",
    [
        {"extra_seats_pct": 10**400, "max_minutes": 5},  # float() raised OverflowError
        {"extra_seats_pct": 10, "max_minutes": math.inf},  # a grace that never ends
    ],
)
def test_signed_licenses_the_fuzzer_broke_the_parser_with_are_malformed(
    vendor: tuple[Ed25519PrivateKey, dict[str, Any], bytes], grace: dict[str, float]
) -> None:
    private, keys, good = vendor
    doc = json.loads(good)["license"]
    doc["grace"] = grace
    with pytest.raises(LicenseError) as refused:
        licensing.verify(_resign(doc, private), keys, now=NOW, customer_id="acme")
    assert refused.value.slug == "license-malformed"


def test_a_non_ascii_signature_is_malformed_not_a_value_error(
    vendor: tuple[Ed25519PrivateKey, dict[str, Any], bytes],
) -> None:
    """Found by the fuzzer: base64 raised a plain ValueError for a non-ASCII character."""
    _, keys, good = vendor
    envelope = json.loads(good)
    envelope["signature"] = "\u20ac" + envelope["signature"][1:]
    with pytest.raises(LicenseError) as refused:
        licensing.verify(json.dumps(envelope).encode(), keys, now=NOW, customer_id="acme")
    assert refused.value.slug == "license-malformed"
