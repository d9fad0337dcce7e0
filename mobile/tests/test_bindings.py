#!/usr/bin/env python3
"""The mobile library's FFI surface, through its generated Python bindings.

Run by mobile/tests/bindings.rs (`cargo test -p meshtrace-mobile`), which
generates the bindings beside a copy of the built library and passes:

  MESHTRACE_PY_BINDINGS  the directory holding meshtrace_mobile.py and the
                         library it loads
  MESHTRACE_BIN          the meshtrace binary (the issuer certifies with it)

Two nodes in one process, each on its own data directory, with the test as
their Bluetooth: it hands each node the other's advertisement as a
reception (and reports the scan windows), as an Android or iOS app would.
The reporter (a phone: light mode, the default) asks for a report, the
issuer certifies it with `meshtrace issuer certify`, and the report travels
over the real mesh (libp2p on loopback) to the other node, whose exposure
callback fires. Then bad input from the "app": garbage service data, absurd
RSSI and TX power, times going back or ahead, bad scan windows, calls after
stop — each a typed error, never a crash.

Standard library only. Every wait is bounded (DEADLINE, generous for a busy
machine) and polls a condition; nothing sleeps and hopes.
"""

import datetime
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.environ["MESHTRACE_PY_BINDINGS"])
import meshtrace_mobile as m  # noqa: E402

MESHTRACE = os.environ["MESHTRACE_BIN"]
NETWORK = "mobile-test"
# Generous: a busy 2-core machine, a debug build.
DEADLINE = 120.0


def wait_for(what, cond, deadline=DEADLINE):
    """Polls cond() until it returns a true value; fails after deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")


class Listener(m.MeshtraceListener):
    """Records what a node tells its app."""

    def __init__(self):
        self.lock = threading.Lock()
        self.exposures = []
        self.advertisements = []
        self.failures = []
        self.exposure_seen = threading.Event()

    def on_exposure(self, exposure):
        with self.lock:
            self.exposures.append(exposure)
        self.exposure_seen.set()

    def on_advertisement(self, advertisement):
        with self.lock:
            self.advertisements.append(advertisement)

    def on_failure(self, message):
        with self.lock:
            self.failures.append(message)


def run(*args):
    out = subprocess.run(
        [MESHTRACE, *args], capture_output=True, text=True, timeout=DEADLINE
    )
    if out.returncode != 0:
        raise AssertionError(f"meshtrace {args[0]} {args[1]} failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[0]


def expect_error(kind, call, *words):
    """call() must raise MobileError.<kind> whose message has every word."""
    try:
        call()
    except m.MobileError as e:
        if not isinstance(e, getattr(m.MobileError, kind)):
            raise AssertionError(f"expected {kind}, got {type(e).__name__}: {e}")
        text = str(e)
        for w in words:
            if w not in text:
                raise AssertionError(f"{kind}: {w!r} not in {text!r}")
        if "\n" in text:
            raise AssertionError(f"{kind}: more than one line: {text!r}")
        return text
    raise AssertionError(f"expected MobileError.{kind}, the call succeeded")


def bridge(rx, tx_ad, rssi):
    """rx hears tx's advertisement in a scan window starting now; returns
    how many sightings that gave."""
    now = m.unix_time_ms()
    rx.scan_window(now, 4000)
    # The frame is the rotating ID alone: header + 32 bytes, halves header
    # + 2-byte tag + 16 bytes (no TX power on the air).
    assert len(tx_ad.service_data) == 33, len(tx_ad.service_data)
    assert len(tx_ad.legacy_first) == 19 and len(tx_ad.legacy_second) == 19
    out = rx.reception(tx_ad.service_data, rssi, now)
    assert out == m.ReceptionOutcome.SIGHTING, out
    # The legacy carrier too: each half completes the pair with the latest
    # other half heard, so the very first half alone waits.
    first = rx.reception(tx_ad.legacy_first, rssi - 1, now)
    second = rx.reception(tx_ad.legacy_second, rssi - 1, now)
    assert first in (m.ReceptionOutcome.HALF_KEPT, m.ReceptionOutcome.SIGHTING), first
    assert second == m.ReceptionOutcome.SIGHTING, second
    return 1 + (first == m.ReceptionOutcome.SIGHTING) + 1


# Every node started, stopped at the end whatever happens (a node left
# running when the interpreter exits would be torn down under it).
NODES = []


def started(node):
    NODES.append(node)
    return node


FULL_CONFIG = f"""network = "{NETWORK}"
[[issuer]]
name = "clinic"
key = "ISSUER"
[radio]
profile = "pc"
[p2p]
light = false
mdns = false
listen = ["/ip4/127.0.0.1/tcp/0"]
"""


def start_full(work, issuer_pub, listener):
    full = started(
        m.MeshtraceNode.start(
            os.path.join(work, "full"), FULL_CONFIG.replace("ISSUER", issuer_pub), listener
        )
    )
    st = wait_for(
        "the full node to listen",
        lambda: (lambda s: s if s.listen_addresses else None)(full.status()),
    )
    return full, st


def main():
    work = tempfile.mkdtemp(prefix="meshtrace-mobile-")
    key_file = os.path.join(work, "issuer.key")
    issuer_pub = run("issuer", "keygen", "--out", key_file)
    assert len(issuer_pub) == 64, issuer_pub

    # Day one. The full node (a PC, or a phone on a charger) listens on
    # loopback; the phone starts from the settings record (light mode, the
    # phone profile).
    full_listener = Listener()
    full, st = start_full(work, issuer_pub, full_listener)
    assert not st.light and st.profile == "pc", st
    assert st.scan_window_ms == st.scan_interval_ms == 10_000, st
    phone_listener = Listener()
    phone = started(m.MeshtraceNode.start_with_settings(
        os.path.join(work, "phone"),
        m.MobileSettings(
            network=NETWORK,
            issuers=[m.TrustedIssuer(name="clinic", public_key=issuer_pub)],
            bootstrap=[],
            light=True,
            profile=m.RadioProfile.PHONE,
        ),
        phone_listener,
    ))
    ps = phone.status()
    assert ps.light and ps.profile == "phone", ps
    assert (ps.scan_window_ms, ps.scan_interval_ms, ps.advertising_interval_ms) == (
        4000,
        60000,
        250,
    ), ps

    # Each node told its app what to advertise, and the poll agrees.
    ad_full = wait_for("the full node's advertisement", full.advertisement)
    ad_phone = wait_for("the phone's advertisement", phone.advertisement)
    wait_for(
        "the advertisement callbacks",
        lambda: full_listener.advertisements and phone_listener.advertisements,
    )
    assert phone_listener.advertisements[-1] == ad_phone
    assert full_listener.advertisements[-1] == ad_full
    assert ad_phone.service_uuid16 == 0xFCB7
    assert ad_phone.valid_until_unix % 900 == 0
    assert ad_phone.valid_until_unix > ad_phone.since_unix
    assert ad_full.interval_ms == 100 and ad_phone.interval_ms == 250

    # The two meet: the test is their Bluetooth, both ways.
    heard_by_full = heard_by_phone = 0
    for round in range(3):
        heard_by_full += bridge(full, ad_phone, -55)
        heard_by_phone += bridge(phone, ad_full, -57)
        if round == 0:
            assert (heard_by_full, heard_by_phone) == (2, 2), (heard_by_full, heard_by_phone)
    wait_for(
        "the sightings to be recorded",
        lambda: full.status().open_encounters >= 1 and phone.status().open_encounters >= 1,
    )
    s = full.status()
    assert s.sightings == heard_by_full and s.scan_windows == 3 and s.receptions == 9, s
    assert phone.status().sightings == heard_by_phone

    # They part, and both apps are closed: open encounters are closed and
    # stored (an encounter is matched once it has ended).
    full.stop()
    phone.stop()

    # Later. Both start again on their data directories; the phone, from a
    # TOML config with the phone's defaults (light mode), dials the full
    # node.
    full, st = start_full(work, issuer_pub, full_listener)
    assert full.status().encounters >= 1
    # The encounter lasted seconds: this deployment reports every
    # encounter (the default leaves out those under a minute).
    phone = started(m.MeshtraceNode.start(
        os.path.join(work, "phone"),
        f'network = "{NETWORK}"\n[[issuer]]\nname = "clinic"\nkey = "{issuer_pub}"\n'
        f'[radio]\nprofile = "phone-low-power"\n'
        f'[p2p]\nmdns = false\nbootstrap = ["{st.listen_addresses[0]}"]\n'
        "[report]\nmin_encounter_seconds = 0\n",
        phone_listener,
    ))
    ps = phone.status()
    assert ps.encounters >= 1 and ps.light and ps.profile == "phone-low-power", ps
    assert ps.scan_interval_ms == 240_000 and ps.advertising_interval_ms == 1000, ps
    wait_for("the phone to connect", lambda: phone.status().peers >= 1)

    # The phone's owner tests positive: request, certify, plan, submit.
    request = phone.report_request()
    assert request.startswith("MTRQ1:"), request
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    cert = run(
        "issuer", "certify", request, "--key", key_file, "--network", NETWORK,
        "--window-start", today,
    )
    assert cert.startswith("MTCT1:"), cert
    plan = phone.report_plan(cert)
    assert plan.real_tokens >= 1 and plan.published == 0, plan
    assert plan.window_first_day == today == plan.window_last_day, plan
    sent = phone.report_submit(cert)
    assert sent.published == sent.chunks >= 1, sent
    expect_error("Report", lambda: phone.report_submit(cert), "already used")

    # Through the mesh (the phone is light: a stem hop to the full node)
    # to the full node: its app is told.
    assert full_listener.exposure_seen.wait(DEADLINE), "no exposure callback on the full node"
    e = full_listener.exposures[0]
    assert e.encounters >= 1 and len(e.days) == 1 and e.days[0].day == today, e
    assert e.days[0].contacts >= 1, e
    listed = full.exposures()
    assert [x.report for x in listed] == [e.report], listed
    assert full.status().exposures == 1
    # The reporter is never warned of its own report.
    assert phone.exposures() == [] and not phone_listener.exposures
    wait_for("the phone's report to be confirmed sent", lambda: phone.status().unsent == 0)

    # Bad input from the app: typed errors in words, nothing recorded.
    before = full.status()
    now = m.unix_time_ms()
    expect_error("BadServiceData", lambda: full.reception(b"\xff\x00garbage", -60, now), "not a meshtrace frame")
    expect_error("BadServiceData", lambda: full.reception(b"", -60, now), "not a meshtrace frame")
    expect_error("BadServiceData", lambda: full.reception(bytes(400), -60, now), "not a meshtrace frame")
    expect_error("BadSignal", lambda: full.reception(ad_phone.service_data, 500, now), "500 dBm")
    expect_error("BadSignal", lambda: full.reception(ad_phone.service_data, -300, now), "-300 dBm")
    expect_error("BadTime", lambda: full.reception(ad_phone.service_data, -60, now - 60_000), "must not go back")
    expect_error("BadTime", lambda: full.reception(ad_phone.service_data, -60, now + 3_600_000), "ahead")
    expect_error("BadTime", lambda: full.reception(ad_phone.service_data, -60, 1000), "in the past")
    expect_error("BadScanWindow", lambda: full.scan_window(now, 0), "0 ms")
    expect_error("BadScanWindow", lambda: full.scan_window(now, 3_600_000), "3600000 ms")
    expect_error("BadTime", lambda: full.scan_window(now - 120_000, 4000), "must not go back")
    after = full.status()
    assert after.sightings == before.sightings and after.scan_windows == before.scan_windows, (before, after)
    assert full.is_running()

    # After stop: every call is refused; stopping again is fine.
    phone.stop()
    phone.stop()
    assert not phone.is_running()
    for call in (
        phone.status,
        phone.exposures,
        phone.report_request,
        phone.advertisement,
        lambda: phone.scan_window(m.unix_time_ms(), 4000),
        lambda: phone.reception(ad_full.service_data, -60, m.unix_time_ms()),
        lambda: phone.report_plan(cert),
    ):
        expect_error("Stopped", call, "stopped")
    full.stop()
    expect_error("Stopped", full.status, "stopped")

    # A config for another radio is refused before anything starts.
    expect_error("Config", lambda: m.MeshtraceNode.start(os.path.join(work, "x"), 'network = "t"\n[radio]\nkind = "ble"\n', None), 'kind = "external"')
    expect_error("Config", lambda: m.MeshtraceNode.start(os.path.join(work, "x"), "network = 5", None), "line 1")
    assert not full_listener.failures and not phone_listener.failures, (full_listener.failures, phone_listener.failures)
    print("mobile bindings: all checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for node in NODES:
            node.stop()
