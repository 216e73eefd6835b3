"""SIGHUP reloads the certificate and key without dropping sessions."""
import asyncio
import datetime
import hashlib
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import DOMAIN, HOST, RawStream, client_ctx, healthy_pair, still_healthy


def seen_cert(srv, via="direct"):
    """(sha256 fingerprint, serial) of the certificate the server presents now, verified
    against the dev CA for 'localhost'."""
    ctx = client_ctx(srv)
    if via == "direct":
        s = socket.create_connection((HOST, srv.tls_port), timeout=5)
        t = ctx.wrap_socket(s, server_hostname=DOMAIN)
    else:
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        t = rs.starttls(srv, ctx)
    der = t.getpeercert(binary_form=True)
    serial = t.getpeercert()["serialNumber"]
    t.close()
    return hashlib.sha256(der).hexdigest(), int(serial, 16)


def issue_cert(srv):
    """Issue a new server certificate from the dev CA; returns (cert_pem, key_pem, serial)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        import ipaddress
    except ImportError:
        return issue_cert_openssl(srv)
    with open(srv.ca, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(srv.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serial = x509.random_serial_number()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            serial)


def issue_cert_openssl(srv):
    d = srv.dir
    k, csr, crt, ext = (os.path.join(d, n) for n in ("new.key", "new.csr", "new.crt", "new.ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", k,
                    "-subj", "/CN=localhost", "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", srv.ca, "-CAkey", srv.ca_key,
                    "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    out = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-serial"], check=True,
                         capture_output=True, text=True).stdout
    with open(crt, "rb") as f1, open(k, "rb") as f2:
        return f1.read(), f2.read(), int(out.strip().split("=", 1)[1], 16)


def install(srv, cert_pem, key_pem):
    for path, data in ((srv.key, key_pem), (srv.cert, cert_pem)):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def test_sighup_reloads_certificate_without_dropping_sessions(srv, run):
    fp0, serial0 = seen_cert(srv)
    assert seen_cert(srv, "starttls")[0] == fp0

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        cert_pem, key_pem, serial1 = issue_cert(srv)
        assert serial1 != serial0
        install(srv, cert_pem, key_pem)
        srv.hup()
        deadline = time.monotonic() + 10
        fp1 = fp0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            fp1, s1 = await asyncio.to_thread(seen_cert, srv)
            if fp1 != fp0:
                break
        assert fp1 != fp0, "new connections still see the old certificate after SIGHUP"
        assert s1 == serial1, f"serial {s1:x}, expected {serial1:x}"
        assert (await asyncio.to_thread(seen_cert, srv, "starttls"))[1] == serial1
        # sessions opened before the HUP still chat
        await still_healthy(a, b)
        # and new slixmpp logins verify the new certificate
        c = await cl.login("carol", "new")
        assert c.connected()
        from cryptography import x509  # noqa: F401 (only to read the serial)
        der = c.socket.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == fp1
    run(scenario)
    assert srv.alive()


def test_sighup_with_broken_key_keeps_old_certificate(srv, run):
    fp0, _ = seen_cert(srv)

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        _, wrong_key, _ = issue_cert(srv)       # a key that does not match server.crt
        with open(srv.cert, "rb") as f:
            cert = f.read()
        install(srv, cert, wrong_key)
        srv.hup()
        await asyncio.sleep(1.0)
        assert srv.alive(), "parleyd died on a failed reload"
        fp, _ = await asyncio.to_thread(seen_cert, srv)
        assert fp == fp0
        await still_healthy(a, b)
        c = await cl.login("carol", "new")
        assert c.connected()
    run(scenario)


def test_repeated_sighup(srv, run):
    async def scenario():
        cl, a, b = await healthy_pair(srv)
        for _ in range(5):
            srv.hup()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert srv.alive()
        await still_healthy(a, b)
    run(scenario)
