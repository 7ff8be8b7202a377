"""Certificates: the one certificate authority helper, and the local cluster's PKI built on it.

`CertificateAuthority` is an ECDSA P-256 CA kept as two PEM files that issues
server and client certificates into files. The cluster keeps one for ten
years under `.local/cluster/pki` (`ClusterPKI`: `<name>.crt` / `<name>.key`
per identity); its users make throwaway ones the same way (a test session's
CA, say).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (never world-readable, not even for a moment)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, valid_days: float) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )


class CertificateAuthority:
    """A CA that signs leaf certificates only (path length 0); its key and certificate are PEM files."""

    def __init__(self, cert_file: Path, key_file: Path, certificate: x509.Certificate, key) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.certificate = certificate
        self._key = key

    @classmethod
    def create(cls, cert_file: Path, key_file: Path, common_name: str, valid_days: float) -> CertificateAuthority:
        """A new CA, written to the two files (replacing what they held)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = (
            _builder(name, name, key.public_key(), valid_days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        cert_file.parent.mkdir(parents=True, exist_ok=True)
        _write_private(key_file, _pem_key(key))
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(cert_file, key_file, certificate, key)

    @classmethod
    def ensure(cls, cert_file: Path, key_file: Path, common_name: str, valid_days: float) -> CertificateAuthority:
        """The CA in the two files, made first if they do not exist yet."""
        if not (cert_file.exists() and key_file.exists()):
            return cls.create(cert_file, key_file, common_name, valid_days)
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        return cls(cert_file, key_file, certificate, key)

    def issue(
        self,
        cert_file: Path,
        key_file: Path,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
        client: bool = False,
        valid_days: float,
    ) -> None:
        """Issue a certificate with a new key into the two files: a server one for `server_names`
        (DNS names or IP addresses), a client one when `client` (Kubernetes maps its
        common name and organizations to a user and groups; other servers do the like), or both."""
        if not server_names and not client:
            raise ValueError("a certificate is for a server (server_names), a client, or both")
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            _builder(x509.Name(attributes), self.certificate.subject, key.public_key(), valid_days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in server_names]), critical=False
            )
        cert_file.parent.mkdir(parents=True, exist_ok=True)
        _write_private(key_file, _pem_key(key))
        cert_file.write_bytes(builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def write_rsa_keypair(key_file: Path, public_file: Path) -> None:
    """An RSA key pair (what the API server signs service-account tokens with)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    )
    public_file.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@dataclass(frozen=True)
class Identity:
    """Who a certificate of the cluster names: a file name, a common name (the user), organizations (its groups)."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()  # set: a serving certificate for these names, else a client one


class ClusterPKI:
    """The local cluster's certificates in one folder: `ca`, the service-account key `sa`, one pair per identity."""

    CA_DAYS = 3650
    LEAF_DAYS = 365

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str, ext: str) -> Path:
        return self.dir / f"{name}.{ext}"

    def cert(self, name: str) -> Path:
        return self.path(name, "crt")

    def key(self, name: str) -> Path:
        return self.path(name, "key")

    def ensure(self, identities: list[Identity]) -> None:
        """Make the CA, the service-account key and a certificate per identity, each once (kept across restarts);
        a serving certificate again when it no longer names all its identity's server names (a new address)."""
        ca = CertificateAuthority.ensure(self.cert("ca"), self.key("ca"), "es4ps-local-cluster-ca", self.CA_DAYS)
        if not self.key("sa").exists():
            write_rsa_keypair(self.key("sa"), self.path("sa", "pub"))
        for identity in identities:
            if self.cert(identity.name).exists() and set(identity.server_names) <= self._server_names(identity.name):
                continue
            ca.issue(
                self.cert(identity.name),
                self.key(identity.name),
                identity.common_name,
                organizations=identity.organizations,
                server_names=identity.server_names,
                client=not identity.server_names,
                valid_days=self.LEAF_DAYS,
            )

    def _server_names(self, name: str) -> set[str]:
        """The DNS names and addresses the certificate `name` is for (none for a client certificate)."""
        certificate = x509.load_pem_x509_certificate(self.cert(name).read_bytes())
        try:
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return set()
        return {*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))}

    def client_context(self, user: str = "admin", verify: bool = True) -> ssl.SSLContext:
        """TLS as `user` (a client certificate), trusting the cluster CA (or nothing, for probes of
        components whose serving certificates the CA did not issue)."""
        context = ssl.create_default_context(cafile=str(self.cert("ca")))
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(str(self.cert(user)), str(self.key(user)))
        return context
