#!/usr/bin/env python3
"""Independent reference implementation of meshtrace protocol v1 test vectors.

Written from docs/protocol.md, not from the Rust code: it uses the
`cryptography` package for X25519, HKDF-SHA256 and Ed25519 and encodes the
protobuf messages by hand. `protocol/tests/vectors.rs` asserts that the Rust
implementation reproduces every value. Regenerate with:

    python3 protocol/tests/vectors/generate.py
"""

import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = os.path.dirname(os.path.abspath(__file__))


def h(b: bytes) -> str:
    return b.hex()


def seed(label: str) -> bytes:
    return hashlib.sha256(b"meshtrace test vector " + label.encode()).digest()


# ---------------------------------------------------------------- tokens (§4)
TOKEN_SALT = b"meshtrace/v1/encounter-token/salt"
TOKEN_INFO = b"meshtrace/v1/encounter-token"


def x25519_pub(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def token(secret: bytes, their_pub: bytes) -> bytes:
    mine = x25519_pub(secret)
    shared = X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PublicKey.from_public_bytes(their_pub))
    lo, hi = sorted([mine, their_pub])
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=TOKEN_SALT,
                info=TOKEN_INFO + lo + hi).derive(shared)


def shared_secret(secret: bytes, their_pub: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PublicKey.from_public_bytes(their_pub))


def tokens_vectors():
    cases = []
    for i in range(4):
        a = seed(f"x25519 a {i}")
        b = seed(f"x25519 b {i}")
        pa, pb = x25519_pub(a), x25519_pub(b)
        t = token(a, pb)
        assert t == token(b, pa)
        cases.append({
            "secret_a": h(a), "secret_b": h(b),
            "public_a": h(pa), "public_b": h(pb),
            "shared_secret": h(shared_secret(a, pb)),
            "token": h(t),
        })
    # Low-order points (RFC 7748 §6.1 / the Curve25519 small-subgroup list):
    # the shared secret is all zeros, so derivation must be refused.
    low_order = [
        "00" * 32,
        "01" + "00" * 31,
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ]
    return {"cases": cases, "low_order_public_keys": low_order,
            "low_order_secret": h(seed("x25519 low-order victim"))}


# ---------------------------------------------------------------- frames (§3)
UUID16 = 0xFCB7
VERSION = 1


def half_tag(id_: bytes) -> bytes:
    return hashlib.sha256(b"meshtrace/v1/half-tag" + bytes([VERSION]) + id_).digest()[:2]


def ad(service_data: bytes) -> bytes:
    u = UUID16.to_bytes(2, "little")
    return (bytes([2, 0x01, 0x06]) + bytes([3, 0x03]) + u
            + bytes([3 + len(service_data), 0x16]) + u + service_data)


def frames_vectors(ids):
    cases = []
    for id_, tx in zip(ids, [-8, 0, 4, -21]):
        txb = (tx & 0xFF).to_bytes(1, "big")
        ext = bytes([(VERSION << 4) | 0]) + txb + id_
        tag = half_tag(id_)
        first = bytes([(VERSION << 4) | 1]) + tag + txb + id_[:16]
        second = bytes([(VERSION << 4) | 2]) + tag + txb + id_[16:]
        assert len(ad(first)) == 31
        cases.append({
            "id": h(id_), "tx_power": tx, "half_tag": h(tag),
            "extended_service_data": h(ext), "extended_advertising_data": h(ad(ext)),
            "legacy_first_service_data": h(first), "legacy_second_service_data": h(second),
            "legacy_first_advertising_data": h(ad(first)),
            "legacy_second_advertising_data": h(ad(second)),
        })
    invalid = [
        {"service_data": "", "error": "empty"},
        {"service_data": "20" + "00" * 33, "error": "unsupported version"},
        {"service_data": "13" + "00" * 33, "error": "unknown kind"},
        {"service_data": "10" + "00" * 32, "error": "wrong length"},
        {"service_data": "11" + "00" * 20, "error": "wrong length"},
    ]
    return {"service_uuid16": UUID16, "cases": cases, "invalid": invalid}


# ---------------------------------------------------------------- protobuf (§8)
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_uint(tag: int, v: int) -> bytes:
    return b"" if v == 0 else varint(tag << 3) + varint(v)


def f_bytes(tag: int, v: bytes) -> bytes:
    return b"" if len(v) == 0 else varint((tag << 3) | 2) + varint(len(v)) + v


# ---------------------------------------------------------------- codes (§9)
def code(prefix: str, payload: bytes) -> str:
    checksum = hashlib.sha256(b"meshtrace/v1/code-checksum" + prefix.encode() + payload).digest()[:4]
    return prefix + base64.b32encode(payload + checksum).decode().rstrip("=")


def ed_pub(secret: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def ed_sign(secret: bytes, msg: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(secret).sign(msg)


def certificate(issuer_secret, network, report_pub, valid_from, valid_until, first, last, cap):
    body = (f_uint(1, 1) + f_bytes(2, network.encode()) + f_bytes(3, ed_pub(issuer_secret))
            + f_bytes(4, report_pub) + f_uint(5, valid_from) + f_uint(6, valid_until)
            + f_uint(7, first) + f_uint(8, last) + f_uint(9, cap))
    sig = ed_sign(issuer_secret, b"meshtrace/v1/certificate" + body)
    return body, sig, f_bytes(1, body) + f_bytes(2, sig)


def certificates_vectors():
    issuer = seed("ed25519 issuer")
    report = seed("ed25519 report")
    network = "campus-1"
    request = f_uint(1, 1) + f_bytes(2, network.encode()) + f_bytes(3, ed_pub(report))
    t0 = 1_800_000_000
    params = {"network_id": network, "valid_from": t0, "valid_until": t0 + 3 * 86400,
              "window_first_day": t0 // 86400 - 5, "window_last_day": t0 // 86400,
              "max_tokens": 4096}
    body, sig, cert = certificate(issuer, network, ed_pub(report), params["valid_from"],
                                  params["valid_until"], params["window_first_day"],
                                  params["window_last_day"], params["max_tokens"])
    return {
        "issuer_secret": h(issuer), "issuer_public": h(ed_pub(issuer)),
        "report_secret": h(report), "report_public": h(ed_pub(report)),
        "request_bytes": h(request), "request_code": code("MTRQ1:", request),
        "params": params, "certificate_body": h(body), "certificate_signature": h(sig),
        "certificate_bytes": h(cert), "certificate_code": code("MTCT1:", cert),
    }


# ---------------------------------------------------------------- announcements (§10)
BUCKETS = [64, 256, 1024, 2048]


def layout(n: int):
    for b in BUCKETS:
        if b >= n:
            return b, 1
    chunks = 1
    while chunks * 2048 < n:
        chunks *= 2
    return 2048, chunks


def announcement_case(label, n_real, cap):
    issuer = seed("ed25519 issuer")
    report = seed("ed25519 report " + label)
    network = "campus-1"
    t0 = 1_800_000_000
    body_c, sig_c, cert = certificate(issuer, network, ed_pub(report), t0, t0 + 3 * 86400,
                                      t0 // 86400 - 5, t0 // 86400, cap)
    real = [hashlib.sha256(f"{label} real token {i}".encode()).digest()[:16] for i in range(n_real)]
    per_chunk, chunks = layout(len(set(real)))
    total = per_chunk * chunks
    dummies = []
    i = 0
    allset = set(real)
    while len(allset) < total:
        d = hashlib.sha256(f"{label} dummy {i}".encode()).digest()[:16]
        i += 1
        dummies.append(d)
        allset.add(d)
    all_sorted = sorted(allset)
    created_at = t0 + 3600
    out = []
    for c in range(chunks):
        toks = b"".join(all_sorted[c * per_chunk:(c + 1) * per_chunk])
        body = (f_uint(1, 1) + f_bytes(2, network.encode()) + f_bytes(3, cert) + f_uint(4, c)
                + f_uint(5, chunks) + f_uint(6, created_at) + f_bytes(7, toks))
        sig = ed_sign(report, b"meshtrace/v1/announcement" + hashlib.sha256(body).digest())
        msg = f_bytes(1, body) + f_bytes(2, sig)
        assert len(msg) <= 65536
        out.append({"id": h(hashlib.sha256(msg).digest()), "bytes": h(msg)})
    return {
        "label": label, "report_secret": h(report), "certificate_bytes": h(cert),
        "created_at": created_at, "real_tokens": [h(t) for t in real],
        "dummy_tokens": [h(t) for t in dummies], "tokens_per_chunk": per_chunk,
        "chunk_count": chunks, "chunks": out,
    }


def announcements_vectors():
    return {
        "issuer_public": h(ed_pub(seed("ed25519 issuer"))),
        "network_id": "campus-1",
        "verify_at": 1_800_000_000 + 7200,
        "cases": [announcement_case("small", 3, 4096),
                  announcement_case("two-chunks", 2100, 4096)],
    }


# ---------------------------------------------------------------- risk (§7)
def weight(db):
    for below, w in [(55, 1.0), (63, 0.5), (73, 0.0)]:
        if db < below:
            return w
    return 0.0


def score(encs):
    encs = sorted(encs, key=lambda e: (e["first_seen"], e["last_seen"]))
    days = {}
    i = 0
    while i < len(encs):
        day = encs[i]["first_seen"] // 86400
        end = encs[i]["last_seen"]
        close = 0
        weighted = 0.0
        j = i
        while j < len(encs) and encs[j]["first_seen"] // 86400 == day and encs[j]["first_seen"] <= end + 300:
            end = max(end, encs[j]["last_seen"])
            close += sum(s for a, s in encs[j]["profile"] if a < 73)
            weighted += sum(weight(a) * s for a, s in encs[j]["profile"])
            j += 1
        i = j
        d = days.setdefault(day, {"day": day, "weighted_minutes": 0.0, "close_minutes": 0.0, "contacts": 0})
        if close >= 600:
            d["contacts"] += 1
            d["close_minutes"] += close / 60
            d["weighted_minutes"] += weighted / 60
    out = []
    for day in sorted(days):
        d = days[day]
        if d["contacts"] > 0:
            d["high_risk"] = d["weighted_minutes"] >= 15.0
            out.append(d)
    return out


def enc(start, profile):
    return {"first_seen": start, "last_seen": start + sum(s for _, s in profile), "profile": profile}


def risk_vectors():
    d = 20_000 * 86400 + 8 * 3600
    cases = [
        ("16 close minutes across a key rotation", [enc(d, [(50, 480)]), enc(d + 480, [(50, 480)])]),
        ("9 close minutes: below the minimum", [enc(d, [(50, 540)])]),
        ("an hour beyond 73 dB: dropped", [enc(d, [(80, 3600)])]),
        ("30 minutes at 60 dB: exactly 15 weighted", [enc(d, [(60, 900)]), enc(d + 900, [(60, 900)])]),
        ("mixed profile", [enc(d, [(45, 300), (58, 400), (70, 200), (90, 100)])]),
        ("two contacts, gap over 5 minutes", [enc(d, [(50, 600)]), enc(d + 600 + 301, [(50, 420)])]),
        ("two days", [enc(d, [(50, 700)]), enc(d + 86400, [(52, 1000)])]),
    ]
    return {"config": "defaults", "cases": [
        {"name": n, "encounters": e, "expected": score(e)} for n, e in cases]}


def main():
    tv = tokens_vectors()
    ids = [bytes.fromhex(c["public_a"]) for c in tv["cases"]]
    files = {
        "tokens.json": tv,
        "frames.json": frames_vectors(ids),
        "certificates.json": certificates_vectors(),
        "announcements.json": announcements_vectors(),
        "risk.json": risk_vectors(),
    }
    for name, data in files.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
