#!/usr/bin/env python3
"""Independent reference implementation of meshtrace protocol v2 test vectors.

Written from docs/protocol.md, not from the Rust code: it uses the
`cryptography` package for X25519, HKDF-SHA256 and Ed25519 and encodes the
protobuf messages by hand. `protocol/tests/vectors.rs` asserts that the Rust
implementation reproduces every value. Regenerate with:

    python3 protocol/tests/vectors/generate.py

and check that the committed files are what it produces with

    python3 protocol/tests/vectors/generate.py --check
"""

import base64
import hashlib
import json
import math
import os
import sys

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
TOKEN_SALT = b"meshtrace/v2/encounter-token/salt"
TOKEN_INFO = b"meshtrace/v2/encounter-token"


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
VERSION = 2


def half_tag(id_: bytes) -> bytes:
    return hashlib.sha256(b"meshtrace/v2/half-tag" + bytes([VERSION]) + id_).digest()[:2]


def ad(service_data: bytes) -> bytes:
    u = UUID16.to_bytes(2, "little")
    return (bytes([2, 0x01, 0x06]) + bytes([3, 0x03]) + u
            + bytes([3 + len(service_data), 0x16]) + u + service_data)


def frames_vectors(ids):
    """§3: a frame is the rotating ID alone (no TX power on the air)."""
    cases = []
    for id_ in ids:
        ext = bytes([(VERSION << 4) | 0]) + id_
        tag = half_tag(id_)
        first = bytes([(VERSION << 4) | 1]) + tag + id_[:16]
        second = bytes([(VERSION << 4) | 2]) + tag + id_[16:]
        assert (len(ext), len(first), len(ad(first)), len(ad(ext))) == (33, 19, 30, 44)
        cases.append({
            "id": h(id_), "half_tag": h(tag),
            "extended_service_data": h(ext), "extended_advertising_data": h(ad(ext)),
            "legacy_first_service_data": h(first), "legacy_second_service_data": h(second),
            "legacy_first_advertising_data": h(ad(first)),
            "legacy_second_advertising_data": h(ad(second)),
        })
    invalid = [
        {"service_data": "", "error": "empty"},
        {"service_data": "10" + "00" * 33, "error": "unsupported version"},
        {"service_data": "30" + "00" * 33, "error": "unsupported version"},
        {"service_data": "23" + "00" * 33, "error": "unknown kind"},
        {"service_data": "20" + "00" * 33, "error": "wrong length"},
        {"service_data": "20" + "00" * 31, "error": "wrong length"},
        {"service_data": "21" + "00" * 19, "error": "wrong length"},
        {"service_data": "21" + "00" * 20, "error": "wrong length"},
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


def zigzag32(v: int) -> int:
    """§8.1: a `sint32` value as its unsigned varint (ZigZag)."""
    return (v << 1) ^ (v >> 31) if -2 ** 31 <= v < 2 ** 31 else v


def f_sint(tag: int, v: int) -> bytes:
    return f_uint(tag, zigzag32(v))


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
    body = (f_uint(1, 2) + f_bytes(2, network.encode()) + f_bytes(3, ed_pub(issuer_secret))
            + f_bytes(4, report_pub) + f_uint(5, valid_from) + f_uint(6, valid_until)
            + f_uint(7, first) + f_uint(8, last) + f_uint(9, cap))
    sig = ed_sign(issuer_secret, b"meshtrace/v2/certificate" + body)
    return body, sig, f_bytes(1, body) + f_bytes(2, sig)


def certificates_vectors():
    issuer = seed("ed25519 issuer")
    report = seed("ed25519 report")
    network = "campus-1"
    request = f_uint(1, 2) + f_bytes(2, network.encode()) + f_bytes(3, ed_pub(report))
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
BUCKETS = [64, 128, 256, 512, 1024, 2048]
FINGERPRINT_BITS = 56


def layout(n: int):
    for b in BUCKETS:
        if b >= n:
            return b, 1
    chunks = 1
    while chunks * 2048 < n:
        chunks *= 2
    return 2048, chunks


def fingerprint(tok: bytes) -> int:
    """§4.4: the first FINGERPRINT_BITS bits of the token, big-endian."""
    return int.from_bytes(tok, "big") >> (128 - FINGERPRINT_BITS)


def gcs_encode(fps):
    """§10.3: Golomb-Rice coding of ascending distinct fingerprints."""
    n = len(fps)
    p = FINGERPRINT_BITS - (n.bit_length() - 1)
    assert 1 << (n.bit_length() - 1) == n
    bits = []
    prev = 0
    for f in fps:
        d = f - prev
        prev = f
        bits += [1] * (d >> p) + [0]
        bits += [(d >> i) & 1 for i in range(p - 1, -1, -1)]
    bits += [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, bits[k:k + 8])), 2) for k in range(0, len(bits), 8))


def announcement_body(network, cert, index, count, created_at, fps, version=2, coded=None, n=None,
                      tx_power=0, tx_raw=None):
    """An encoded AnnouncementBody (§10.3 step 6): `fps` coded (step 5), or
    the raw `coded` bytes and count `n` when given (for out-of-spec bodies);
    `tx_power` as a sint32, or `tx_raw` as the field's raw varint value."""
    coded = gcs_encode(fps) if coded is None else coded
    n = len(fps) if n is None else n
    tx = f_sint(9, tx_power) if tx_raw is None else f_uint(9, tx_raw)
    return (f_uint(1, version) + f_bytes(2, network.encode()) + f_bytes(3, cert) + f_uint(4, index)
            + f_uint(5, count) + f_uint(6, created_at) + f_bytes(7, coded) + f_uint(8, n) + tx)


def announcement_message(report, body, signature=None):
    """An encoded Announcement: `body` signed by `report` (or `signature`)."""
    if signature is None:
        signature = ed_sign(report, b"meshtrace/v2/announcement" + hashlib.sha256(body).digest())
    return f_bytes(1, body) + f_bytes(2, signature)


def announcement_case(label, n_real, cap, tx_power):
    issuer = seed("ed25519 issuer")
    report = seed("ed25519 report " + label)
    network = "campus-1"
    t0 = 1_800_000_000
    body_c, sig_c, cert = certificate(issuer, network, ed_pub(report), t0, t0 + 3 * 86400,
                                      t0 // 86400 - 5, t0 // 86400, cap)
    real = [hashlib.sha256(f"{label} real token {i}".encode()).digest()[:16] for i in range(n_real)]
    real_fps = {fingerprint(t) for t in real}
    per_chunk, chunks = layout(len(real_fps))
    total = per_chunk * chunks
    dummies = []
    i = 0
    allset = set(real_fps)
    while len(allset) < total:
        d = hashlib.sha256(f"{label} dummy {i}".encode()).digest()[:8]
        i += 1
        dummies.append(d)
        allset.add(int.from_bytes(d, "big") >> (64 - FINGERPRINT_BITS))
    all_sorted = sorted(allset)
    created_at = t0 + 3600
    out = []
    for c in range(chunks):
        fps = all_sorted[c * per_chunk:(c + 1) * per_chunk]
        body = announcement_body(network, cert, c, chunks, created_at, fps, tx_power=tx_power)
        msg = announcement_message(report, body)
        assert len(msg) <= 65536
        out.append({"id": h(hashlib.sha256(msg).digest()), "bytes": h(msg),
                    "fingerprints": [format(f, "014x") for f in fps]})
    return {
        "label": label, "report_secret": h(report), "certificate_bytes": h(cert),
        "created_at": created_at, "tx_power": tx_power, "real_tokens": [h(t) for t in real],
        "real_fingerprints": [format(f, "014x") for f in sorted(real_fps)],
        "dummy_draws": [h(t) for t in dummies], "entries_per_chunk": per_chunk,
        "chunk_count": chunks, "chunks": out,
    }


def announcements_vectors():
    return {
        "issuer_public": h(ed_pub(seed("ed25519 issuer"))),
        "network_id": "campus-1",
        "verify_at": 1_800_000_000 + 7200,
        "cases": [announcement_case("small", 3, 4096, -8),
                  announcement_case("medium", 300, 4096, 0),
                  announcement_case("two-chunks", 2100, 4096, 12)],
        "refused": [version1_chunk()],
    }


def version1_chunk():
    """A chunk whose body says version 1, otherwise valid and signed: refused
    (§1.3) before anything else is looked at."""
    issuer = seed("ed25519 issuer")
    report = seed("ed25519 report small")
    t0 = 1_800_000_000
    _, _, cert = certificate(issuer, "campus-1", ed_pub(report), t0, t0 + 3 * 86400,
                             t0 // 86400 - 5, t0 // 86400, 4096)
    fps = sorted(int.from_bytes(hashlib.sha256(f"v1 {i}".encode()).digest()[:7], "big")
                 for i in range(64))
    body = (f_uint(1, 1) + f_bytes(2, b"campus-1") + f_bytes(3, cert) + f_uint(5, 1)
            + f_uint(6, t0 + 3600) + f_bytes(7, gcs_encode(fps)) + f_uint(8, 64))
    sig = ed_sign(report, b"meshtrace/v2/announcement" + hashlib.sha256(body).digest())
    return {"label": "version 1", "bytes": h(f_bytes(1, body) + f_bytes(2, sig)),
            "error": "version 1"}


# ---------------------------------------------------------------- crediting (§6)
MAX_SIGHTING_GAP = 300
ENCOUNTER_IDLE = 300
MAX_SPAN = 1800
MAX_SCAN_CREDIT = 300
SCAN_SLACK = 1
MAX_RECEPTIONS_PER_WINDOW = 32


class Tracker:
    """§6 for one receiver whose sightings all yield a token (keys are not
    modelled: crediting does not depend on them)."""

    def __init__(self):
        self.open = {}        # id -> encounter state
        self.closed = []
        self.scans = None     # (current, previous); window = dict(seq, start, end, credit)

    def scan(self, start, end):
        end = max(end, start)
        own = min(end - start, MAX_SCAN_CREDIT)
        if self.scans is None:
            self.scans = ({"seq": 0, "start": start, "end": end, "credit": own}, None)
            return
        cur, prev = self.scans
        if start == cur["start"]:
            cur["end"] = max(cur["end"], end)
            return
        seq = cur["seq"] + 1
        if start > cur["start"]:
            credit = min(start - cur["start"], MAX_SCAN_CREDIT)
            self.scans = ({"seq": seq, "start": start, "end": end, "credit": credit}, cur)
        else:
            self.scans = ({"seq": seq, "start": start, "end": end, "credit": own}, None)

    @staticmethod
    def ends_at(e, now):
        sub = lambda a, b: max(a - b, 0)
        return (sub(now, e["last_seen"]) > ENCOUNTER_IDLE or sub(now, e["first_seen"]) > MAX_SPAN
                or sub(e["first_seen"], now) > ENCOUNTER_IDLE)

    @staticmethod
    def window_level(p):
        v = sorted(p["levels"])
        return v[(len(v) - 1) // 2]

    def snapshot(self, ident, e):
        prof = dict(e["profile"])
        for p in e["pending"]:
            a = self.window_level(p)
            prof[a] = prof.get(a, 0) + p["credit"]
        return {"id": ident, "first_seen": e["first_seen"], "last_seen": e["last_seen"],
                "sightings": e["sightings"],
                "profile": [[a, s] for a, s in sorted(prof.items()) if s > 0]}

    def sighting(self, ident, level, at):
        e = self.open.get(ident)
        if e is not None and self.ends_at(e, at):
            self.closed.append(self.snapshot(ident, e))
            del self.open[ident]
            e = None
        if e is None:
            e = {"first_seen": at, "last_seen": at, "sightings": 0, "profile": {},
                 "last_level": level, "pending": []}
            self.open[ident] = e
        e["sightings"] += 1
        if self.scans is not None:
            cur, prev = self.scans
            oldest = prev["seq"] if prev else cur["seq"]
            keep = []
            for p in e["pending"]:
                if p["seq"] < oldest:
                    a = self.window_level(p)
                    e["profile"][a] = e["profile"].get(a, 0) + p["credit"]
                else:
                    keep.append(p)
            e["pending"] = keep
            holds = lambda w: w is not None and w["start"] <= at <= w["end"] + SCAN_SLACK
            w = cur if holds(cur) else (prev if holds(prev) else None)
            if w is not None:
                for p in e["pending"]:
                    if p["seq"] == w["seq"]:
                        if len(p["levels"]) < MAX_RECEPTIONS_PER_WINDOW:
                            p["levels"].append(level)
                        break
                else:
                    e["pending"].append({"seq": w["seq"], "credit": w["credit"], "levels": [level]})
            if at > e["last_seen"]:
                e["last_seen"] = at
            elif at < e["first_seen"]:
                e["first_seen"] = at
            return
        if at > e["last_seen"]:
            gap = at - e["last_seen"]
            if gap <= MAX_SIGHTING_GAP:
                mean = (e["last_level"] + level + 1) // 2
                e["profile"][mean] = e["profile"].get(mean, 0) + gap
            e["last_seen"] = at
            e["last_level"] = level
        elif at < e["first_seen"]:
            e["first_seen"] = at

    def close_all(self):
        for ident in sorted(self.open):
            self.closed.append(self.snapshot(ident, self.open[ident]))
        self.open = {}
        return sorted(self.closed, key=lambda e: (e["id"], e["first_seen"]))


def crediting_case(name, events):
    tr = Tracker()
    for ev in events:
        if ev[0] == "scan":
            tr.scan(ev[1], ev[2])
        else:
            tr.sighting(ev[1], ev[2], ev[3])
    return {"name": name, "events": [list(e) for e in events], "encounters": tr.close_all()}


def crediting_vectors():
    t = 20_000 * 86400 + 8 * 3600  # an epoch start
    cases = []
    # A 4 s scan every `interval` s, a constant 50 dB contact of 600 s.
    for interval in (10, 60, 240):
        # The radio was already scanning before the contact began.
        ev = [("scan", t - interval, t - interval + 4)]
        k = 0
        while k * interval < 600:
            ev.append(("scan", t + k * interval, t + k * interval + 4))
            ev.append(("sighting", "a", 50, t + k * interval + 1))
            k += 1
        cases.append(crediting_case(f"constant contact, scan every {interval} s", ev))
    ev = []
    for k in range(6):
        ev.append(("scan", t + 60 * k, t + 60 * k + 4))
        if k in (1, 2, 4):
            for i, a in enumerate([50, 70, 60] if k == 1 else [55]):
                ev.append(("sighting", "a", a, t + 60 * k + i))
        if k == 3:
            ev.append(("sighting", "b", 66, t + 60 * k + 3))
    cases.append(crediting_case("median of a window, a missed window, two IDs", ev))
    cases.append(crediting_case("a long silence is capped, the first window credits its length", [
        ("scan", t, t + 4), ("sighting", "a", 48, t + 1),
        ("scan", t + 400, t + 404), ("sighting", "a", 48, t + 402)]))
    cases.append(crediting_case("late, outside, repeated and backwards windows", [
        ("scan", t, t + 4), ("scan", t + 30, t + 34), ("sighting", "a", 52, t + 5),
        ("sighting", "a", 52, t + 20), ("scan", t + 30, t + 40), ("sighting", "a", 61, t + 38),
        ("scan", t + 10, t + 16), ("sighting", "a", 57, t + 12),
        ("scan", t + 100, t + 90), ("sighting", "a", 57, t + 100)]))
    cases.append(crediting_case("no window ever: first to last", [
        ("sighting", "a", 50, t), ("sighting", "a", 60, t + 100), ("sighting", "a", 51, t + 250),
        ("sighting", "a", 51, t + 600)]))
    return {"max_scan_credit_seconds": MAX_SCAN_CREDIT, "scan_window_slack_seconds": SCAN_SLACK,
            "cases": cases}


# ---------------------------------------------------------------- risk (§7)
def weight(db):
    for below, w in [(55, 1.0), (63, 0.5), (73, 0.0)]:
        if db < below:
            return w
    return 0.0


def score_cwa(encs):
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
            d["estimated_minutes"] = d["weighted_minutes"]
            d["high_risk"] = d["weighted_minutes"] >= 15.0
            out.append(d)
    return out


CALIBRATED = {
    "attenuation_at_1m_db": 45.0,
    "path_loss_exponent": 2.5,
    "body_loss_db": 3.6,
    "contact_sigma_db": 8.1,
    "reception_sigma_db": 5.0,
    "close_distance_m": 2.0,
    "min_confidence": 0.3,
}
CALIBRATED_SESSION_GAP = 600
HIGH_RISK_MINUTES = 15.0


def normal_cdf(z):
    """Φ(z) = erfc(−z/√2)/2 with Numerical Recipes' erfcc (§7.3)."""
    x = -z / math.sqrt(2.0)
    ax = abs(x)
    t = 1.0 / (1.0 + 0.5 * ax)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    r = t * math.exp(-ax * ax + poly)
    erfc = r if x >= 0.0 else 2.0 - r
    return min(max(0.5 * erfc, 0.0), 1.0)


def confidence(p, level, sightings):
    n = float(max(sightings, 1))
    fast = p["reception_sigma_db"] * p["reception_sigma_db"] * (math.pi / 2) / n
    sigma = math.sqrt(p["contact_sigma_db"] * p["contact_sigma_db"] + fast)
    close = p["attenuation_at_1m_db"] + p["body_loss_db"] + 10.0 * p["path_loss_exponent"] * math.log10(p["close_distance_m"])
    return normal_cdf((close - level) / sigma)


def contacts(encs, p=CALIBRATED, gap=CALIBRATED_SESSION_GAP):
    encs = sorted(encs, key=lambda e: (e["first_seen"], e["last_seen"]))
    sessions = []
    end = 0
    for e in encs:
        if sessions and sessions[-1][0]["first_seen"] // 86400 == e["first_seen"] // 86400 \
                and e["first_seen"] <= end + gap:
            end = max(end, e["last_seen"])
            sessions[-1].append(e)
        else:
            end = e["last_seen"]
            sessions.append([e])
    out = []
    for s in sessions:
        prof = {}
        sightings = 0
        parts = []
        for e in s:
            sightings += e["sightings"]
            own = {}
            for a, secs in e["profile"]:
                if a < 255:
                    prof[a] = prof.get(a, 0) + secs
                    own[a] = own.get(a, 0) + secs
            own_total, own_level = weighted_median(own)
            if own_level is not None:
                parts.append({"heard_minutes": own_total / 60.0, "level_db": own_level,
                              "confidence": confidence(p, float(own_level), e["sightings"])})
        total, level = weighted_median(prof)
        conf = 0.0 if level is None else confidence(p, float(level), sightings)
        estimated = 0.0
        weighted = 0.0
        for q in parts:
            if q["confidence"] >= p["min_confidence"]:
                estimated += q["heard_minutes"]
            weighted += q["confidence"] * q["heard_minutes"]
        out.append({"day": s[0]["first_seen"] // 86400, "first_seen": s[0]["first_seen"],
                    "last_seen": max(e["last_seen"] for e in s), "heard_minutes": total / 60.0,
                    "level_db": level, "confidence": conf,
                    "estimated_minutes": estimated, "weighted_minutes": weighted,
                    "parts": parts})
    return out


def weighted_median(prof):
    """§7.3: (total seconds, the smallest dB at which the running sum of
    seconds reaches half the total; None when the total is 0)."""
    total = sum(prof.values())
    cum = 0
    for a in sorted(prof):
        cum += prof[a]
        if total > 0 and float(cum) >= 0.5 * float(total):
            return total, a
    return total, None


def score_calibrated(encs):
    days = {}
    for c in contacts(encs):
        if c["level_db"] is None:
            continue
        d = days.setdefault(c["day"], {"day": c["day"], "weighted_minutes": 0.0, "close_minutes": 0.0,
                                       "contacts": 0, "estimated_minutes": 0.0})
        d["contacts"] += 1
        d["close_minutes"] += c["heard_minutes"]
        d["weighted_minutes"] += c["weighted_minutes"]
        d["estimated_minutes"] += c["estimated_minutes"]
    out = []
    for day in sorted(days):
        d = days[day]
        d["high_risk"] = d["estimated_minutes"] >= HIGH_RISK_MINUTES
        out.append(d)
    return out


RSSI_UNKNOWN = 127


def received_level(rssi, rx_correction):
    """§5: the receiver's received level of one reception."""
    if rssi == RSSI_UNKNOWN:
        return 255
    return min(max(-(rssi + rx_correction), 0), 255)


def attenuation(tx_power, level):
    """§5: the attenuation of a level under the reporter's TX power."""
    if level == 255:
        return 255
    return min(max(tx_power + level, 0), 255)


def with_attenuations(encs, tx_power):
    """§5, §7: the encounters with their level profiles as attenuations,
    entries that clamp to the same dB merged."""
    out = []
    for e in encs:
        prof = []
        for level, secs in e["profile"]:
            a = attenuation(tx_power, level)
            if prof and prof[-1][0] == a:
                prof[-1] = (a, prof[-1][1] + secs)
            else:
                prof.append((a, secs))
        out.append(dict(e, profile=prof))
    return out


def levels_vectors():
    """§5: (rssi, rx_correction_db) → level, (tx_power, level) → attenuation."""
    levels = [(-60, 0), (-60, 5), (-60, -5), (20, 0), (-32768, -32768), (32767, 32767),
              (RSSI_UNKNOWN, 0), (RSSI_UNKNOWN, -20), (126, 0), (-255, 0), (-256, 0)]
    atts = [(0, 60), (-10, 55), (-14, 10), (127, 200), (-128, 254), (-128, 255), (-8, 255),
            (20, 235), (20, 234)]
    return ([{"rssi": r, "rx_correction_db": c, "level_db": received_level(r, c)} for r, c in levels],
            [{"tx_power": t, "level_db": l, "attenuation_db": attenuation(t, l)} for t, l in atts])


def enc(start, profile, sightings=None):
    secs = sum(s for _, s in profile)
    return {"first_seen": start, "last_seen": start + secs, "profile": profile,
            "sightings": sightings if sightings is not None else max(1, secs // 60)}


def risk_vectors():
    d = 20_000 * 86400 + 8 * 3600
    # (name, encounters with level profiles, the report's TX power)
    cwa = [
        ("16 close minutes across a key rotation", [enc(d, [(50, 480)]), enc(d + 480, [(50, 480)])]),
        ("9 close minutes: below the minimum", [enc(d, [(50, 540)])]),
        ("an hour beyond 73 dB: dropped", [enc(d, [(80, 3600)])]),
        ("30 minutes at 60 dB: exactly 15 weighted", [enc(d, [(60, 900)]), enc(d + 900, [(60, 900)])]),
        ("mixed profile", [enc(d, [(45, 300), (58, 400), (70, 200), (90, 100)])]),
        ("two contacts, gap over 5 minutes", [enc(d, [(50, 600)]), enc(d + 600 + 301, [(50, 420)])]),
        ("two days", [enc(d, [(50, 700)]), enc(d + 86400, [(52, 1000)])]),
    ]
    cwa = [(n, e, 0) for n, e in cwa] + [
        ("30 minutes at a level of 68 dB from a reporter at -8 dBm: 60 dB, 15 weighted",
         [enc(d, [(68, 1800)])], -8),
        ("the same from a reporter at +4 dBm: 72 dB, weight 0", [enc(d, [(68, 1800)])], 4),
        ("the same from a reporter at +10 dBm: 78 dB, dropped", [enc(d, [(68, 1800)])], 10),
        ("levels 2 and 5 dB at -8 dBm both clamp to 0 dB", [enc(d, [(2, 300), (5, 400)])], -8),
        ("unknown stays unknown at -128 dBm", [enc(d, [(255, 1800), (250, 600)])], -128),
    ]
    cal = [
        ("20 minutes at 50 dB across a rotation", [enc(d, [(50, 600)]), enc(d + 600, [(52, 600)])]),
        ("14 close minutes: below the threshold", [enc(d, [(49, 840)])]),
        ("an hour at 75 dB: not close", [enc(d, [(75, 3600)])]),
        ("the median decides, not the mean", [enc(d, [(44, 500), (58, 300), (90, 400)], 20)]),
        ("one reception at 55 dB", [enc(d, [(55, 240)], 1)]),
        ("sparse scans: encounters 8 minutes apart join", [enc(d, [(53, 480)], 2), enc(d + 480 + 480, [(53, 480)], 2)]),
        ("two contacts in a day add up", [enc(d, [(51, 540)]), enc(d + 4 * 3600, [(54, 480)])]),
        ("unknown attenuation only: no contact", [enc(d, [(255, 1800)])]),
        ("near the decision level", [enc(d, [(62, 1200)], 40), enc(d + 3600, [(60, 1200)], 1)]),
        ("two days", [enc(d, [(50, 700)]), enc(d + 86400, [(70, 1000)])]),
        ("a close half hour, then an hour further away: the close encounters count",
         [enc(d + 900 * k, [(50 if k < 2 else 75, 900)], 15) for k in range(6)]),
        ("the same contact's close half hour alone: the same estimate",
         [enc(d + 900 * k, [(50, 900)], 15) for k in range(2)]),
    ]
    cal = [(n, e, 0) for n, e in cal] + [
        ("20 minutes at a level of 60 dB from a reporter at -10 dBm: 50 dB", [enc(d, [(60, 1200)])], -10),
        ("+20 dBm: 240 dB clamps to 255 and joins the unknown seconds",
         [enc(d, [(40, 300), (240, 600), (255, 600)], 20)], 20),
        ("-128 dBm: every known level clamps to 0 dB", [enc(d, [(100, 900)], 15)], -128),
        ("unknown stays unknown at -128 dBm: no contact", [enc(d, [(255, 1800)])], -128),
    ]
    levels, atts = levels_vectors()
    return {
        "levels": levels,
        "attenuations": atts,
        "cwa": {"config": "defaults, model cwa", "cases": [
            {"name": n, "tx_power": t, "encounters": e, "expected": score_cwa(with_attenuations(e, t))}
            for n, e, t in cwa]},
        "calibrated": {"config": "defaults", "params": CALIBRATED,
                       "session_gap_seconds": CALIBRATED_SESSION_GAP,
                       "high_risk_minutes": HIGH_RISK_MINUTES,
                       "normal_cdf": [[z, normal_cdf(z)] for z in (-6.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.96, 3.0, 8.0)],
                       "cases": [{"name": n, "tx_power": t, "encounters": e,
                                  "contacts": contacts(with_attenuations(e, t)),
                                  "expected": score_calibrated(with_attenuations(e, t))}
                                 for n, e, t in cal]},
        "crediting": crediting_vectors(),
    }


# ================================================================ refusals (§16)
# Everything below is a second, independent reading of the refusal rules:
# decoders and verifiers written from §2.5, §3.4–§3.5, §4.2, §8.2, §9.2–§9.4
# and §10.5, which compute the expected code of every vector (the generator
# also asserts it is the code the case was built to show).

ED_P = 2 ** 255 - 19
ED_L = 2 ** 252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_I = pow(2, (ED_P - 1) // 4, ED_P)
ED_ID = (0, 1, 1, 0)  # extended coordinates of the neutral point


def ed_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % ED_P
    B = (y1 + x1) * (y2 + x2) % ED_P
    C = 2 * t1 * t2 * ED_D % ED_P
    D = 2 * z1 * z2 % ED_P
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % ED_P, G * H % ED_P, F * G % ED_P, E * H % ED_P)


def ed_mul(s, pt):
    q = ED_ID
    while s > 0:
        if s & 1:
            q = ed_add(q, pt)
        pt = ed_add(pt, pt)
        s >>= 1
    return q


def ed_neg(pt):
    x, y, z, t = pt
    return ((-x) % ED_P, y, z, (-t) % ED_P)


def ed_eq(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % ED_P == 0 and (a[1] * b[2] - b[1] * a[2]) % ED_P == 0


def ed_encode(pt):
    x, y, z, _ = pt
    zi = pow(z, ED_P - 2, ED_P)
    x, y = x * zi % ED_P, y * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_decode(b, canonical=True):
    """RFC 8032 §5.1.3. `canonical`: refuse y ≥ p and x = 0 with the sign bit
    set (§2.5 rule 1); otherwise reduce y like a lenient decoder."""
    v = int.from_bytes(b, "little")
    sign = v >> 255
    y = v & (2 ** 255 - 1)
    if y >= ED_P:
        if canonical:
            return None
        y -= ED_P
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P != 0:
        x = x * ED_I % ED_P
    if (x * x - x2) % ED_P != 0:
        return None
    if x == 0 and sign and canonical:
        return None
    if x & 1 != sign:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


ED_B = ed_decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))


def ed_small_order(pt):
    return ed_eq(ed_mul(8, pt), ED_ID)


def ed_verify_strict(pub, msg, sig):
    """§2.5 rules 1–5."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    a = ed_decode(pub)
    if a is None or ed_small_order(a):
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= ED_L:
        return False
    r = ed_decode(sig[:32])
    if r is None or ed_small_order(r):
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % ED_L
    return ed_encode(ed_add(ed_mul(s, ED_B), ed_neg(ed_mul(k, a)))) == sig[:32]


def ed_k(r_bytes, a_bytes, msg):
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + msg).digest(), "little") % ED_L


def ed_scalar(label):
    return int.from_bytes(hashlib.sha512(seed(label)).digest(), "little") % ED_L


# Small-order points (canonical encodings), §2.5.
SMALL_ORDER = [bytes.fromhex(x) for x in [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]]
NONCANONICAL_IDENTITY = (ED_P + 1).to_bytes(32, "little")  # y = p + 1


def crafted_signatures(msg):
    """Signatures over `msg` that each break exactly the rule named (where a
    signature that breaks only that rule exists), as (name, public, sig,
    valid). `valid` is what §2.5 says; the equation column notes whether the
    cofactorless equation alone would accept it."""
    out = []
    a = ed_scalar("strict a")
    A = ed_mul(a, ED_B)
    A_b = ed_encode(A)
    r = ed_scalar("strict r")
    R_b = ed_encode(ed_mul(r, ED_B))
    s = (r + ed_k(R_b, A_b, msg) * a) % ED_L
    good = R_b + s.to_bytes(32, "little")
    out.append(("valid signature", A_b, good, True))
    # S ≥ L: the same signature with S + L; [S + L]B = [S]B.
    out.append(("S >= L (S + L of a valid signature)", A_b,
                R_b + (s + ED_L).to_bytes(32, "little"), False))
    # Small-order A: the identity, R = [S]B makes the equation hold.
    for i, small in enumerate(SMALL_ORDER[:1] + SMALL_ORDER[4:5]):
        T = ed_decode(small)
        n = 0
        while True:
            rr = ed_scalar(f"strict small-order A {i} {n}")
            n += 1
            k = ed_k(ed_encode(ed_mul(rr, ED_B)), small, msg)
            # [S]B − [k]T = R requires [k]T = 0: k ≡ 0 (mod order of T).
            if ed_eq(ed_mul(k, T), ED_ID):
                break
        R2 = ed_encode(ed_mul(rr, ED_B))
        out.append((f"small-order A {small[:4].hex()}…, equation holds", small,
                    R2 + rr.to_bytes(32, "little"), False))
    # Small-order R: R = neutral point and S = k·a, so [S]B − [k]A = 0.
    k = ed_k(SMALL_ORDER[0], A_b, msg)
    out.append(("small-order R (neutral point), equation holds", A_b,
                SMALL_ORDER[0] + (k * a % ED_L).to_bytes(32, "little"), False))
    # Non-canonical R: y = p + 1 (the neutral point again), S = k·a.
    k = ed_k(NONCANONICAL_IDENTITY, A_b, msg)
    out.append(("non-canonical R (y = p + 1)", A_b,
                NONCANONICAL_IDENTITY + (k * a % ED_L).to_bytes(32, "little"), False))
    # Non-canonical A: y = p + 1 encodes the neutral point; R = [S]B.
    rr = ed_scalar("strict non-canonical A")
    out.append(("non-canonical A (y = p + 1), equation holds for the reduced point",
                NONCANONICAL_IDENTITY, ed_encode(ed_mul(rr, ED_B)) + rr.to_bytes(32, "little"),
                False))
    # Non-canonical A of large order: y = p + y0 for the smallest y0 that is
    # on the curve. Nobody knows its discrete log, so no signature can
    # satisfy the equation; this shows only that such a key is refused.
    y0 = next(y for y in range(2, 19) if ed_decode(y.to_bytes(32, "little")) is not None
              and not ed_small_order(ed_decode(y.to_bytes(32, "little"))))
    out.append((f"non-canonical A (y = p + {y0})", (ED_P + y0).to_bytes(32, "little"), good, False))
    # A is not a point.
    y_bad = next(y for y in range(2, 100) if ed_decode(y.to_bytes(32, "little")) is None)
    out.append(("A is not a curve point", y_bad.to_bytes(32, "little"), good, False))
    # Mixed-order A (large order plus an order-8 component): accepted when
    # k ≡ 0 (mod 8), which its key holder can arrange. §2.5 does not refuse it.
    T8 = ed_decode(SMALL_ORDER[4])
    Am = ed_encode(ed_add(A, T8))
    n = 0
    while True:
        rr = ed_scalar(f"strict mixed-order {n}")
        n += 1
        Rm = ed_encode(ed_mul(rr, ED_B))
        k = ed_k(Rm, Am, msg)
        if k % 8 == 0:
            break
    out.append(("mixed-order A, k ≡ 0 (mod 8): accepted", Am,
                Rm + ((rr + k * a) % ED_L).to_bytes(32, "little"), True))
    # A tampered message.
    out.append(("another message", A_b, R_b + ((s + 1) % ED_L).to_bytes(32, "little"), False))
    for name, pub, sig, valid in out:
        assert ed_verify_strict(pub, msg, sig) == valid, name
    return out, a


# ---------------------------------------------------------------- a second decoder (§8.2)
def pb_varint(buf, pos):
    """M1: (value, new position) or None."""
    v = 0
    for i in range(10):
        if pos >= len(buf):
            return None
        b = buf[pos]
        pos += 1
        if i == 9 and b > 1:
            return None
        v |= (b & 0x7F) << (7 * i)
        if b & 0x80 == 0:
            return v, pos
    return None


# Schemas: field number -> (name, kind); kind "u32", "u64", "s32", "string", "bytes".
REQUEST_SCHEMA = {1: ("version", "u32"), 2: ("network_id", "string"), 3: ("report_key", "bytes")}
CERT_SCHEMA = {1: ("body", "bytes"), 2: ("signature", "bytes")}
CERT_BODY_SCHEMA = {1: ("version", "u32"), 2: ("network_id", "string"), 3: ("issuer_key", "bytes"),
                    4: ("report_key", "bytes"), 5: ("valid_from", "u64"), 6: ("valid_until", "u64"),
                    7: ("window_first_day", "u32"), 8: ("window_last_day", "u32"),
                    9: ("max_tokens", "u32")}
ANN_SCHEMA = CERT_SCHEMA
ANN_BODY_SCHEMA = {1: ("version", "u32"), 2: ("network_id", "string"), 3: ("certificate", "bytes"),
                   4: ("chunk_index", "u32"), 5: ("chunk_count", "u32"), 6: ("created_at", "u64"),
                   7: ("fingerprints", "bytes"), 8: ("fingerprint_count", "u32"),
                   9: ("tx_power", "s32")}
VARINT_KINDS = ("u32", "u64", "s32")


class Refused(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def pb_decode(buf, schema, limit):
    """§8.2 steps 1–3. Returns {name: value} with defaults filled in."""
    if len(buf) > limit:
        raise Refused("too_long")
    fields = []  # (number, wire type, raw value, value start, minimal)
    pos = 0
    while pos < len(buf):
        start = pos
        kv = pb_varint(buf, pos)
        if kv is None:
            raise Refused("malformed")
        key, pos = kv
        key_minimal = pos - start == len(varint(key))
        if key > 0xFFFFFFFF or key >> 3 == 0:
            raise Refused("malformed")
        wt = key & 7
        if wt == 0:
            vv = pb_varint(buf, pos)
            if vv is None:
                raise Refused("malformed")
            vstart = pos
            value, pos = vv
            minimal = key_minimal and pos - vstart == len(varint(value))
        elif wt == 2:
            vv = pb_varint(buf, pos)
            if vv is None:
                raise Refused("malformed")
            vstart = pos
            n, pos = vv
            minimal = key_minimal and pos - vstart == len(varint(n))
            if n > len(buf) - pos:
                raise Refused("malformed")
            value = bytes(buf[pos:pos + n])
            pos += n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if n > len(buf) - pos:
                raise Refused("malformed")
            value = bytes(buf[pos:pos + n])
            pos += n
            minimal = key_minimal
        else:
            raise Refused("malformed")
        fields.append((key >> 3, wt, value, minimal))
    for num, wt, value, _ in fields:  # M5, M6
        if num in schema:
            kind = schema[num][1]
            if wt != (0 if kind in VARINT_KINDS else 2):
                raise Refused("malformed")
            if kind == "string":
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    raise Refused("malformed")
    prev = 0
    for num, wt, value, minimal in fields:  # C1–C5
        if num not in schema or num <= prev or not minimal:
            raise Refused("non_canonical")
        if (wt == 0 and value == 0) or (wt == 2 and len(value) == 0):
            raise Refused("non_canonical")
        if schema[num][1] in ("u32", "s32") and value >= 2 ** 32:
            raise Refused("non_canonical")
        prev = num
    out = {}
    for num, (name, kind) in schema.items():
        out[name] = 0 if kind in VARINT_KINDS else (b"" if kind == "bytes" else "")
    for num, wt, value, _ in fields:
        name, kind = schema[num]
        if kind == "s32":  # ZigZag: 0, -1, 1, -2, … (C5 kept it below 2^32)
            value = (value >> 1) ^ -(value & 1)
        out[name] = value.decode() if kind == "string" else value
    return out


def valid_network_id(n):
    return 1 <= len(n.encode()) <= 64 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in n)


def py_decode_request(buf):
    m = pb_decode(buf, REQUEST_SCHEMA, 128)
    if m["version"] == 1:
        raise Refused("version_1")
    if m["version"] != 2:
        raise Refused("unsupported_version")
    if not valid_network_id(m["network_id"]):
        raise Refused("bad_network_id")
    if len(m["report_key"]) != 32:
        raise Refused("wrong_length")
    return m


def py_check_params(b):
    if not valid_network_id(b["network_id"]):
        raise Refused("bad_network_id")
    if b["valid_until"] < b["valid_from"]:
        raise Refused("validity_reversed")
    if b["valid_until"] - b["valid_from"] > 2_592_000:
        raise Refused("validity_too_long")
    if b["window_last_day"] < b["window_first_day"]:
        raise Refused("window_reversed")
    if b["window_last_day"] - b["window_first_day"] >= 15:
        raise Refused("window_too_long")
    if not 1 <= b["max_tokens"] <= 131_072:
        raise Refused("token_cap_out_of_range")
    if b["window_last_day"] > (b["valid_until"] + 600) // 86400:
        raise Refused("window_after_validity")


def py_decode_certificate(buf):
    """§9.4 steps 1–7: the certificate body fields."""
    m = pb_decode(buf, CERT_SCHEMA, 320)
    if len(m["signature"]) != 64:
        raise Refused("wrong_length")
    b = pb_decode(m["body"], CERT_BODY_SCHEMA, 320)
    if b["version"] == 1:
        raise Refused("version_1")
    if b["version"] != 2:
        raise Refused("unsupported_version")
    if len(b["issuer_key"]) != 32 or len(b["report_key"]) != 32:
        raise Refused("wrong_length")
    py_check_params(b)
    if not ed_verify_strict(b["issuer_key"], b"meshtrace/v2/certificate" + m["body"], m["signature"]):
        raise Refused("bad_certificate_signature")
    return b


def py_usable(b, t):
    if t + 600 < b["valid_from"]:
        raise Refused("certificate_not_yet_valid")
    if max(t - 600, 0) > b["valid_until"]:
        raise Refused("certificate_expired")


def py_trust(b, network, trusted):
    if b["network_id"] != network:
        raise Refused("wrong_network")
    if b["issuer_key"] not in trusted:
        raise Refused("untrusted_issuer")


def py_verify_announcement(buf, network, trusted, now):
    """§10.5, steps 1–18 in order."""
    m = pb_decode(buf, ANN_SCHEMA, 65536)                               # 1
    if len(m["signature"]) != 64:                                       # 2
        raise Refused("wrong_length")
    b = pb_decode(m["body"], ANN_BODY_SCHEMA, 65536)                    # 3
    if b["version"] == 1:                                               # 4
        raise Refused("version_1")
    if b["version"] != 2:
        raise Refused("unsupported_version")
    if len(b["certificate"]) > 320:                                     # 5
        raise Refused("certificate_too_large")
    c = py_decode_certificate(b["certificate"])                         # 6
    if now >= (c["window_last_day"] + 15) * 86400:                      # 7
        raise Refused("announcement_expired")
    if b["network_id"] != c["network_id"]:                              # 8
        raise Refused("network_mismatch")
    py_trust(c, network, trusted)                                       # 9
    signed = b"meshtrace/v2/announcement" + hashlib.sha256(m["body"]).digest()
    if not ed_verify_strict(c["report_key"], signed, m["signature"]):   # 10
        raise Refused("bad_announcement_signature")
    py_usable(c, b["created_at"])                                       # 11
    if b["created_at"] > now + 600:                                     # 12
        raise Refused("from_the_future")
    if b["chunk_count"] not in (1, 2, 4, 8, 16, 32, 64):                # 13
        raise Refused("bad_chunk_count")
    if b["chunk_index"] >= b["chunk_count"]:                            # 14
        raise Refused("chunk_index_out_of_range")
    n = b["fingerprint_count"]
    if (b["chunk_count"] == 1 and n not in BUCKETS) or (b["chunk_count"] > 1 and n != 2048):  # 15
        raise Refused("not_a_padding_bucket")
    if n * b["chunk_count"] > c["max_tokens"]:                          # 16
        raise Refused("over_token_cap")
    py_gcs_decode(b["fingerprints"], n)                                 # 17
    if not -128 <= b["tx_power"] <= 127:                                # 18
        raise Refused("tx_power_out_of_range")


def py_gcs_decode(data, n):
    """§10.5 step 17: the `n` fingerprints coded in `data`, or the refusal."""
    p = FINGERPRINT_BITS - (n.bit_length() - 1)
    total = len(data) * 8
    pos = 0

    def bit():
        nonlocal pos
        if pos >= total:
            raise Refused("fingerprints_truncated")
        b = (data[pos // 8] >> (7 - pos % 8)) & 1
        pos += 1
        return b

    out = []
    prev = 0
    for i in range(n):
        q = 0
        while bit():
            q += 1
            if q << p >= 1 << FINGERPRINT_BITS:
                raise Refused("fingerprint_out_of_range")
        r = 0
        for _ in range(p):
            r = (r << 1) | bit()
        d = (q << p) | r
        if i > 0 and d == 0:
            raise Refused("fingerprints_not_ascending")
        prev += d
        if prev >= 1 << FINGERPRINT_BITS:
            raise Refused("fingerprint_out_of_range")
        out.append(prev)
    if total - pos >= 8 or any(bit() for _ in range(total - pos)):
        raise Refused("fingerprints_trailing_bits")
    return out


B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# The Unicode White_Space property (§9.2 step 1).
WHITE_SPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                  + "".join(chr(c) for c in range(0x2000, 0x200B)))


def py_fields_end_at(buf, end):
    """§9.2 step 5: whether the protobuf fields of `buf` end exactly at `end`."""
    def rd(pos):
        v = 0
        for i in range(10):
            if pos >= len(buf):
                return None
            b = buf[pos]
            pos += 1
            v |= (b & 0x7F) << (7 * i)
            if b & 0x80 == 0:
                return v % 2 ** 64, pos
        return None
    pos = 0
    while pos < end:
        kv = rd(pos)
        if kv is None:
            return False
        key, pos = kv
        wt = key & 7
        if wt == 0:
            vv = rd(pos)
            if vv is None:
                return False
            pos, skip = vv[1], 0
        elif wt == 2:
            vv = rd(pos)
            if vv is None:
                return False
            skip, pos = vv
        elif wt in (1, 5):
            skip = 8 if wt == 1 else 4
        else:
            return False
        if pos + skip > len(buf):
            return False
        pos += skip
    return pos == end


def py_read_code(prefix, text, max_payload):
    """§9.2 steps 1–5: the payload bytes."""
    cleaned = "".join(c.upper() if "a" <= c <= "z" else c for c in text
                      if not (c in WHITE_SPACE or c == "-"))
    if not cleaned.startswith(prefix):
        raise Refused("wrong_prefix")
    body = cleaned[len(prefix):]
    if len(body.encode()) > -(-(max_payload + 4) // 5) * 8:
        raise Refused("too_long")
    if any(c not in B32 for c in body):
        raise Refused("bad_base32")
    if len(body) % 8 in (1, 3, 6):
        raise Refused("truncated_code")
    bits = "".join(format(B32.index(c), "05b") for c in body)
    nbytes = len(bits) // 8
    if "1" in bits[nbytes * 8:]:
        raise Refused("truncated_code")
    buf = int(bits[:nbytes * 8] or "0", 2).to_bytes(nbytes, "big")
    if len(buf) < 4:
        raise Refused("truncated_code")
    payload, checksum = buf[:-4], buf[-4:]
    want = hashlib.sha256(b"meshtrace/v1/code-checksum" + prefix.encode() + payload).digest()[:4]
    if checksum != want:
        raise Refused("bad_checksum" if py_fields_end_at(buf, len(payload)) else "truncated_code")
    return payload


def py_decode_service_data(d):
    if len(d) == 0:
        raise Refused("frame_empty")
    if len(d) > 251:
        raise Refused("frame_too_long")
    if d[0] >> 4 != 2:
        raise Refused("frame_unsupported_version")
    kind = d[0] & 0x0F
    if kind not in (0, 1, 2):
        raise Refused("frame_unknown_kind")
    if len(d) != (33 if kind == 0 else 19):
        raise Refused("frame_wrong_length")


def py_find_service_data(ad_bytes):
    if len(ad_bytes) > 1650:
        raise Refused("ad_too_long")
    pos, found = 0, None
    while pos < len(ad_bytes):
        n = ad_bytes[pos]
        if n == 0:
            break
        if pos + 1 + n > len(ad_bytes):
            raise Refused("ad_truncated")
        s = ad_bytes[pos + 1:pos + 1 + n]
        if found is None and s[0] == 0x16 and len(s) >= 3 and int.from_bytes(s[1:3], "little") == UUID16:
            found = s[3:]
        pos += 1 + n
    return found


def outcome_of(fn):
    try:
        fn()
    except Refused as e:
        return e.code
    return None


# ---------------------------------------------------------------- refusals.json
R_T0 = 1_800_000_000
R_NET = "campus-1"
R_ISSUER = seed("ed25519 issuer")


def r_cert(report_pub=None, issuer=R_ISSUER, network=R_NET, valid_from=R_T0,
           valid_until=R_T0 + 3 * 86400, first=R_T0 // 86400 - 5, last=R_T0 // 86400, cap=4096):
    """A certificate through the reference encoder of certificates_vectors."""
    if report_pub is None:
        report_pub = ed_pub(seed("ed25519 report refusals"))
    return certificate(issuer, network, report_pub, valid_from, valid_until, first, last, cap)[2]


def r_cert_body(version=2, network=R_NET, issuer_pub=None, report_pub=None, valid_from=R_T0,
                valid_until=R_T0 + 3 * 86400, first=R_T0 // 86400 - 5, last=R_T0 // 86400, cap=4096):
    """A certificate body with any field values (for out-of-spec bodies)."""
    issuer_pub = ed_pub(R_ISSUER) if issuer_pub is None else issuer_pub
    report_pub = ed_pub(seed("ed25519 report refusals")) if report_pub is None else report_pub
    return (f_uint(1, version) + f_bytes(2, network.encode()) + f_bytes(3, issuer_pub)
            + f_bytes(4, report_pub) + f_uint(5, valid_from) + f_uint(6, valid_until)
            + f_uint(7, first) + f_uint(8, last) + f_uint(9, cap))


def r_signed_cert(body, issuer=R_ISSUER):
    return f_bytes(1, body) + f_bytes(2, ed_sign(issuer, b"meshtrace/v2/certificate" + body))


def r_tokens(n, label="refusals"):
    return sorted(hashlib.sha256(f"{label} token {i}".encode()).digest()[:16] for i in range(n))


def r_fps(n, label="refusals"):
    """`n` distinct ascending fingerprints below 2^56."""
    return sorted({int.from_bytes(hashlib.sha256(f"{label} fingerprint {i}".encode()).digest()[:7], "big")
                   for i in range(n)})


def r_announcement(report=None, cert=None, network=R_NET, index=0, count=1, created_at=R_T0 + 3600,
                   fps=None, version=2, signature=None, coded=None, n=None, tx_power=0, tx_raw=None):
    report = seed("ed25519 report refusals") if report is None else report
    cert = r_cert(ed_pub(report)) if cert is None else cert
    fps = r_fps(64) if fps is None else fps
    body = announcement_body(network, cert, index, count, created_at, fps, version, coded, n,
                             tx_power, tx_raw)
    return announcement_message(report, body, signature)


def refusals_vectors():
    cases = []

    def case(context, name, expect, **fields):
        cases.append(dict({"context": context, "name": name, "code": expect}, **fields))

    # -- advertising payloads and service data (§3.4, §3.5)
    good_id = bytes(range(32))
    ext = bytes([0x20]) + good_id
    ads = [
        ("1651 bytes", bytes([0]) * 1651, "ad_too_long"),
        ("a structure running past the end", ad(ext)[:-1], "ad_truncated"),
        ("truncated after a matching structure", ad(ext) + bytes([5, 0xFF]), "ad_truncated"),
        ("matching structure with empty service data", bytes([3, 0x16, 0xB7, 0xFC]), "frame_empty"),
        ("flags missing, UUID list missing: still decoded", ad(ext)[7:], None),
        ("zero length ends the walk", ad(ext) + bytes([0, 0xFF, 0xFF]), None),
    ]
    for name, data, want in ads:
        def run(data=data):
            sd = py_find_service_data(data)
            if sd is not None:
                py_decode_service_data(sd)
        assert outcome_of(run) == want, name
        case("advertising_data", name, want, input=h(data))
    sds = [
        ("empty", b"", "frame_empty"),
        ("252 bytes", bytes([0x20]) + bytes(251), "frame_too_long"),
        ("252 bytes of an unknown version: length first", bytes([0x70]) + bytes(251), "frame_too_long"),
        ("version 1", bytes([0x10]) + bytes(33), "frame_unsupported_version"),
        ("version 1 of 34 bytes (with a TX power byte)", bytes([0x10, 0xF8]) + good_id, "frame_unsupported_version"),
        ("version 3", bytes([0x30]) + bytes(33), "frame_unsupported_version"),
        ("version 0", bytes([0x00]) + bytes(33), "frame_unsupported_version"),
        ("version 1 and kind 3: version first", bytes([0x13]) + bytes(33), "frame_unsupported_version"),
        ("kind 3", bytes([0x23]) + bytes(33), "frame_unknown_kind"),
        ("kind 15, wrong length too: kind first", bytes([0x2F]) + bytes(5), "frame_unknown_kind"),
        ("extended of 33 bytes: accepted", bytes([0x20]) + good_id, None),
        ("extended of 32 bytes", bytes([0x20]) + bytes(31), "frame_wrong_length"),
        ("extended of 34 bytes (the layout with a TX power byte)", bytes([0x20, 0xF8]) + good_id,
         "frame_wrong_length"),
        ("first half of 19 bytes: accepted", bytes([0x21]) + bytes(18), None),
        ("first half of 20 bytes (the layout with a TX power byte)", bytes([0x21]) + bytes(19),
         "frame_wrong_length"),
        ("first half of 21 bytes", bytes([0x21]) + bytes(20), "frame_wrong_length"),
        ("second half of 34 bytes", bytes([0x22]) + bytes(33), "frame_wrong_length"),
    ]
    for name, data, want in sds:
        assert outcome_of(lambda: py_decode_service_data(data)) == want, name
        case("service_data", name, want, input=h(data))

    # -- token derivation (§4.2): own key `own_secret`, heard `heard`
    own = seed("refusals own x25519")
    own_pub = x25519_pub(own)

    def derive(heard):
        if heard == own_pub:
            raise Refused("own_id")
        try:
            shared = shared_secret(own, heard)
        except ValueError:  # OpenSSL refuses an all-zero output
            shared = bytes(32)
        if shared == bytes(32):
            raise Refused("non_contributory")
    low = ["00" * 32, "01" + "00" * 31,
           "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
           "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
           "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
           # u + p for u = 0 and u = 1 (non-canonical), and u = 1 with the top bit set
           (ED_P).to_bytes(32, "little").hex(), (ED_P + 1).to_bytes(32, "little").hex(),
           "01" + "00" * 30 + "80"]
    for hx in low:
        heard = bytes.fromhex(hx)
        assert outcome_of(lambda: derive(heard)) == "non_contributory", hx
        case("token", f"low-order point {hx[:8]}…", "non_contributory", own_secret=h(own), heard=hx)
    assert outcome_of(lambda: derive(own_pub)) == "own_id"
    case("token", "our own ID echoed", "own_id", own_secret=h(own), heard=h(own_pub))
    other = x25519_pub(seed("refusals other x25519"))
    assert outcome_of(lambda: derive(other)) is None
    case("token", "another device's ID", None, own_secret=h(own), heard=h(other))

    # -- sightings (§6.1): one own key for `own_epoch`, a fresh tracker
    e = R_T0 // 900
    case("sighting", "no own key around the sighting", "no_active_key", own_secret=h(own),
         own_epoch=e, heard=h(other), at=(e + 2) * 900)
    case("sighting", "a low-order ID opens nothing", "no_token", own_secret=h(own),
         own_epoch=e, heard="00" * 32, at=e * 900 + 10)
    case("sighting", "our own ID opens nothing", "no_token", own_secret=h(own),
         own_epoch=e, heard=h(own_pub), at=e * 900 + 10)
    case("sighting", "a key active 300 s after its epoch", None, own_secret=h(own),
         own_epoch=e, heard=h(other), at=(e + 1) * 900 + 299)

    # -- report requests: canonical encoding (§8.2) and fields (§9.3)
    rk = ed_pub(seed("ed25519 report refusals"))
    net = f_bytes(2, R_NET.encode())
    key = f_bytes(3, rk)
    ver = f_uint(1, 2)
    req = ver + net + key
    reqs = [
        ("129 bytes of garbage: the size comes first", bytes([0xFF]) * 129, "too_long"),
        ("fields out of order", net + ver + key, "non_canonical"),
        ("a field twice", ver + net + net + key, "non_canonical"),
        ("version 0 written out", bytes([0x08, 0x00]) + net + key, "non_canonical"),
        ("empty network id written out", ver + bytes([0x12, 0x00]) + key, "non_canonical"),
        ("non-minimal value varint", bytes([0x08, 0x81, 0x00]) + net + key, "non_canonical"),
        ("non-minimal length varint", ver + bytes([0x12, 0x88, 0x00]) + R_NET.encode() + key, "non_canonical"),
        ("non-minimal key varint", bytes([0x88, 0x00, 0x01]) + net + key, "non_canonical"),
        ("unknown varint field 15", req + bytes([0x78, 0x01]), "non_canonical"),
        ("unknown fixed64 field 4", req + bytes([0x21]) + bytes(8), "non_canonical"),
        ("unknown fixed32 field 5", req + bytes([0x2D]) + bytes(4), "non_canonical"),
        ("version 2^32 + 1 (a uint32 field above 2^32 − 1)", f_uint(1, 2 ** 32 + 1) + net + key, "non_canonical"),
        ("empty input: every field default, version 0", b"", "unsupported_version"),
        ("cut off inside the key", req[:-1], "malformed"),
        ("cut off inside a varint", bytes([0x08, 0x81]), "malformed"),
        ("an 11-byte varint", bytes([0x08]) + bytes([0x81] * 10) + bytes([0x00]) + net + key, "malformed"),
        ("a 10-byte varint whose last byte is 02", bytes([0x08]) + bytes([0x80] * 9) + bytes([0x02]) + net + key, "malformed"),
        ("a 10-byte varint whose last byte is 01: too large for uint32", bytes([0x08]) + bytes([0x80] * 9) + bytes([0x01]) + net + key, "non_canonical"),
        ("field number 0", bytes([0x02, 0x00]) + req, "malformed"),
        ("key above 2^32 − 1", bytes([0x80, 0x80, 0x80, 0x80, 0x10, 0x01]) + req, "malformed"),
        ("wire type 6", req + bytes([0x7E]), "malformed"),
        ("wire type 7", req + bytes([0x7F]), "malformed"),
        ("an unknown group (wire types 3 and 4)", req + bytes([0x7B, 0x7C]), "malformed"),
        ("an end-group key alone", req + bytes([0x7C]), "malformed"),
        ("version as bytes (wrong wire type)", bytes([0x0A, 0x01, 0x01]) + net + key, "malformed"),
        ("network id that is not UTF-8", ver + bytes([0x12, 0x02, 0xC3, 0x28]) + key, "malformed"),
        ("length past the end", ver + bytes([0x12, 0x40]) + R_NET.encode(), "malformed"),
        ("out of order and cut off: malformed first", net + ver + key[:-1], "malformed"),
        ("version 1", f_uint(1, 1) + net + key, "version_1"),
        ("version 3", f_uint(1, 3) + net + key, "unsupported_version"),
        ("version 3 and a bad network id: version first", f_uint(1, 3) + f_bytes(2, b"Campus") + key, "unsupported_version"),
        ("network id with upper case", ver + f_bytes(2, b"Campus") + key, "bad_network_id"),
        ("network id of 65 bytes", ver + f_bytes(2, b"a" * 65) + key, "bad_network_id"),
        ("no network id", ver + key, "bad_network_id"),
        ("bad network id and short key: network id first", ver + f_bytes(2, b"a b") + f_bytes(3, rk[:31]), "bad_network_id"),
        ("report key of 31 bytes", ver + net + f_bytes(3, rk[:31]), "wrong_length"),
        ("report key of 33 bytes", ver + net + f_bytes(3, rk + b"\0"), "wrong_length"),
        ("network id of 64 bytes", ver + f_bytes(2, b"a" * 64) + key, None),
    ]
    for name, data, want in reqs:
        assert outcome_of(lambda: py_decode_request(data)) == want, name
        case("report_request", name, want, input=h(data))

    # -- text codes (§9.2)
    good = code("MTRQ1:", req)
    assert outcome_of(lambda: py_read_code("MTRQ1:", good, 128)) is None
    body = good[len("MTRQ1:"):]
    typo_i = 10
    typo = good[:6 + typo_i] + ("B" if body[typo_i] == "A" else "A") + good[6 + typo_i + 1:]
    texts = [
        ("lower case, spaces, dashes and a line break", "mtrq1:" + "-".join(
            body[i:i + 4].lower() for i in range(0, len(body), 4))[:40] + "\n  " + "-".join(
            body[i:i + 4].lower() for i in range(0, len(body), 4))[40:], None),
        ("another prefix", "MTCT1:" + body, "wrong_prefix"),
        ("no prefix", body, "wrong_prefix"),
        ("too many characters (217)", "MTRQ1:" + "A" * 217, "too_long"),
        ("too many characters of any kind", "MTRQ1:" + "!" * 217, "too_long"),
        ("a digit 1", good[:12] + "1" + good[13:], "bad_base32"),
        ("padding", good + "=" * ((8 - len(body) % 8) % 8 or 8), "bad_base32"),
        ("a non-ASCII letter", good[:12] + "É" + good[13:], "bad_base32"),
        ("a typo", typo, "bad_checksum"),
        ("last character dropped", good[:-1], "truncated_code"),
        ("last 8 characters dropped (a whole 5-byte group)", good[:-8], "truncated_code"),
        ("last 16 characters dropped", good[:-16], "truncated_code"),
        ("an impossible length", "MTRQ1:AAA", "truncated_code"),
        ("unused bits not zero", "MTRQ1:AB", "truncated_code"),
        ("fewer than 4 bytes", "MTRQ1:AAAAA", "truncated_code"),
        ("empty after the prefix", "MTRQ1:", "truncated_code"),
    ]
    for name, text, want in texts:
        assert outcome_of(lambda: py_decode_request(py_read_code("MTRQ1:", text, 128))) == want, name
        case("request_code", name, want, input=text)

    # -- certificates (§9.4)
    cert = r_cert()
    assert outcome_of(lambda: py_decode_certificate(cert)) is None
    body_ok = r_cert_body()
    sig_ok = ed_sign(R_ISSUER, b"meshtrace/v2/certificate" + body_ok)
    day0 = R_T0 // 86400
    certs = [
        ("321 bytes", bytes([0xFF]) * 321, "too_long"),
        ("cut off", cert[:-1], "malformed"),
        ("signature before body", f_bytes(2, sig_ok) + f_bytes(1, body_ok), "non_canonical"),
        ("signature of 63 bytes", f_bytes(1, body_ok) + f_bytes(2, sig_ok[:63]), "wrong_length"),
        ("no signature", f_bytes(1, body_ok), "wrong_length"),
        ("body with an unknown field", f_bytes(1, body_ok + bytes([0x50, 0x01])) + f_bytes(2, sig_ok), "non_canonical"),
        ("a body of 321 bytes makes the certificate too long", f_bytes(1, bytes(321)) + f_bytes(2, sig_ok), "too_long"),
        ("body version 3, signed", r_signed_cert(r_cert_body(version=3)), "unsupported_version"),
        ("body version 1, signed", r_signed_cert(r_cert_body(version=1)), "version_1"),
        ("body version 2, bad signature: version first",
         f_bytes(1, r_cert_body(version=3)) + f_bytes(2, sig_ok), "unsupported_version"),
        ("issuer key of 31 bytes", r_signed_cert(r_cert_body(issuer_pub=ed_pub(R_ISSUER)[:31])), "wrong_length"),
        ("report key of 0 bytes", r_signed_cert(r_cert_body(report_pub=b"")), "wrong_length"),
        ("network id with a space", r_signed_cert(r_cert_body(network="campus 1")), "bad_network_id"),
        ("valid_until before valid_from", r_cert(valid_until=R_T0 - 1, first=day0 - 5, last=day0 - 1), "validity_reversed"),
        ("validity of 30 days and 1 s", r_cert(valid_until=R_T0 + 2_592_001), "validity_too_long"),
        ("validity of exactly 30 days", r_cert(valid_until=R_T0 + 2_592_000), None),
        ("window ends before it starts", r_cert(first=day0, last=day0 - 1), "window_reversed"),
        ("window of 16 days", r_cert(first=day0 - 15, last=day0), "window_too_long"),
        ("window of exactly 15 days", r_cert(first=day0 - 14, last=day0), None),
        ("cap 0", r_cert(cap=0), "token_cap_out_of_range"),
        ("cap 131 073", r_cert(cap=131_073), "token_cap_out_of_range"),
        ("cap 131 072", r_cert(cap=131_072), None),
        ("window ends after validity + 600 s", r_cert(valid_until=R_T0 + 3 * 86400,
                                                     last=(R_T0 + 3 * 86400 + 600) // 86400 + 1,
                                                     first=(R_T0 + 3 * 86400 + 600) // 86400 - 3),
         "window_after_validity"),
        ("window reversed and cap 0: window first", r_cert(first=day0, last=day0 - 1, cap=0), "window_reversed"),
        ("signature of another body", f_bytes(1, r_cert_body(cap=8192)) + f_bytes(2, sig_ok), "bad_certificate_signature"),
        ("bad network id and bad signature: bounds first",
         f_bytes(1, r_cert_body(network="X")) + f_bytes(2, sig_ok), "bad_network_id"),
    ]
    # Strict Ed25519 through the certificate: crafted issuer keys and signatures.
    for name, data, valid in crafted_signatures_for_cert():
        certs.append((f"issuer signature: {name}", data, "ok" if valid else "bad_certificate_signature"))
    fixed = []
    for name, data, want in certs:
        want = None if want == "ok" else want
        assert outcome_of(lambda: py_decode_certificate(data)) == want, name
        case("certificate", name, want, input=h(data))
        fixed.append(data)
    # Certificate text codes.
    cert_code = code("MTCT1:", cert)
    for name, text, want in [
        ("a request code where a certificate is expected", good, "wrong_prefix"),
        ("too many characters (521)", "MTCT1:" + "A" * 521, "too_long"),
        ("cut off", cert_code[:-3], "truncated_code"),
        ("a certificate code whose certificate is refused",
         code("MTCT1:", r_cert(cap=0)), "token_cap_out_of_range"),
    ]:
        assert outcome_of(lambda: py_decode_certificate(py_read_code("MTCT1:", text, 320))) == want, name
        case("certificate_code", name, want, input=text)
    # Trust and usability (§9.4): certificate, the receiver's network, trusted
    # issuers and the time it is used at.
    issuer_pub = ed_pub(R_ISSUER)
    stranger = ed_pub(seed("refusals stranger issuer"))
    for name, net_id, trusted, t, want in [
        ("another network", "campus-2", [issuer_pub], R_T0, "wrong_network"),
        ("untrusted issuer", R_NET, [stranger], R_T0, "untrusted_issuer"),
        ("another network and untrusted: network first", "campus-2", [stranger], R_T0, "wrong_network"),
        ("601 s before valid_from", R_NET, [issuer_pub], R_T0 - 601, "certificate_not_yet_valid"),
        ("600 s before valid_from", R_NET, [issuer_pub], R_T0 - 600, None),
        ("601 s after valid_until", R_NET, [issuer_pub], R_T0 + 3 * 86400 + 601, "certificate_expired"),
        ("untrusted and expired: trust first", R_NET, [stranger], R_T0 + 3 * 86400 + 601, "untrusted_issuer"),
    ]:
        def run():
            b = py_decode_certificate(cert)
            py_trust(b, net_id, trusted)
            py_usable(b, t)
        assert outcome_of(run) == want, name
        case("certificate_use", name, want, input=h(cert), network_id=net_id,
             trusted_issuers=[h(x) for x in trusted], at=t)

    # -- announcements (§10.5), received at `now` by a node of `network_id`
    now = R_T0 + 7200
    report = seed("ed25519 report refusals")
    ok = r_announcement()
    assert outcome_of(lambda: py_verify_announcement(ok, R_NET, [issuer_pub], now)) is None
    outer = pb_decode(ok, ANN_SCHEMA, 65536)
    last_day = R_T0 // 86400
    expired_now = (last_day + 15) * 86400
    small_report = seed("ed25519 report small-cap")
    fps64 = r_fps(64)
    coded64 = gcs_encode(fps64)
    dup = fps64[:62] + [fps64[61], fps64[63]]
    full = r_fps(2048, "full")
    anns = [
        ("valid", ok, now, None),
        ("65 537 bytes", bytes(65537), now, "too_long"),
        ("cut off", ok[:-1], now, "malformed"),
        ("signature before body", f_bytes(2, outer["signature"]) + f_bytes(1, outer["body"]), now, "non_canonical"),
        ("signature of 65 bytes", f_bytes(1, outer["body"]) + f_bytes(2, outer["signature"] + b"\0"), now, "wrong_length"),
        ("body with an unknown field", r_announcement_raw(report, announcement_body(
            R_NET, r_cert(ed_pub(report)), 0, 1, R_T0 + 3600, fps64) + bytes([0x50, 0x01])), now, "non_canonical"),
        ("version 3", r_announcement(version=3), now, "unsupported_version"),
        ("version 1", r_announcement(version=1), now, "version_1"),
        ("version 1 and expired: version first", r_announcement(version=1), expired_now, "version_1"),
        ("certificate field of 321 bytes", r_announcement(cert=bytes([0x0A]) + bytes(320)), now, "certificate_too_large"),
        ("certificate that is not canonical", r_announcement(cert=f_bytes(2, ed_sign(R_ISSUER, b"x")) + f_bytes(1, r_cert_body())), now, "non_canonical"),
        ("certificate with a bad signature", r_announcement(cert=f_bytes(1, r_cert_body(cap=8192)) + f_bytes(2, sig_ok)), now, "bad_certificate_signature"),
        ("certificate with a bad signature, expired: certificate first",
         r_announcement(cert=f_bytes(1, r_cert_body(cap=8192)) + f_bytes(2, sig_ok)), expired_now, "bad_certificate_signature"),
        ("expired", ok, expired_now, "announcement_expired"),
        ("1 s before expiry", ok, expired_now - 1, None),
        ("expired, bad report signature: expiry first", r_announcement(signature=bytes(64)), expired_now, "announcement_expired"),
        ("expired and another network: expiry first", r_announcement(network="campus-2"), expired_now, "announcement_expired"),
        ("network differs from the certificate's", r_announcement(network="campus-2"), now, "network_mismatch"),
        ("network differs and untrusted: mismatch first",
         r_announcement(network="campus-2", cert=r_cert(ed_pub(report), issuer=seed("refusals stranger issuer"))), now, "network_mismatch"),
        ("certificate for another network", r_announcement(network="campus-2", cert=r_cert(ed_pub(report), network="campus-2")), now, "wrong_network"),
        ("untrusted issuer", r_announcement(cert=r_cert(ed_pub(report), issuer=seed("refusals stranger issuer"))), now, "untrusted_issuer"),
        ("untrusted issuer, bad report signature: trust first",
         r_announcement(cert=r_cert(ed_pub(report), issuer=seed("refusals stranger issuer")), signature=bytes(64)), now, "untrusted_issuer"),
        ("report signature of zeros", r_announcement(signature=bytes(64)), now, "bad_announcement_signature"),
        ("signed by another report key", r_announcement(cert=r_cert(ed_pub(seed("refusals other report")))), now, "bad_announcement_signature"),
        ("bad report signature and from the future: signature first",
         r_announcement(created_at=now + 601, signature=bytes(64)), now, "bad_announcement_signature"),
        ("created 601 s before valid_from", r_announcement(created_at=R_T0 - 601), now, "certificate_not_yet_valid"),
        ("created 601 s after valid_until", r_announcement(created_at=R_T0 + 3 * 86400 + 601), R_T0 + 3 * 86400 + 601, "certificate_expired"),
        ("created too early, bad chunk count: certificate first", r_announcement(created_at=R_T0 - 601, count=3), now, "certificate_not_yet_valid"),
        ("created 601 s after now", r_announcement(created_at=now + 601), now, "from_the_future"),
        ("created 600 s after now", r_announcement(created_at=now + 600), now, None),
        ("from the future, bad chunk count: time first", r_announcement(created_at=now + 601, count=3), now, "from_the_future"),
        ("chunk count 0", r_announcement(count=0), now, "bad_chunk_count"),
        ("chunk count 3", r_announcement(count=3), now, "bad_chunk_count"),
        ("chunk count 128", r_announcement(count=128), now, "bad_chunk_count"),
        ("chunk count 3, index 5: count first", r_announcement(count=3, index=5), now, "bad_chunk_count"),
        ("chunk index 1 of 1", r_announcement(index=1), now, "chunk_index_out_of_range"),
        ("chunk index out of range, truncated fingerprints: index first",
         r_announcement(index=1, coded=coded64[:-8], n=64), now, "chunk_index_out_of_range"),
        ("64 coded, 65 counted", r_announcement(coded=coded64, n=65), now, "not_a_padding_bucket"),
        ("no fingerprints", r_announcement(coded=b"", n=0), now, "not_a_padding_bucket"),
        ("64 fingerprints in a chunk of 2", r_announcement(count=2), now, "not_a_padding_bucket"),
        ("128 fingerprints", r_announcement(fps=r_fps(128)), now, None),
        ("256 fingerprints under a cap of 100",
         r_announcement(report=small_report, cert=r_cert(ed_pub(small_report), cap=100), fps=r_fps(256)), now, "over_token_cap"),
        ("4 full chunks under a cap of 4096", r_announcement(count=4, index=3, fps=full), now, "over_token_cap"),
        ("2 full chunks under a cap of 4096", r_announcement(count=2, index=1, fps=full), now, None),
        ("over the cap and truncated: cap first",
         r_announcement(report=small_report, cert=r_cert(ed_pub(small_report), cap=100),
                        coded=gcs_encode(r_fps(256))[:10], n=256), now, "over_token_cap"),
        ("fingerprints cut short", r_announcement(coded=coded64[:-8], n=64), now, "fingerprints_truncated"),
        ("no fingerprint bytes for 64", r_announcement(coded=b"", n=64), now, "fingerprints_truncated"),
        ("a fingerprint of 2^56", r_announcement(fps=fps64[:63] + [1 << 56]), now, "fingerprint_out_of_range"),
        ("a repeated fingerprint", r_announcement(fps=dup), now, "fingerprints_not_ascending"),
        ("a zero byte after the last fingerprint", r_announcement(coded=coded64 + b"\x00", n=64), now,
         "fingerprints_trailing_bits"),
        ("repeated and a trailing byte: the repeat first",
         r_announcement(coded=gcs_encode(dup) + b"\x00", n=64), now, "fingerprints_not_ascending"),
        # The reporter's TX power (§8.1 field 9, sint32; §10.5 step 18).
        ("TX power -8 dBm", r_announcement(tx_power=-8), now, None),
        ("TX power -128 dBm", r_announcement(tx_power=-128), now, None),
        ("TX power 127 dBm", r_announcement(tx_power=127), now, None),
        ("TX power 128 dBm", r_announcement(tx_power=128), now, "tx_power_out_of_range"),
        ("TX power -129 dBm", r_announcement(tx_power=-129), now, "tx_power_out_of_range"),
        ("TX power 2^31 - 1", r_announcement(tx_power=2 ** 31 - 1), now, "tx_power_out_of_range"),
        ("TX power -2^31", r_announcement(tx_power=-2 ** 31), now, "tx_power_out_of_range"),
        ("TX power varint of 2^32: not a sint32", r_announcement(tx_raw=2 ** 32), now, "non_canonical"),
        ("TX power 0 written out", r_announcement_raw(report, announcement_body(
            R_NET, r_cert(ed_pub(report)), 0, 1, R_T0 + 3600, fps64) + bytes([0x48, 0x00])), now, "non_canonical"),
        ("TX power length-delimited", r_announcement_raw(report, announcement_body(
            R_NET, r_cert(ed_pub(report)), 0, 1, R_T0 + 3600, fps64) + bytes([0x4A, 0x01, 0x10])), now, "malformed"),
        ("TX power out of range, fingerprints cut short: fingerprints first",
         r_announcement(tx_power=200, coded=coded64[:-8], n=64), now, "fingerprints_truncated"),
        ("TX power out of range, over the cap: cap first",
         r_announcement(report=small_report, cert=r_cert(ed_pub(small_report), cap=100), fps=r_fps(256),
                        tx_power=200), now, "over_token_cap"),
        ("TX power out of range and expired: expiry first", r_announcement(tx_power=200), expired_now,
         "announcement_expired"),
    ]
    # Strict Ed25519 of the report key (§2.5): crafted report keys, certified.
    for name, pub, cert_i, body_i, sig, valid in crafted_announcements():
        anns.append((f"report signature: {name}", announcement_message(None, body_i, sig), now,
                     None if valid else "bad_announcement_signature"))
    for name, data, t, want in anns:
        assert outcome_of(lambda: py_verify_announcement(data, R_NET, [issuer_pub], t)) == want, name
        case("announcement", name, want, input=h(data), network_id=R_NET,
             trusted_issuers=[h(issuer_pub)], now=t,
             outcome=None if want is None else ("Ignore" if want == "announcement_expired" else "Reject"))

    # -- building a report (§10.2, §10.3): real tokens are
    # SHA-256("refusals build token " || i)[0..16] for i < real_tokens.
    cap_report = seed("ed25519 report build")
    for name, secret, cert_b, n, created, want in [
        ("certificate for another report key", report, r_cert(ed_pub(cap_report)), 3, R_T0 + 3600, "wrong_report_key"),
        ("another report key and not yet valid: key first", report, r_cert(ed_pub(cap_report)), 3, R_T0 - 601, "wrong_report_key"),
        ("601 s before valid_from", cap_report, r_cert(ed_pub(cap_report)), 3, R_T0 - 601, "certificate_not_yet_valid"),
        ("601 s after valid_until", cap_report, r_cert(ed_pub(cap_report)), 3, R_T0 + 3 * 86400 + 601, "certificate_expired"),
        ("131 073 real tokens: no layout", cap_report, r_cert(ed_pub(cap_report), cap=131_072), 131_073, R_T0 + 3600, "too_many_tokens"),
        ("131 072 real tokens fit a cap of 131 072", cap_report, r_cert(ed_pub(cap_report), cap=131_072), 131_072, R_T0 + 3600, None),
        ("4097 real tokens under a cap of 4096 (8192 once padded)", cap_report, r_cert(ed_pub(cap_report)), 4097, R_T0 + 3600, "too_many_tokens"),
        ("4096 real tokens under a cap of 4096", cap_report, r_cert(ed_pub(cap_report)), 4096, R_T0 + 3600, None),
        ("1 real token under a cap of 63: no bucket fits", cap_report, r_cert(ed_pub(cap_report), cap=63), 1, R_T0 + 3600, "too_many_tokens"),
    ]:
        def run():
            c = py_decode_certificate(cert_b)
            if c["report_key"] != ed_pub(secret):
                raise Refused("wrong_report_key")
            py_usable(c, created)
            if n > 131_072:
                raise Refused("too_many_tokens")
            per, chunks = layout(n)
            if per * chunks > c["max_tokens"]:
                raise Refused("too_many_tokens")
        assert outcome_of(run) == want, name
        case("build", name, want, report_secret=h(secret), certificate=h(cert_b), real_tokens=n,
             created_at=created)

    # -- risk configuration (§7.1): the defaults with the listed changes
    def risk_check(cfg):
        buckets = cfg.get("buckets", [[55, 1.0], [63, 0.5], [73, 0.0]])
        if not 1 <= len(buckets) <= 8:
            raise Refused("risk_bucket_count")
        if any(buckets[i][0] >= buckets[i + 1][0] for i in range(len(buckets) - 1)):
            raise Refused("risk_bucket_order")
        if any(not 0.0 <= w <= 1.0 for _, w in buckets):
            raise Refused("risk_bucket_weight")
        if not cfg.get("high_risk_minutes", 15.0) > 0.0:
            raise Refused("risk_threshold")
        if cfg.get("min_contact_minutes", 10) > 1440:
            raise Refused("risk_min_contact")
        gap = cfg.get("session_gap_seconds", 600 if cfg.get("model", "calibrated") == "calibrated" else 300)
        if gap > 3600:
            raise Refused("risk_session_gap")
        p = dict(CALIBRATED, **cfg.get("calibrated", {}))
        ranges = [("attenuation_at_1m_db", lambda v: 0.0 <= v <= 120.0),
                  ("path_loss_exponent", lambda v: 1.0 <= v <= 6.0),
                  ("body_loss_db", lambda v: 0.0 <= v <= 40.0),
                  ("contact_sigma_db", lambda v: 0.0 < v <= 30.0),
                  ("reception_sigma_db", lambda v: 0.0 <= v <= 30.0),
                  ("close_distance_m", lambda v: 0.1 <= v <= 20.0),
                  ("min_confidence", lambda v: 0.0 < v < 1.0)]
        for name, ok_range in ranges:
            if not ok_range(p[name]):
                raise Refused("risk_calibration")
    for name, cfg, want in [
        ("no bucket", {"buckets": []}, "risk_bucket_count"),
        ("9 buckets", {"buckets": [[10 * i + 10, 0.5] for i in range(9)]}, "risk_bucket_count"),
        ("8 buckets", {"buckets": [[10 * i + 10, 0.5] for i in range(8)]}, None),
        ("equal bounds", {"buckets": [[55, 1.0], [55, 0.5]]}, "risk_bucket_order"),
        ("weight 1.5", {"buckets": [[55, 1.5]]}, "risk_bucket_weight"),
        ("weight -0.1", {"buckets": [[55, 1.0], [63, -0.1]]}, "risk_bucket_weight"),
        ("threshold 0", {"high_risk_minutes": 0.0}, "risk_threshold"),
        ("no bucket and threshold 0: buckets first", {"buckets": [], "high_risk_minutes": 0.0}, "risk_bucket_count"),
        ("minimum contact 1441 minutes", {"min_contact_minutes": 1441}, "risk_min_contact"),
        ("minimum contact 1440 minutes", {"min_contact_minutes": 1440}, None),
        ("session gap 3601 s", {"session_gap_seconds": 3601}, "risk_session_gap"),
        ("session gap 3600 s", {"session_gap_seconds": 3600}, None),
        ("attenuation at 1 m of 121 dB", {"calibrated": {"attenuation_at_1m_db": 121.0}}, "risk_calibration"),
        ("path-loss exponent 0.5", {"calibrated": {"path_loss_exponent": 0.5}}, "risk_calibration"),
        ("body loss 41 dB", {"calibrated": {"body_loss_db": 41.0}}, "risk_calibration"),
        ("contact sigma 0", {"calibrated": {"contact_sigma_db": 0.0}}, "risk_calibration"),
        ("reception sigma 0", {"calibrated": {"reception_sigma_db": 0.0}}, None),
        ("reception sigma 31 dB", {"calibrated": {"reception_sigma_db": 31.0}}, "risk_calibration"),
        ("close distance 5 cm", {"calibrated": {"close_distance_m": 0.05}}, "risk_calibration"),
        ("minimum confidence 1", {"calibrated": {"min_confidence": 1.0}}, "risk_calibration"),
        ("cwa model with a bad calibrated parameter", {"model": "cwa", "calibrated": {"min_confidence": 0.0}}, "risk_calibration"),
        ("threshold 0 and a bad calibrated parameter: threshold first",
         {"high_risk_minutes": 0.0, "calibrated": {"body_loss_db": 41.0}}, "risk_threshold"),
    ]:
        assert outcome_of(lambda: risk_check(cfg)) == want, name
        case("risk_config", name, want, config=cfg)

    # -- strict Ed25519 on its own (§2.5)
    msg = b"meshtrace refusals ed25519 message"
    sigs, _ = crafted_signatures(msg)
    ed = [{"name": name, "public": h(pub), "message": h(msg), "signature": h(sig), "valid": valid}
          for name, pub, sig, valid in sigs]
    return {"cases": cases, "ed25519": ed}


def crafted_signatures_for_cert():
    """Certificates whose issuer key and signature are crafted as in
    crafted_signatures, over the certificate's signing input."""
    out = []
    a = ed_scalar("strict a")
    A_b = ed_encode(ed_mul(a, ED_B))
    body = r_cert_body(issuer_pub=A_b)
    msg = b"meshtrace/v2/certificate" + body
    r = ed_scalar("cert strict r")
    R_b = ed_encode(ed_mul(r, ED_B))
    s = (r + ed_k(R_b, A_b, msg) * a) % ED_L
    out.append(("valid (crafted key)", r_cert_raw(body, R_b + s.to_bytes(32, "little")), True))
    out.append(("S >= L", r_cert_raw(body, R_b + (s + ED_L).to_bytes(32, "little")), False))
    # Small-order issuer key (neutral point) with R = [S]B.
    body0 = r_cert_body(issuer_pub=SMALL_ORDER[0])
    rr = ed_scalar("cert strict small A")
    out.append(("small-order issuer key, equation holds",
                r_cert_raw(body0, ed_encode(ed_mul(rr, ED_B)) + rr.to_bytes(32, "little")), False))
    # Small-order R: the neutral point with S = k·a.
    msg_b = b"meshtrace/v2/certificate" + body
    k = ed_k(SMALL_ORDER[0], A_b, msg_b)
    out.append(("small-order R, equation holds",
                r_cert_raw(body, SMALL_ORDER[0] + (k * a % ED_L).to_bytes(32, "little")), False))
    k = ed_k(NONCANONICAL_IDENTITY, A_b, msg_b)
    out.append(("non-canonical R",
                r_cert_raw(body, NONCANONICAL_IDENTITY + (k * a % ED_L).to_bytes(32, "little")), False))
    bodyn = r_cert_body(issuer_pub=NONCANONICAL_IDENTITY)
    out.append(("non-canonical issuer key, equation holds for the reduced point",
                r_cert_raw(bodyn, ed_encode(ed_mul(rr, ED_B)) + rr.to_bytes(32, "little")), False))
    for name, data, valid in out:
        assert (outcome_of(lambda: py_decode_certificate(data)) is None) == valid, name
    return [(name, data, valid) for name, data, valid in out]


def r_cert_raw(body, sig):
    return f_bytes(1, body) + f_bytes(2, sig)


def r_announcement_raw(report, body):
    return announcement_message(report, body, None)


def crafted_announcements():
    """Announcements whose certified report key and signature are crafted."""
    out = []
    a = ed_scalar("ann strict a")
    A_b = ed_encode(ed_mul(a, ED_B))
    now_created = R_T0 + 3600
    fps = r_fps(64)

    def body_for(pub):
        cert = r_cert(pub)
        return cert, announcement_body(R_NET, cert, 0, 1, now_created, fps)

    cert, body = body_for(A_b)
    signed = b"meshtrace/v2/announcement" + hashlib.sha256(body).digest()
    r = ed_scalar("ann strict r")
    R_b = ed_encode(ed_mul(r, ED_B))
    s = (r + ed_k(R_b, A_b, signed) * a) % ED_L
    out.append(("valid (crafted key)", A_b, cert, body, R_b + s.to_bytes(32, "little"), True))
    out.append(("S >= L", A_b, cert, body, R_b + (s + ED_L).to_bytes(32, "little"), False))
    k = ed_k(SMALL_ORDER[0], A_b, signed)
    out.append(("small-order R, equation holds", A_b, cert, body,
                SMALL_ORDER[0] + (k * a % ED_L).to_bytes(32, "little"), False))
    cert0, body0 = body_for(SMALL_ORDER[0])
    rr = ed_scalar("ann strict small A")
    out.append(("small-order report key, equation holds", SMALL_ORDER[0], cert0, body0,
                ed_encode(ed_mul(rr, ED_B)) + rr.to_bytes(32, "little"), False))
    return out


# ================================================================ state machine (§2.3–§6)
# A second reading of the key schedule (§2.3, §2.4), the tokens of a
# sighting (§4.3) and the encounter lifecycle (§6.1, without crediting: the
# profiles are risk.json's business).

class SmSchedule:
    def __init__(self, label):
        self.label = label
        self.keys = []          # sorted by epoch: [epoch, secret, public]
        self.broadcasting = None
        self.draws = []

    def draw(self, e):
        secret = seed(f"state machine {self.label} key {len(self.draws)}")
        self.draws.append({"epoch": e, "secret": h(secret), "public": h(x25519_pub(secret))})
        return [e, secret, x25519_pub(secret)]

    def get(self, e):
        return next((k for k in self.keys if k[0] == e), None)

    def insert(self, k):
        self.keys = [x for x in self.keys if x[0] != k[0]]
        self.keys.append(k)
        self.keys.sort(key=lambda x: x[0])
        while len(self.keys) > 4:            # MAX_SCHEDULED_KEYS: drop the oldest epoch
            self.keys.pop(0)

    def rotate(self, now):
        epoch = now // 900
        for e in [epoch, (now + 300) // 900]:
            if self.get(e) is None:
                self.insert(self.draw(e))
        new_id = None
        if self.broadcasting != epoch:
            self.broadcasting = epoch
            k = self.get(epoch)
            new_id = None if k is None else h(k[2])
        erased = [k[0] for k in self.keys if 900 * (k[0] + 1) + 360 <= now]
        self.keys = [k for k in self.keys if 900 * (k[0] + 1) + 360 > now]
        return {"new_id": new_id, "erased": erased, "held": [k[0] for k in self.keys]}

    def active_around(self, t):
        return [k for k in self.keys if 900 * k[0] <= t + 300 and max(t - 300, 0) < 900 * (k[0] + 1)]

    def tokens_for_sighting(self, heard, t):
        if any(k[2] == heard for k in self.keys):
            return []
        out = []
        for e, secret, _ in self.active_around(t):
            try:
                shared = shared_secret(secret, heard)
            except ValueError:
                continue
            if shared == bytes(32):
                continue
            out.append((e, token(secret, heard)))
        return out


class SmTracker:
    def __init__(self, keys):
        self.keys = keys
        self.open = {}
        self.closed = []

    @staticmethod
    def ends_at(e, now):
        sub = lambda a, b: max(a - b, 0)
        return (sub(now, e["last_seen"]) > 300 or sub(now, e["first_seen"]) > 1800
                or sub(e["first_seen"], now) > 300)

    @staticmethod
    def primary(e):
        """§6.1 "Primary token": the covered epoch with the highest count
        (> 0), the earliest among equal counts; else the first token."""
        counted = [(e["counts"].get(ep, 0), ep) for ep in e["covered"]]
        counted = [(n, ep) for n, ep in counted if n > 0]
        if not counted:
            return e["covered"][0]
        top = max(n for n, _ in counted)
        return min(ep for n, ep in counted if n == top)

    @classmethod
    def out(cls, e):
        # The primary token first, the others in derivation order.
        p = cls.primary(e)
        pairs = list(zip(e["covered"], e["tokens"]))
        pairs = [x for x in pairs if x[0] == p] + [x for x in pairs if x[0] != p]
        return {"tokens": [h(t) for _, t in pairs], "token_epochs": [ep for ep, _ in pairs],
                "first_seen": e["first_seen"], "last_seen": e["last_seen"],
                "sightings": e["sightings"], "day": e["first_seen"] // 86400}

    def sighting(self, heard, at):
        e = self.open.get(heard)
        if e is not None and self.ends_at(e, at):             # step 1
            self.closed.append(e)
            del self.open[heard]
            e = None
        covered = e["covered"] if e else []
        active = self.keys.active_around(at)                   # step 2
        if not active and not covered:
            return "no_active_key"
        new = [(ep, t) for ep, t in self.keys.tokens_for_sighting(heard, at) if ep not in covered]
        if e is None:                                          # step 3
            if not new:
                return "no_token"
            e = {"tokens": [], "covered": [], "first_seen": at, "last_seen": at, "sightings": 0,
                 "counts": {}}
            self.open[heard] = e
        for ep, t in new:                                      # step 4
            if len(e["tokens"]) < 4:
                e["covered"].append(ep)
                e["tokens"].append(t)
        e["sightings"] += 1                                    # step 5
        ep = at // 900                                         # every sighting counts, kept or not
        e["counts"][ep] = min(e["counts"].get(ep, 0) + 1, 2 ** 32 - 1)
        if at > e["last_seen"]:
            e["last_seen"] = at
        elif at < e["first_seen"]:
            e["first_seen"] = at
        return None

    def poll(self, now):
        for heard in list(self.open):
            if self.ends_at(self.open[heard], now):
                self.closed.append(self.open.pop(heard))
        out = sorted((self.out(e) for e in self.closed),
                     key=lambda e: (e["first_seen"], e["tokens"][0]))
        self.closed = []
        return out

    def close_all(self):
        self.closed.extend(self.open.values())
        self.open = {}
        return self.poll(0)


def sm_case(name, events, heard_ids):
    """`events`: ("rotate", now) | ("scan", start, end) | ("sighting", label, att, at)
    | ("poll", now) | ("close_all",). `heard_ids`: label -> 32 bytes, or
    ("own", epoch) for one of our own IDs."""
    label = name.split(":")[0]
    ks = SmSchedule(label)
    tr = SmTracker(ks)
    ids = {}
    out = []
    for ev in events:
        kind = ev[0]
        if kind == "rotate":
            out.append({"event": list(ev), "expect": ks.rotate(ev[1])})
        elif kind == "scan":
            out.append({"event": list(ev), "expect": None})  # windows do not change tokens
        elif kind == "sighting":
            ref = heard_ids[ev[1]]
            heard = ref if isinstance(ref, bytes) else ks.get(ref[1])[2]
            ids[ev[1]] = h(heard)
            out.append({"event": list(ev), "expect": tr.sighting(heard, ev[3])})
        elif kind == "poll":
            out.append({"event": list(ev), "expect": tr.poll(ev[1])})
        else:
            out.append({"event": list(ev), "expect": tr.close_all()})
    return {"name": name, "ids": ids, "key_draws": ks.draws, "events": out}


def state_machine_vectors():
    M = 20_500 * 86400          # a midnight (UTC); M / 900 is an epoch
    e0 = M // 900
    b = x25519_pub(seed("state machine b"))
    c = x25519_pub(seed("state machine c"))
    cases = []

    # 1. Four own epochs in one encounter; a late sighting moves first_seen
    #    (and day) before midnight; token order follows derivation (e0, the
    #    first derived, also has most sightings: primary); the span limit
    #    closes it and a new encounter re-derives the same tokens.
    ev = [("rotate", M - 250), ("rotate", M + 350), ("sighting", "b", 50, M + 350),
          ("sighting", "b", 52, M + 60), ("sighting", "b", 54, M - 200),
          ("rotate", M + 600), ("sighting", "b", 50, M + 600),
          ("rotate", M + 850), ("sighting", "b", 50, M + 850),
          ("rotate", M + 1150), ("sighting", "b", 50, M + 1150),
          ("rotate", M + 1400), ("sighting", "b", 50, M + 1400),
          ("rotate", M + 1500), ("sighting", "b", 50, M + 1500),
          ("poll", M + 1500),
          ("rotate", M + 1600), ("sighting", "b", 50, M + 1600),
          ("rotate", M + 1700), ("sighting", "b", 50, M + 1700),
          ("poll", M + 1700), ("poll", M + 2001), ("poll", M + 2002)]
    cases.append(sm_case("span: four own epochs, a late sighting before midnight, the span limit", ev, {"b": b}))
    first = cases[-1]["events"][-3]["expect"]
    assert len(first) == 1 and len(first[0]["tokens"]) == 4 and first[0]["day"] == M // 86400 - 1, first
    assert first[0]["token_epochs"] == [e0, e0 - 1, e0 + 1, e0 + 2]

    # 2. Idle closing, exactly at the limits (300 s is still open, 301 s closes).
    t = M + 3 * 3600 + 100
    ev = [("rotate", t), ("sighting", "b", 40, t), ("sighting", "b", 41, t + 300),
          ("poll", t + 600), ("poll", t + 601), ("sighting", "b", 42, t + 1000),
          ("sighting", "b", 43, t + 1301), ("poll", t + 1301), ("close_all",)]
    cases.append(sm_case("idle: 300 s keeps an encounter open, 301 s closes it", ev, {"b": b}))

    # 3. Refusals of sightings, and a sighting with no active key that still
    #    counts because its encounter is open.
    t = (e0 + 40) * 900
    ev = [("sighting", "b", 50, t + 10),
          ("rotate", t + 10), ("sighting", "own-now", 50, t + 20),
          ("sighting", "low", 50, t + 20),
          ("rotate", t + 700), ("sighting", "own-next", 50, t + 700),
          ("sighting", "b", 50, t - 290), ("sighting", "b", 51, t - 590),
          ("sighting", "c", 50, t - 301), ("close_all",)]
    cases.append(sm_case("refusals: no key yet, our own IDs, a low-order ID, no key but open", ev,
                         {"b": b, "c": c, "own-now": ("own", e0 + 40), "own-next": ("own", e0 + 41),
                          "low": bytes(32)}))
    evs = cases[-1]["events"]
    assert [x["expect"] for x in evs if x["event"][0] == "sighting"] == \
        ["no_active_key", "no_token", "no_token", "no_token", None, None, "no_active_key"]

    # 4. Rotation: the next key is drawn 300 s before its epoch, the previous
    #    one destroyed 360 s after its epoch; scan windows change no token.
    t = (e0 + 60) * 900
    ev = [("rotate", t + 599), ("rotate", t + 600), ("scan", t + 610, t + 614),
          ("sighting", "b", 50, t + 611), ("rotate", t + 900), ("rotate", t + 1259),
          ("rotate", t + 1260), ("scan", t + 1260, t + 1264), ("sighting", "b", 50, t + 1261),
          ("close_all",)]
    cases.append(sm_case("rotation: drawn 300 s ahead, destroyed 360 s after", ev, {"b": b}))

    # 5. The clock set back: a fifth key drops the oldest epoch, even the one
    #    just drawn for the current time, which then has no key.
    E = e0 + 80
    ev = [("rotate", E * 900 + 700), ("rotate", (E - 2) * 900 + 700), ("rotate", (E - 4) * 900 + 700),
          ("sighting", "b", 50, (E - 4) * 900 + 700), ("close_all",)]
    cases.append(sm_case("cap: at most 4 keys, the oldest epoch dropped when the clock goes back", ev, {"b": b}))

    # 6. The clock set back: an encounter that began more than 300 s after
    #    the clock's time is closed.
    t = (e0 + 100) * 900 + 450
    ev = [("rotate", t), ("sighting", "b", 50, t), ("poll", t - 300), ("poll", t - 301)]
    cases.append(sm_case("clock back: an encounter from more than 300 s ahead is closed", ev, {"b": b}))

    # 7. The edges of "active around" (§2.4): 300 s before an epoch starts and
    #    up to 299 s after it ends, one ID heard at each edge.
    E = e0 + 120
    d = x25519_pub(seed("state machine d"))
    f = x25519_pub(seed("state machine f"))
    ev = [("rotate", (E + 1) * 900 - 301), ("sighting", "c", 50, (E + 1) * 900 - 301),
          ("rotate", (E + 1) * 900 - 300), ("sighting", "b", 50, (E + 1) * 900 - 300),
          ("rotate", (E + 1) * 900 + 299), ("sighting", "d", 50, (E + 1) * 900 + 299),
          ("rotate", (E + 1) * 900 + 300), ("sighting", "f", 50, (E + 1) * 900 + 300),
          ("close_all",)]
    cases.append(sm_case("edges: a key is active from 300 s before its epoch to 299 s after", ev,
                         {"b": b, "c": c, "d": d, "f": f}))
    got = [x["token_epochs"] for x in cases[-1]["events"][-1]["expect"]]
    # d, heard in E + 1, has E + 1's token as primary (§6.1).
    assert got == [[E], [E, E + 1], [E + 1, E], [E + 1]], got

    # 8. The primary token (§6.1): heard from 200 s before an own rotation
    #    to 180 s after it, one sighting in E (it derives both tokens) and
    #    three in E + 1 (they derive none, but count): E + 1's token first.
    E = e0 + 140
    ev = [("rotate", E * 900 + 600), ("sighting", "b", 50, E * 900 + 700),
          ("rotate", E * 900 + 900), ("sighting", "b", 50, E * 900 + 960),
          ("sighting", "b", 50, E * 900 + 1020), ("sighting", "b", 50, E * 900 + 1080),
          ("close_all",)]
    cases.append(sm_case("primary: most sightings after an own rotation, the second-derived token first",
                         ev, {"b": b}))
    got = cases[-1]["events"][-1]["expect"]
    assert [x["token_epochs"] for x in got] == [[E + 1, E]], got

    # 9. A tie: own epochs E, E + 1, E + 2 covered, E with no sighting,
    #    E + 1 and E + 2 with three each: E + 1's token first, not the first
    #    derived (E's) nor the last tied (E + 2's).
    E = e0 + 160
    ev = [("rotate", E * 900 + 600)]
    for x in (1000, 1250, 1500, 1800, 2050, 2300):
        ev += [("rotate", E * 900 + x), ("sighting", "b", 50, E * 900 + x)]
    ev.append(("close_all",))
    cases.append(sm_case("primary tie: equal counts go to the earlier epoch", ev, {"b": b}))
    got = cases[-1]["events"][-1]["expect"]
    assert [x["token_epochs"] for x in got] == [[E + 1, E, E + 2]], got

    # 10. Sightings count for their epoch before its token exists: a node
    #     holding only E + 1's key hears b twice in E + 1 and twice in E
    #     (no token), then its clock goes back, E's key is drawn and one
    #     more sighting in E derives it. E has 3 sightings, E + 1 has 2.
    E = e0 + 180
    ev = [("rotate", E * 900 + 1000), ("sighting", "b", 50, E * 900 + 1000),
          ("sighting", "b", 50, E * 900 + 1010), ("sighting", "b", 50, E * 900 + 850),
          ("sighting", "b", 50, E * 900 + 800), ("rotate", E * 900 + 790),
          ("sighting", "b", 50, E * 900 + 790), ("close_all",)]
    cases.append(sm_case("primary counts: sightings before their epoch's token count", ev, {"b": b}))
    got = cases[-1]["events"][-1]["expect"]
    assert [x["token_epochs"] for x in got] == [[E, E + 1]], got

    times = [0, 899, 900, 86399, 86400, M - 1, M, 1_800_000_000, 2 ** 32 * 900 - 1]
    return {
        "constants": {"epoch_seconds": 900, "day_seconds": 86400, "sighting_key_window_seconds": 300,
                      "rotation_grace_seconds": 360, "max_scheduled_keys": 4,
                      "max_tokens_per_encounter": 4, "encounter_idle_seconds": 300,
                      "max_encounter_span_seconds": 1800},
        "time": [{"t": x, "epoch": x // 900, "day": x // 86400,
                  "epoch_start": (x // 900) * 900} for x in times],
        "cases": cases,
    }


def main():
    tv = tokens_vectors()
    ids = [bytes.fromhex(c["public_a"]) for c in tv["cases"]]
    files = {
        "tokens.json": tv,
        "frames.json": frames_vectors(ids),
        "certificates.json": certificates_vectors(),
        "announcements.json": announcements_vectors(),
        "risk.json": risk_vectors(),
        "refusals.json": refusals_vectors(),
        "state_machine.json": state_machine_vectors(),
    }
    # --check: regenerate in memory and compare with the committed files.
    check = "--check" in sys.argv[1:]
    stale = []
    for name, data in files.items():
        text = json.dumps(data, indent=1) + "\n"
        path = os.path.join(HERE, name)
        if check:
            try:
                with open(path) as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("out of date (run generate.py without --check): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
