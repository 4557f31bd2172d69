"""ValidateCert end to end through the in-process client, in every protocol version, with
real certificate chains made here by ``cryptography``: root CA -> intermediate -> S/MIME
end entity, and each way such a chain goes wrong."""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eas.config import Config
from eas.core import ActiveSync, PolicyDecision
from eas.protocol.versions import SUPPORTED_VERSIONS
from eas.state.model import DeviceRecord
from eas.tags import ValidateCert as VC
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client, make_app

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
EMAIL = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
VERSIONS = [v.text for v in SUPPORTED_VERSIONS]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def b64(self) -> str:
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()


def issue(name: str, issuer: Issued | None = None, *, ca: bool = False, eku: list[x509.ObjectIdentifier] | None = None,
          start: datetime.timedelta = -DAY, end: datetime.timedelta = 365 * DAY, path_length: int | None = None,
          key: ec.EllipticCurvePrivateKey | None = None, crl_url: str | None = None,
          extra: x509.ExtensionType | None = None, ca_flag: bool | None = None) -> Issued:
    """A certificate for ``name`` signed by ``issuer`` (self-signed without one)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else key
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + start).not_valid_after(NOW + end)
               .add_extension(x509.BasicConstraints(ca=ca if ca_flag is None else ca_flag,
                                                    path_length=path_length if ca else None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                              critical=False))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(f"{name}@example.com")]),
                                        critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def crl(issuer: Issued, revoked: list[x509.Certificate]) -> bytes:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
               .last_update(NOW - DAY).next_update(NOW + 7 * DAY))
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(NOW - DAY).build())
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = issue("Test Root", ca=True, start=-10 * DAY, end=3650 * DAY)
    inter = issue("Test Mail CA", root, ca=True, start=-5 * DAY, end=1000 * DAY, eku=EMAIL)
    return {"root": root, "inter": inter, "leaf": issue("alice", inter, eku=EMAIL)}


async def no_provisioning(user: str, device: DeviceRecord) -> PolicyDecision:
    return PolicyDecision(required=False)


def app_for(tmp_path: Path, root: Issued | None, **config: Any) -> ActiveSync:
    if root is not None:
        bundle = tmp_path / "roots.pem"
        bundle.write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
        config.setdefault("trust_store", str(bundle))
    app, _ = make_app(tmp_path / "data", users=(USERS[0],), config=Config(**config))
    app.policy = no_provisioning
    return app


def body(certs: list[str], chain: list[str] | None = None, check_crl: str | None = None) -> str:
    parts = ['<ValidateCert xmlns="ValidateCert:">']
    if chain is not None:
        parts.append("<CertificateChain>" + "".join(f"<Certificate>{c}</Certificate>" for c in chain)
                     + "</CertificateChain>")
    parts.append("<Certificates>" + "".join(f"<Certificate>{c}</Certificate>" for c in certs) + "</Certificates>")
    if check_crl is not None:
        parts.append(f"<CheckCRL>{check_crl}</CheckCRL>")
    return "".join(parts) + "</ValidateCert>"


def statuses(reply: Reply) -> tuple[str | None, list[str | None]]:
    assert reply.status == 200 and reply.node is not None, reply
    assert reply.node.tag == VC.ValidateCert
    return reply.text(VC.Status), [c.findtext(VC.Status) for c in reply.node.findall(VC.Certificate)]


def validate(app: ActiveSync, certs: list[str], chain: list[str] | None = None, check_crl: str | None = None,
             version: str = "16.1") -> tuple[str | None, list[str | None]]:
    async def go() -> Reply:
        c: Client = client(app, version=version)
        return await c.command("ValidateCert", body(certs, chain, check_crl))

    return statuses(run(go()))


# -- a good chain, in every version ------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_chain_in_every_version(tmp_path: Path, pki: dict[str, Issued], version: str) -> None:
    app = app_for(tmp_path, pki["root"])
    stranger = issue("mallory")  # self-signed
    top, each = validate(app, [pki["leaf"].b64, stranger.b64], [pki["inter"].b64], version=version)
    assert top == "1"
    assert each == ["1", "4"]


def test_leaf_without_eku_is_for_any_purpose(tmp_path: Path, pki: dict[str, Issued]) -> None:
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [issue("bob", pki["inter"]).b64], [pki["inter"].b64])[1] == ["1"]


def test_intermediate_in_the_trust_store_needs_no_chain(tmp_path: Path, pki: dict[str, Issued]) -> None:
    bundle = tmp_path / "both.pem"
    bundle.write_bytes(b"".join(i.cert.public_bytes(serialization.Encoding.PEM) for i in (pki["root"], pki["inter"])))
    app = app_for(tmp_path, None, trust_store=str(bundle))
    assert validate(app, [pki["leaf"].b64])[1] == ["1"]


# -- each way a chain goes wrong ---------------------------------------------------------------


def test_missing_intermediate_is_untrusted(tmp_path: Path, pki: dict[str, Issued]) -> None:
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [pki["leaf"].b64])[1] == ["4"]


def test_chain_to_another_root_is_untrusted(tmp_path: Path, pki: dict[str, Issued]) -> None:
    other_root = issue("Other Root", ca=True, start=-10 * DAY, end=3650 * DAY)
    other_inter = issue("Other CA", other_root, ca=True, start=-5 * DAY, end=1000 * DAY)
    leaf = issue("carol", other_inter, eku=EMAIL)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [other_inter.b64, other_root.b64])[1] == ["4"]


def test_wrong_chain(tmp_path: Path, pki: dict[str, Issued]) -> None:
    unrelated = issue("Unrelated CA", pki["root"], ca=True, start=-5 * DAY, end=1000 * DAY)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [pki["leaf"].b64], [unrelated.b64])[1] == ["5"]


def test_forged_issuer_is_a_bad_signature(tmp_path: Path, pki: dict[str, Issued]) -> None:
    # An intermediate with the real one's name but another key, itself properly signed.
    impostor = issue("Test Mail CA", pki["root"], ca=True, start=-5 * DAY, end=1000 * DAY)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [pki["leaf"].b64], [impostor.b64])[1] == ["3"]


@pytest.mark.parametrize(("start", "end"), [(-30 * DAY, -DAY), (DAY, 30 * DAY)], ids=["expired", "not-yet"])
def test_out_of_validity(tmp_path: Path, pki: dict[str, Issued], start: datetime.timedelta,
                         end: datetime.timedelta) -> None:
    leaf = issue("dave", pki["inter"], eku=EMAIL, start=start, end=end)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [pki["inter"].b64])[1] == ["7"]


def test_expired_intermediate(tmp_path: Path, pki: dict[str, Issued]) -> None:
    old = issue("Old CA", pki["root"], ca=True, start=-100 * DAY, end=-2 * DAY)
    leaf = issue("erin", old, eku=EMAIL, start=-50 * DAY, end=-3 * DAY + 365 * DAY)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [old.b64])[1] == ["7"]


def test_validity_not_nested(tmp_path: Path, pki: dict[str, Issued]) -> None:
    leaf = issue("frank", pki["inter"], eku=EMAIL, end=2000 * DAY)  # outlives its CA
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [pki["inter"].b64])[1] == ["8"]


def test_a_root_outlived_by_its_ca_is_not_a_nesting_error(tmp_path: Path) -> None:
    root = issue("Short Root", ca=True, start=-10 * DAY, end=500 * DAY)
    inter = issue("Long CA", root, ca=True, start=-5 * DAY, end=1000 * DAY)
    app = app_for(tmp_path, root)
    assert validate(app, [issue("mona", inter, eku=EMAIL).b64], [inter.b64])[1] == ["1"]


def test_rsa_chain(tmp_path: Path) -> None:
    root_key, leaf_key = (rsa.generate_private_key(65537, 2048) for _ in range(2))
    root = issue("RSA Root", ca=True, start=-10 * DAY, end=3650 * DAY, key=root_key)  # type: ignore[arg-type]
    leaf = issue("nina", root, eku=EMAIL, key=leaf_key)  # type: ignore[arg-type]
    app = app_for(tmp_path, root)
    assert validate(app, [leaf.b64])[1] == ["1"]


def test_not_for_email(tmp_path: Path, pki: dict[str, Issued]) -> None:
    leaf = issue("www", pki["inter"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [pki["inter"].b64])[1] == ["6"]


def test_ca_for_another_purpose(tmp_path: Path, pki: dict[str, Issued]) -> None:
    tls_ca = issue("TLS CA", pki["root"], ca=True, start=-5 * DAY, end=1000 * DAY,
                   eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [issue("gina", tls_ca, eku=EMAIL).b64], [tls_ca.b64])[1] == ["9"]


def test_end_entity_used_as_ca(tmp_path: Path, pki: dict[str, Issued]) -> None:
    fake_ca = issue("Not A CA", pki["root"], ca=True, ca_flag=False, start=-5 * DAY, end=1000 * DAY)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [issue("hank", fake_ca, eku=EMAIL).b64], [fake_ca.b64])[1] == ["11"]


def test_ca_as_end_entity_and_path_length(tmp_path: Path, pki: dict[str, Issued]) -> None:
    limited = issue("Limited CA", pki["root"], ca=True, path_length=0, start=-5 * DAY, end=1000 * DAY)
    below = issue("Sub CA", limited, ca=True, start=-4 * DAY, end=900 * DAY)
    app = app_for(tmp_path, pki["root"])
    _top, each = validate(app, [pki["inter"].b64, issue("ivan", below, eku=EMAIL).b64], [limited.b64, below.b64])
    assert each == ["11", "11"]


def test_unknown_critical_extension_fails_the_verifier(tmp_path: Path, pki: dict[str, Issued]) -> None:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    leaf = issue("judy", pki["inter"], eku=EMAIL, extra=odd)
    app = app_for(tmp_path, pki["root"])
    assert validate(app, [leaf.b64], [pki["inter"].b64])[1] == ["5"]


def test_garbage_is_answered_per_certificate(tmp_path: Path, pki: dict[str, Issued]) -> None:
    app = app_for(tmp_path, pki["root"])
    not_der = base64.b64encode(b"\x30\x03\x02\x01\x01" * 5).decode()
    top, each = validate(app, ["!!not base64!!", not_der, "", pki["leaf"].b64], [pki["inter"].b64])
    assert top == "1" and each == ["5", "5", "5", "1"]
    # An unreadable chain certificate: the leaf's chain is wrong, the others unaffected.
    assert validate(app, [pki["leaf"].b64], ["@@@"])[1] == ["5"]


# -- revocation ---------------------------------------------------------------------------


def test_revocation_from_the_local_crls(tmp_path: Path, pki: dict[str, Issued]) -> None:
    revoked_leaf = issue("kim", pki["inter"], eku=EMAIL)
    crls = tmp_path / "crls.pem"
    crls.write_bytes(crl(pki["inter"], [revoked_leaf.cert]) + crl(pki["root"], []))
    app = app_for(tmp_path, pki["root"], crl_file=str(crls))
    for check in (None, "0", "1"):
        assert validate(app, [revoked_leaf.b64, pki["leaf"].b64], [pki["inter"].b64], check)[1] == ["13", "1"]


def test_revoked_intermediate(tmp_path: Path, pki: dict[str, Issued]) -> None:
    crls = tmp_path / "crls.pem"
    crls.write_bytes(crl(pki["inter"], []) + crl(pki["root"], [pki["inter"].cert]))
    app = app_for(tmp_path, pki["root"], crl_file=str(crls))
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64])[1] == ["15"]


def test_crl_signed_by_someone_else_is_not_believed(tmp_path: Path, pki: dict[str, Issued]) -> None:
    forger = Issued(pki["inter"].cert, ec.generate_private_key(ec.SECP256R1()))
    crls = tmp_path / "crls.pem"
    crls.write_bytes(crl(forger, [pki["leaf"].cert]))
    app = app_for(tmp_path, pki["root"], crl_file=str(crls))
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64])[1] == ["1"]
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64], "1")[1] == ["16"]


def test_check_crl_without_a_crl(tmp_path: Path, pki: dict[str, Issued]) -> None:
    pointed = issue("lee", pki["inter"], eku=EMAIL, crl_url="http://crl.example.com/mail.crl")
    app = app_for(tmp_path, pki["root"])
    # CheckCRL 0 (and absent): an unverifiable revocation status is ignored.
    assert validate(app, [pointed.b64, pki["leaf"].b64], [pki["inter"].b64], "0")[1] == ["1", "1"]
    # CheckCRL 1: 14 where a CRL server would have to be asked, 16 where none is named.
    assert validate(app, [pointed.b64, pki["leaf"].b64], [pki["inter"].b64], "1")[1] == ["14", "16"]


# -- the request itself --------------------------------------------------------------------


@pytest.mark.parametrize("xml", [
    '<ValidateCert xmlns="ValidateCert:"/>',
    '<ValidateCert xmlns="ValidateCert:"><Certificates/></ValidateCert>',
    ('<ValidateCert xmlns="ValidateCert:"><Certificates><Certificate>x</Certificate></Certificates>'
    "<CheckCRL>yes</CheckCRL></ValidateCert>"),
    ('<ValidateCert xmlns="ValidateCert:"><Certificates><Certificate>x</Certificate></Certificates>'
    "<Certificates><Certificate>y</Certificate></Certificates></ValidateCert>"),
    '<ValidateCert xmlns="ValidateCert:"><Certificates><Status>1</Status></Certificates></ValidateCert>',
    ('<ValidateCert xmlns="ValidateCert:"><Certificates><Certificate>x</Certificate></Certificates>'
    "<Status>1</Status></ValidateCert>"),
    '<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval></Ping>',
], ids=["empty", "no-certificate", "bad-checkcrl", "two-lists", "wrong-child", "unknown-element", "other-command"])
@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_malformed_requests_are_status_2(tmp_path: Path, pki: dict[str, Issued], xml: str, version: str) -> None:
    app = app_for(tmp_path, pki["root"])

    async def go() -> Reply:
        return await client(app, version=version).command("ValidateCert", xml)

    top, each = statuses(run(go()))
    assert top == "2" and each == []


@pytest.mark.parametrize(("version", "http_status", "status"), [("12.1", 400, None), ("16.1", 200, "102")])
def test_broken_wbxml(tmp_path: Path, pki: dict[str, Issued], version: str, http_status: int,
                      status: str | None) -> None:
    """The core's answer to a body that is not WBXML: HTTP 400 before 14.0, the common
    status 102 (InvalidWBXML) in ValidateCert's Status from 14.0."""
    app = app_for(tmp_path, pki["root"])

    async def go() -> Reply:
        return await client(app, version=version).raw("ValidateCert", b"\x03\x01\x6a\x00\x00\x0b\x45\x46")

    reply = run(go())
    assert reply.status == http_status
    assert (reply.text(VC.Status) if reply.node is not None else None) == status


def test_unreadable_trust_store_is_17(tmp_path: Path, pki: dict[str, Issued]) -> None:
    app = app_for(tmp_path, None, trust_store=str(tmp_path / "missing.pem"))
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64]) == ("17", [])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    app = app_for(tmp_path / "2", None, trust_store=str(garbage))
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64]) == ("17", [])
    bad_crls = tmp_path / "crls.der"
    bad_crls.write_bytes(b"\x30\x03\x02\x01\x01")
    (tmp_path / "3").mkdir()
    app = app_for(tmp_path / "3", pki["root"], crl_file=str(bad_crls))
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64]) == ("17", [])


def test_system_bundle_by_default(tmp_path: Path, pki: dict[str, Issued]) -> None:
    if not Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        pytest.fail("this test needs the system CA bundle")
    app = app_for(tmp_path, None)
    assert validate(app, [pki["leaf"].b64], [pki["inter"].b64, pki["root"].b64])[1] == ["4"]


def test_a_thousand_certificates(tmp_path: Path, pki: dict[str, Issued]) -> None:
    leaves = [issue(f"user{i}", pki["inter"], eku=EMAIL, key=pki["leaf"].key) for i in range(1000)]
    expired = issue("old", pki["inter"], eku=EMAIL, start=-30 * DAY, end=-DAY)
    certs = [leaf.b64 for leaf in leaves]
    certs[500] = expired.b64
    app = app_for(tmp_path, pki["root"])
    started = time.perf_counter()
    top, each = validate(app, certs, [pki["inter"].b64])
    elapsed = time.perf_counter() - started
    assert top == "1" and len(each) == 1000
    assert each[500] == "7" and each.count("1") == 999
    assert elapsed < 30, elapsed
    # One more is over the limit: refused as a whole.
    assert validate(app, [*certs, pki["leaf"].b64], [pki["inter"].b64]) == ("2", [])


def test_same_named_impostors_cost_bounded_work(tmp_path: Path, pki: dict[str, Issued]) -> None:
    """Sixteen chain certificates all named like the real CA, none its key, and a
    thousand certificates to check against them: each answered 3, in bounded time
    (a few signature checks per step, not every candidate for every certificate)."""
    impostors = [issue("Test Mail CA", pki["root"], ca=True, start=-5 * DAY, end=1000 * DAY) for _ in range(16)]
    certs = [issue(f"u{i}", pki["inter"], eku=EMAIL, key=pki["leaf"].key).b64 for i in range(1000)]
    app = app_for(tmp_path, pki["root"])
    started = time.perf_counter()
    top, each = validate(app, certs, [i.b64 for i in impostors])
    elapsed = time.perf_counter() - started
    assert top == "1" and each == ["3"] * 1000
    assert elapsed < 20, elapsed
    # A seventeenth chain certificate is over the limit.
    assert validate(app, certs[:1], [i.b64 for i in impostors] + [pki["inter"].b64]) == ("2", [])
