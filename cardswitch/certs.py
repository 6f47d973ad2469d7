"""``cardswitch certs init``: a local CA with a server and a client certificate for mTLS.

Terminals present ``client.pem``; the switch's acquiring port demands a client certificate signed
by ``ca.pem``. Development only: production uses the acquirer's PKI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardswitch.config import var_dir

FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


def certs_dir() -> Path:
    return var_dir() / "certs"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardswitch dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
           ca_name: x509.Name, *, is_ca: bool, usage: Any = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(ca_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=825 if not is_ca else 3650))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def init(directory: Path | None = None, force: bool = False) -> Path:
    """Creates the CA, server and client certificates; keeps existing ones unless ``force``."""
    out = directory or certs_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not force and all((out / f).exists() for f in FILES):
        return out
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cardswitch dev CA")
    ca = _issue("cardswitch dev CA", ca_key, ca_key, ca_name, is_ca=True)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(out / "ca.key", ca_key)
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"cardswitch {role}" if role == "client" else "localhost", key, ca_key,
                      ca_name, is_ca=False, usage=usage)
        (out / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(out / f"{role}.key", key)
    return out


def issue_server_certificate(name: str, directory: Path | None = None) -> tuple[Path, Path]:
    """``<name>.pem`` and ``<name>.key``: another server's certificate (localhost, 127.0.0.1)
    from the CA of :func:`init` (e.g. a wallet provider's HTTPS); kept if both exist."""
    d = init(directory)
    cert_path, key_path = d / f"{name}.pem", d / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue("localhost", key, ca_key, ca_cert.subject, is_ca=False,
                  usage=ExtendedKeyUsageOID.SERVER_AUTH)
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_credentials(directory: Path | None = None) -> Any:
    import grpc
    d = directory or certs_dir()
    return grpc.ssl_server_credentials(
        [((d / "server.key").read_bytes(), (d / "server.pem").read_bytes())],
        root_certificates=(d / "ca.pem").read_bytes(), require_client_auth=True)


def client_credentials(directory: Path | None = None) -> Any:
    import grpc
    d = directory or certs_dir()
    return grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.pem").read_bytes(),
        private_key=(d / "client.key").read_bytes(),
        certificate_chain=(d / "client.pem").read_bytes())


def _cmd_init(args: argparse.Namespace) -> int:
    out = init(Path(args.dir) if args.dir else None, force=args.force)
    print(f"certificates in {out}: {', '.join(FILES)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("certs", help="local CA and mTLS certificates")
    s = p.add_subparsers(dest="certs_command", required=True)
    i = s.add_parser("init", help="create ca.pem, server.pem, client.pem under var/certs")
    i.add_argument("--dir", help="output directory (default $CARDSWITCH_VAR/certs)")
    i.add_argument("--force", action="store_true", help="replace existing certificates")
    i.set_defaults(func=_cmd_init)
