"""ValidateCert (MS-ASCMD 2.2.1.22): is a certificate received with S/MIME mail good?

Each ``Certificates/Certificate`` (base64 DER) gets its own Status (MS-ASCMD
2.2.3.177.18), with ``CertificateChain`` offering the intermediates. The path to a
trusted root is built and checked here with cryptography's primitives (issuer by name,
signature, validity, time nesting, CA basic constraints and path length, key usage,
extended key usage emailProtection), so that a failure gets the status that names it;
a path that passes is then verified by cryptography's own X.509 verifier
(``cryptography.x509.verification``) as the final word. That verifier's client and
server policies demand clientAuth/serverAuth, which S/MIME certificates do not carry, so
it runs with extension policies of our own: CAs must have basicConstraints, the
end-entity's extensions are checked here (emailProtection or anyExtendedKeyUsage when it
has an EKU at all).

The trust store is ``Config.trust_store`` (a PEM bundle), else the system bundle.
Revocation: this server makes no network requests, so CRLs are only those of
``Config.crl_file``. A certificate listed there is revoked (13; 15 for a CA of its
chain) whatever CheckCRL says; one whose status no local CRL gives is unverifiable,
which CheckCRL 0 (the default) ignores and CheckCRL 1 answers with 14 (the certificate
names a CRL or OCSP server that would have to be asked) or 16 (it names none).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import functools
import itertools
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from eas.commands import text
from eas.tags import ValidateCert as VC
from eas.wbxml import Node, Writer

if TYPE_CHECKING:
    from eas.config import Config
    from eas.context import Context
    from eas.protocol.http import HTTPResponse

log = logging.getLogger("eas.validatecert")
_E = TypeVar("_E", bound=x509.ExtensionType)

# MS-ASCMD 2.2.3.177.18
VALID = 1
PROTOCOL_ERROR = 2
BAD_SIGNATURE = 3
UNTRUSTED = 4
BAD_CHAIN = 5
NOT_FOR_EMAIL = 6
EXPIRED = 7
NOT_TIME_NESTED = 8
WRONG_PURPOSE = 9  # a CA of the chain whose EKU excludes e-mail
MISSING_INFO = 10
CA_MISUSED = 11  # a non-CA certificate used as a CA, a CA as the end entity, a path too long
ADDRESS_MISMATCH = 12
REVOKED = 13
CRL_UNREACHABLE = 14
CHAIN_REVOKED = 15
REVOCATION_UNKNOWN = 16
SERVER_ERROR = 17  # top level: the command failed

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MAX_CERTIFICATES = 1000  # to validate, per request
MAX_CHAIN = 16  # offered intermediates (a real chain has two or three)
MAX_ISSUER_TRIES = 4  # same-named issuers whose signature is tried, per step up
MAX_CERTIFICATE_TEXT = 64 * 1024  # base64 characters of one certificate
MAX_DEPTH = 8  # certificates above the end entity


class Malformed(Exception):
    """The request does not have the ValidateCert shape (Status 2)."""


async def handle(ctx: Context) -> HTTPResponse:
    try:
        certificates, chain, check_crl = _read(ctx.body)
    except Malformed as e:
        log.debug("ValidateCert refused: %s", e)
        return ctx.respond(_answer(PROTOCOL_ERROR, []))
    try:
        trust = load_trust(ctx.config)
    except (OSError, ValueError) as e:
        log.error("ValidateCert: trust store unusable: %s", e)
        return ctx.respond(_answer(SERVER_ERROR, []))
    # Up to a thousand signature checks: off the event loop.
    statuses = await asyncio.to_thread(validate_all, certificates, chain, trust, check_crl)
    return ctx.respond(_answer(VALID, statuses))


def _answer(status: int, statuses: Sequence[int]) -> Writer:
    w = Writer()
    with w.tag(VC.ValidateCert):
        w.leaf(VC.Status, status)
        for one in statuses:
            with w.tag(VC.Certificate):
                w.leaf(VC.Status, one)
    return w


def _read(body: Node | None) -> tuple[list[str], list[str], bool]:
    """``(certificates, chain, check_crl)``: the base64 texts, unchecked."""
    if body is None or body.tag != VC.ValidateCert:
        raise Malformed("not a ValidateCert request")
    certificates: list[str] | None = None
    chain: list[str] | None = None
    check_crl: bool | None = None
    for child in body:
        if child.tag == VC.Certificates and certificates is None:
            certificates = _list(child, MAX_CERTIFICATES)
        elif child.tag == VC.CertificateChain and chain is None:
            chain = _list(child, MAX_CHAIN)
        elif child.tag == VC.CheckCRL and check_crl is None:
            value = text(child).strip()
            if value not in ("0", "1"):
                raise Malformed(f"CheckCRL {value[:8]!r}")
            check_crl = value == "1"
        else:
            raise Malformed("unexpected or repeated element")
    if not certificates:
        raise Malformed("no certificate to validate")
    return certificates, chain or [], bool(check_crl)


def _list(node: Node, limit: int) -> list[str]:
    out = []
    for child in node:
        if child.tag != VC.Certificate or child.children:
            raise Malformed("a Certificates list holds Certificate elements only")
        value = text(child)
        if len(value) > MAX_CERTIFICATE_TEXT:
            raise Malformed("certificate too large")
        out.append(value)
        if len(out) > limit:
            raise Malformed("too many certificates")
    return out


# -- the trust store -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trust:
    """Trusted roots (by subject, and as a verifier Store) and the local CRLs."""

    roots: tuple[x509.Certificate, ...]
    fingerprints: frozenset[bytes]
    store: Store
    crls: tuple[x509.CertificateRevocationList, ...]


def load_trust(config: Config) -> Trust:
    """The trust store of the configuration (read again when its files change)."""
    path = config.trust_store or SYSTEM_BUNDLE
    return _load(path, _stamp(path), config.crl_file, _stamp(config.crl_file) if config.crl_file else None)


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int], crl_path: str, crl_stamp: tuple[int, int] | None) -> Trust:
    with open(path, "rb") as f:
        roots = _pem_certificates(f.read())
    if not roots:
        raise ValueError(f"no certificate in {path}")
    crls: list[x509.CertificateRevocationList] = []
    if crl_path:
        with open(crl_path, "rb") as f:
            data = f.read()
        if b"-----BEGIN X509 CRL-----" in data:
            for block in data.split(b"-----END X509 CRL-----")[:-1]:
                crls.append(x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n"))
        else:
            crls.append(x509.load_der_x509_crl(data))
    return Trust(roots, frozenset(_fingerprint(c) for c in roots), Store(list(roots)),
                 tuple(crls))


def _pem_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM bundle, one by one: a system bundle may hold one that
    this cryptography refuses (or warns about), which must not cost the others."""
    end = b"-----END CERTIFICATE-----"
    out = []
    for block in data.split(end)[:-1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out.append(x509.load_pem_x509_certificate(block + end + b"\n"))
            except ValueError as e:
                log.warning("trust store: skipping a certificate: %s", e)
    return tuple(out)


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


# -- validation ------------------------------------------------------------------------------


def validate_all(certificates: Sequence[str], chain: Sequence[str], trust: Trust, check_crl: bool,
                 now: datetime.datetime | None = None) -> list[int]:
    """The Status of each certificate, in order."""
    now = now or datetime.datetime.now(datetime.UTC)
    intermediates = [c for c in (_decode(t) for t in chain) if c is not None]
    chain_unreadable = len(intermediates) != len(chain)
    out = []
    for value in certificates:
        leaf = _decode(value)
        if leaf is None:
            out.append(BAD_CHAIN)  # "invalid, incorrectly formatted certificate"
            continue
        status = validate(leaf, intermediates, trust, check_crl, now)
        if status == UNTRUSTED and chain_unreadable:
            status = BAD_CHAIN  # the missing link may be the chain certificate we could not read
        out.append(status)
    return out


def _decode(value: str) -> x509.Certificate | None:
    try:
        der = base64.b64decode("".join(value.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None


def validate(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], trust: Trust, check_crl: bool,
             now: datetime.datetime) -> int:
    """The Status of one certificate."""
    try:
        path = _build_path(leaf, intermediates, trust)
        if isinstance(path, int):
            return path
        status = _check_path(path, now) or _check_end_entity(leaf)
        if status:
            return status
        status = _verify(leaf, intermediates, trust, now)
        if status:
            return status
        return _revocation(path, trust, check_crl, now)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:  # an extension cryptography cannot parse
        log.debug("ValidateCert: %s", e)
        return MISSING_INFO


def _build_path(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                trust: Trust) -> list[x509.Certificate] | int:
    """The certificates from ``leaf`` up to a trusted root, or the Status saying why
    there is no such path."""
    path = [leaf]
    seen = {_fingerprint(leaf)}
    while _fingerprint(path[-1]) not in trust.fingerprints:
        current = path[-1]
        if len(path) > MAX_DEPTH:
            return CA_MISUSED
        if current.issuer == current.subject and _signed_by(current, current):
            return UNTRUSTED  # a self-signed certificate that is not a trusted root
        candidates = [c for c in (*trust.roots, *intermediates)
                      if c.subject == current.issuer and _fingerprint(c) not in seen]
        if not candidates:
            # The leaf's own issuer missing from a chain the client gave: the chain is wrong.
            return BAD_CHAIN if len(path) == 1 and intermediates else UNTRUSTED
        issuer = next((c for c in candidates[:MAX_ISSUER_TRIES] if _signed_by(current, c)), None)
        if issuer is None:
            return BAD_SIGNATURE
        path.append(issuer)
        seen.add(_fingerprint(issuer))
    return path


@functools.lru_cache(maxsize=1024)  # the steps above the end entity repeat for every one
def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_path(path: Sequence[x509.Certificate], now: datetime.datetime) -> int | None:
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return EXPIRED
    # Nesting below the trusted root only: a root outlived by the CAs it signed (cross-
    # signed chains) is the trust store's business, and common.
    for child, issuer in itertools.pairwise(path[:-1]):
        if child.not_valid_before_utc < issuer.not_valid_before_utc or \
                child.not_valid_after_utc > issuer.not_valid_after_utc:
            return NOT_TIME_NESTED
    for depth, ca in enumerate(path[1:]):  # depth: CAs between this one and the end entity
        constraints = _extension(ca, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            return CA_MISUSED
        if constraints.path_length is not None and depth > constraints.path_length:
            return CA_MISUSED
        usage = _extension(ca, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            return CA_MISUSED
        eku = _extension(ca, x509.ExtendedKeyUsage)
        if eku is not None and not _email_purpose(eku):
            return WRONG_PURPOSE
    return None


def _check_end_entity(leaf: x509.Certificate) -> int | None:
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return CA_MISUSED
    eku = _extension(leaf, x509.ExtendedKeyUsage)
    if eku is not None and not _email_purpose(eku):
        return NOT_FOR_EMAIL
    usage = _extension(leaf, x509.KeyUsage)
    if usage is not None and not (usage.digital_signature or usage.content_commitment or usage.key_encipherment
                                  or usage.key_agreement):
        return NOT_FOR_EMAIL
    return None


def _email_purpose(eku: x509.ExtendedKeyUsage) -> bool:
    return ExtendedKeyUsageOID.EMAIL_PROTECTION in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


_CA_POLICY = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)


def _verify(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], trust: Trust,
            now: datetime.datetime) -> int | None:
    """cryptography's verifier on what our own checks passed (what they do not cover:
    unknown critical extensions, name constraints, weak keys and digests)."""
    verifier = (PolicyBuilder().store(trust.store).time(now).max_chain_depth(MAX_DEPTH)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
                .build_client_verifier())
    try:
        verifier.verify(leaf, list(intermediates))
    except VerificationError as e:
        log.debug("ValidateCert: verifier refused %s: %s", leaf.subject.rfc4514_string(), e)
        return BAD_CHAIN
    return None


def _revocation(path: Sequence[x509.Certificate], trust: Trust, check_crl: bool, now: datetime.datetime) -> int:
    """Revocation from the local CRLs (see the module docstring)."""
    for index, cert in enumerate(path[:-1]):  # the root is trusted as it is
        issuer = path[index + 1]
        crl = next((c for c in trust.crls if c.issuer == cert.issuer and _current(c, now)
                    and c.is_signature_valid(issuer.public_key())), None)  # type: ignore[arg-type]
        if crl is not None:
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return REVOKED if index == 0 else CHAIN_REVOKED
        elif check_crl:
            return CRL_UNREACHABLE if _names_revocation_server(cert) else REVOCATION_UNKNOWN
    return VALID


def _current(crl: x509.CertificateRevocationList, now: datetime.datetime) -> bool:
    next_update = crl.next_update_utc
    return crl.last_update_utc <= now and (next_update is None or now <= next_update)


def _names_revocation_server(cert: x509.Certificate) -> bool:
    if _extension(cert, x509.CRLDistributionPoints) is not None:
        return True
    access = _extension(cert, x509.AuthorityInformationAccess)
    return access is not None and any(d.access_method == AuthorityInformationAccessOID.OCSP for d in access)
