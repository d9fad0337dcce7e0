#!/usr/bin/env python3
"""Independent reference implementation of meshtrace protocol v2 test vectors.

Written from docs/protocol.md, not from the Rust code: it uses the
`cryptography` package for X25519, HKDF-SHA256 and Ed25519 and encodes the
protobuf messages by hand. `protocol/tests/vectors.rs` asserts that the Rust
implementation reproduces every value. Regenerate with:

    python3 protocol/tests/vectors/generate.py
"""

import base64
import hashlib
import json
import math
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
        {"service_data": "10" + "00" * 33, "error": "unsupported version"},
        {"service_data": "30" + "00" * 33, "error": "unsupported version"},
        {"service_data": "23" + "00" * 33, "error": "unknown kind"},
        {"service_data": "20" + "00" * 32, "error": "wrong length"},
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


def announcement_case(label, n_real, cap):
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
        body = (f_uint(1, 2) + f_bytes(2, network.encode()) + f_bytes(3, cert) + f_uint(4, c)
                + f_uint(5, chunks) + f_uint(6, created_at) + f_bytes(7, gcs_encode(fps))
                + f_uint(8, len(fps)))
        sig = ed_sign(report, b"meshtrace/v2/announcement" + hashlib.sha256(body).digest())
        msg = f_bytes(1, body) + f_bytes(2, sig)
        assert len(msg) <= 65536
        out.append({"id": h(hashlib.sha256(msg).digest()), "bytes": h(msg),
                    "fingerprints": [format(f, "014x") for f in fps]})
    return {
        "label": label, "report_secret": h(report), "certificate_bytes": h(cert),
        "created_at": created_at, "real_tokens": [h(t) for t in real],
        "real_fingerprints": [format(f, "014x") for f in sorted(real_fps)],
        "dummy_draws": [h(t) for t in dummies], "entries_per_chunk": per_chunk,
        "chunk_count": chunks, "chunks": out,
    }


def announcements_vectors():
    return {
        "issuer_public": h(ed_pub(seed("ed25519 issuer"))),
        "network_id": "campus-1",
        "verify_at": 1_800_000_000 + 7200,
        "cases": [announcement_case("small", 3, 4096),
                  announcement_case("medium", 300, 4096),
                  announcement_case("two-chunks", 2100, 4096)],
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
    def window_att(p):
        v = sorted(p["atts"])
        return v[(len(v) - 1) // 2]

    def snapshot(self, ident, e):
        prof = dict(e["profile"])
        for p in e["pending"]:
            a = self.window_att(p)
            prof[a] = prof.get(a, 0) + p["credit"]
        return {"id": ident, "first_seen": e["first_seen"], "last_seen": e["last_seen"],
                "sightings": e["sightings"],
                "profile": [[a, s] for a, s in sorted(prof.items()) if s > 0]}

    def sighting(self, ident, att, at):
        e = self.open.get(ident)
        if e is not None and self.ends_at(e, at):
            self.closed.append(self.snapshot(ident, e))
            del self.open[ident]
            e = None
        if e is None:
            e = {"first_seen": at, "last_seen": at, "sightings": 0, "profile": {},
                 "last_att": att, "pending": []}
            self.open[ident] = e
        e["sightings"] += 1
        if self.scans is not None:
            cur, prev = self.scans
            oldest = prev["seq"] if prev else cur["seq"]
            keep = []
            for p in e["pending"]:
                if p["seq"] < oldest:
                    a = self.window_att(p)
                    e["profile"][a] = e["profile"].get(a, 0) + p["credit"]
                else:
                    keep.append(p)
            e["pending"] = keep
            holds = lambda w: w is not None and w["start"] <= at <= w["end"] + SCAN_SLACK
            w = cur if holds(cur) else (prev if holds(prev) else None)
            if w is not None:
                for p in e["pending"]:
                    if p["seq"] == w["seq"]:
                        if len(p["atts"]) < MAX_RECEPTIONS_PER_WINDOW:
                            p["atts"].append(att)
                        break
                else:
                    e["pending"].append({"seq": w["seq"], "credit": w["credit"], "atts": [att]})
            if at > e["last_seen"]:
                e["last_seen"] = at
            elif at < e["first_seen"]:
                e["first_seen"] = at
            return
        if at > e["last_seen"]:
            gap = at - e["last_seen"]
            if gap <= MAX_SIGHTING_GAP:
                mean = (e["last_att"] + att + 1) // 2
                e["profile"][mean] = e["profile"].get(mean, 0) + gap
            e["last_seen"] = at
            e["last_att"] = att
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
        for e in s:
            sightings += e["sightings"]
            for a, secs in e["profile"]:
                if a < 255:
                    prof[a] = prof.get(a, 0) + secs
        total = sum(prof.values())
        level = None
        cum = 0
        for a in sorted(prof):
            cum += prof[a]
            if total > 0 and float(cum) >= 0.5 * float(total):
                level = a
                break
        conf = 0.0 if level is None else confidence(p, float(level), sightings)
        heard = total / 60.0
        close = level is not None and conf >= p["min_confidence"]
        out.append({"day": s[0]["first_seen"] // 86400, "first_seen": s[0]["first_seen"],
                    "last_seen": max(e["last_seen"] for e in s), "heard_minutes": heard,
                    "level_db": level, "confidence": conf,
                    "estimated_minutes": heard if close else 0.0})
    return out


def score_calibrated(encs):
    days = {}
    for c in contacts(encs):
        if c["level_db"] is None:
            continue
        d = days.setdefault(c["day"], {"day": c["day"], "weighted_minutes": 0.0, "close_minutes": 0.0,
                                       "contacts": 0, "estimated_minutes": 0.0})
        d["contacts"] += 1
        d["close_minutes"] += c["heard_minutes"]
        d["weighted_minutes"] += c["confidence"] * c["heard_minutes"]
        d["estimated_minutes"] += c["estimated_minutes"]
    out = []
    for day in sorted(days):
        d = days[day]
        d["high_risk"] = d["estimated_minutes"] >= HIGH_RISK_MINUTES
        out.append(d)
    return out


def enc(start, profile, sightings=None):
    secs = sum(s for _, s in profile)
    return {"first_seen": start, "last_seen": start + secs, "profile": profile,
            "sightings": sightings if sightings is not None else max(1, secs // 60)}


def risk_vectors():
    d = 20_000 * 86400 + 8 * 3600
    cwa = [
        ("16 close minutes across a key rotation", [enc(d, [(50, 480)]), enc(d + 480, [(50, 480)])]),
        ("9 close minutes: below the minimum", [enc(d, [(50, 540)])]),
        ("an hour beyond 73 dB: dropped", [enc(d, [(80, 3600)])]),
        ("30 minutes at 60 dB: exactly 15 weighted", [enc(d, [(60, 900)]), enc(d + 900, [(60, 900)])]),
        ("mixed profile", [enc(d, [(45, 300), (58, 400), (70, 200), (90, 100)])]),
        ("two contacts, gap over 5 minutes", [enc(d, [(50, 600)]), enc(d + 600 + 301, [(50, 420)])]),
        ("two days", [enc(d, [(50, 700)]), enc(d + 86400, [(52, 1000)])]),
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
    ]
    return {
        "cwa": {"config": "defaults, model cwa", "cases": [
            {"name": n, "encounters": e, "expected": score_cwa(e)} for n, e in cwa]},
        "calibrated": {"config": "defaults", "params": CALIBRATED,
                       "session_gap_seconds": CALIBRATED_SESSION_GAP,
                       "high_risk_minutes": HIGH_RISK_MINUTES,
                       "normal_cdf": [[z, normal_cdf(z)] for z in (-6.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.96, 3.0, 8.0)],
                       "cases": [{"name": n, "encounters": e, "contacts": contacts(e),
                                  "expected": score_calibrated(e)} for n, e in cal]},
        "crediting": crediting_vectors(),
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
    }
    for name, data in files.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
