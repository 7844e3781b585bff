"""`gpuforge endpoints` verifies the gateway's certificate before it sends the key: against the
certificate the gateway role pinned, a configured CA file, or the system store. A real local
HTTPS server (openssl-made certificates) stands in for the gateway."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from toolkit.cli.app import main
from toolkit.cli.endpoints import pinned_certificate, trust_anchor
from toolkit.errors import ExitCode
from toolkit.models.client import CertificateRefused, request, served_models

KEY = "gf-unit-0123456789abcdef"


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class _Gateway(http.server.BaseHTTPRequestHandler):
    seen_keys: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen_keys.append(self.headers.get("Authorization", ""))
        body = json.dumps({"object": "list", "data": [{"id": "tiny"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(base URL, the certificate it serves, another certificate)."""
    cert, key = _certificate(tmp_path, "served")
    other, _ = _certificate(tmp_path, "other")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Gateway.seen_keys = []
    yield f"https://127.0.0.1:{server.server_address[1]}/v1", cert, other
    server.shutdown()
    server.server_close()


def test_client_accepts_the_pinned_certificate_and_refuses_another(
        gateway: tuple[str, Path, Path]) -> None:
    url, cert, other = gateway
    assert request(url, "/models", KEY, ca_file=str(cert))[0] == 200
    with pytest.raises(CertificateRefused):
        request(url, "/models", KEY, ca_file=str(other))
    with pytest.raises(CertificateRefused):  # the system store does not know it either
        request(url, "/models", KEY, verify=True)
    # A pinned certificate need not name the address used (an inventory's ansible_host).
    localhost = url.replace("127.0.0.1", "localhost")
    with pytest.raises(CertificateRefused):
        request(localhost, "/models", KEY, ca_file=str(cert))
    assert request(localhost, "/models", KEY, ca_file=str(cert), pinned=True)[0] == 200
    with pytest.raises(CertificateRefused):
        request(localhost, "/models", KEY, ca_file=str(other), pinned=True)
    # The key went only where the certificate verified.
    assert _Gateway.seen_keys == [f"Bearer {KEY}"] * 2


def test_served_models_is_empty_when_nothing_answers(tmp_path: Path) -> None:
    assert served_models("https://127.0.0.1:9/v1", KEY, verify=True) == []


def test_trust_anchor_prefers_the_configured_ca_then_the_pin(state_dir: Path,
                                                             tmp_path: Path) -> None:
    assert trust_anchor("h1", {}) == (None, "system CA store")
    pin = pinned_certificate("h1")
    pin.parent.mkdir(parents=True)
    pin.write_text("pem")
    assert trust_anchor("h1", {})[0] == str(pin)
    # A provided certificate is not the generated one: the pin no longer applies.
    assert trust_anchor("h1", {"gateway_tls_cert_src": "/x.crt"})[0] is None
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert trust_anchor("h1", {"gateway_tls_ca_file": str(ca)}) == (str(ca), f"CA file {ca}")
    # Host names that are not plain file names never select a file.
    assert trust_anchor("../h1", {})[0] is None


def _inventory(tmp_path: Path, url: str, extra: str = "") -> Path:
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    port = url.split(":")[2].split("/")[0]
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    gw1:\n      ansible_host: 127.0.0.1\n"
                   f"      gpuforge_published_ports: {{'443': {port}}}\n"
                   f"      gateway_api_key_file: {key_file}\n{extra}")
    return inv


def test_endpoints_uses_the_pinned_certificate(state_dir: Path, tmp_path: Path,
                                               gateway: tuple[str, Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url, cert, _ = gateway
    pin = pinned_certificate("gw1")
    pin.parent.mkdir(parents=True)
    shutil.copy(cert, pin)
    assert main(["endpoints", "-i", str(_inventory(tmp_path, url)), "--json"]) == 0
    host = json.loads(capsys.readouterr().out)["hosts"]["gw1"]
    assert host["models"] == ["tiny"] and host["models_from"] == "gateway"
    assert host["tls_verified_with"] == f"pinned certificate {pin}"


def test_endpoints_refuses_a_mismatched_certificate_with_exit_4(
        state_dir: Path, tmp_path: Path, gateway: tuple[str, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, _, other = gateway
    pin = pinned_certificate("gw1")
    pin.parent.mkdir(parents=True)
    shutil.copy(other, pin)
    rc = main(["endpoints", "-i", str(_inventory(tmp_path, url)), "--json"])
    err = capsys.readouterr().err
    assert rc == ExitCode.UNREACHABLE == 4
    assert f"host gw1: the gateway at {url} presented a certificate that does not verify" in err
    assert f"pinned certificate {pin}" in err and "the API key was not sent" in err
    assert "Hint:" in err and "Traceback" not in err
    assert _Gateway.seen_keys == []


def test_endpoints_names_a_missing_ca_file_with_exit_3(
        state_dir: Path, tmp_path: Path, gateway: tuple[str, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, _, _ = gateway
    inv = _inventory(tmp_path, url, f"      gateway_tls_ca_file: {tmp_path / 'none.pem'}\n")
    assert main(["endpoints", "-i", str(inv)]) == ExitCode.INVALID_INPUT
    err = capsys.readouterr().err
    assert f"gateway_tls_ca_file of host gw1: {tmp_path / 'none.pem'} is not a file" in err
