"""Throwaway certificates for a local stack or a test: a CA and a server certificate
it signs, made with ``openssl`` (README: Secured connections).

The server certificate names ``127.0.0.1`` and ``localhost``, so clients that check
host names (redis-py, aiokafka) accept it when given the CA. Keys are unencrypted
PKCS#8 PEM, which both ``redis-server --tls-*`` and Kafka's ``ssl.keystore.type=PEM``
read as they are.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from switchyard.cli.stack.errors import StackError, ToolMissing

_OPENSSL_FIX = "install OpenSSL (apt-get install -y openssl)"


@dataclass(frozen=True)
class Certificates:
    """Where the CA and the server's certificate and key were written."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    @property
    def server_chain(self) -> Path:
        """Key, certificate and CA in one file (Kafka's PEM keystore)."""
        return self.server_cert.with_name("server-chain.pem")


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ToolMissing("openssl", _OPENSSL_FIX)
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed:\n{result.stderr[-2000:]}")


def make_certificates(folder: Path, days: int = 30) -> Certificates:
    """A new CA and a server certificate for 127.0.0.1/localhost in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
             "-subj", "/CN=switchyard test CA", "-keyout", str(ca_key), "-out", str(ca_cert),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    extensions = folder / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "basicConstraints=CA:FALSE\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", str(days), "-extfile", str(extensions),
             "-out", str(cert))  # fmt: skip
    made = Certificates(ca_cert=ca_cert, server_cert=cert, server_key=key)
    made.server_chain.write_text(key.read_text() + cert.read_text() + ca_cert.read_text())
    # The keys are only for this machine's servers: nobody else needs to read them.
    for private in (ca_key, key, made.server_chain):
        private.chmod(0o600)
    return made
