#!/usr/bin/env python3
"""Fit the shadowing and body-loss parameters of meshtrace's path-loss model
to the MIT Lincoln Laboratory BLE RSSI measurements at 6 ft (1.83 m).

Data: MIT Lincoln Laboratory, "BLE-RSSI-Various-Static-Configurations"
(GitHub mitll/BLE-RSSI-Various-Static-Configurations), (c) 2020 Massachusetts
Institute of Technology, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/); DISTRIBUTION STATEMENT A,
approved for public release. The file this script reads holds rows extracted
unchanged from the iPhone and nRF52 logs (see the data's README). The data
file is not part of this repository; pass its path:

    python3 scripts/fit-mitll.py PATH/TO/mitll-ble-rssi-6ft.csv.gz [--receiver iphone_x]

Pure Python 3 (standard library only). Deterministic: no random draws; model
quantiles are computed from the model's distribution function by bisection.

What it fits (docs/risk.md, "Calibration"). A *collect* is ~30 s of one
transmitting phone in one environment, user rotation, repeat and carry
position: the static analogue of one contact.

* reception (fast) fading: receptions around their collect's median, against
  Rayleigh fading (received power exponentially distributed: in dB,
  `10 log10(E / ln 2)`, median 0) and against a normal law;
* carry (body) loss per carry position: the collect medians of a carry
  position minus those of `held_to_ear`, averaged over environments;
* slow (contact) sigma: spread of collect medians once the carry loss is
  removed (environment, rotation, repeat and device placement);
* a quantile table of RSSI around the overall median, data vs the model
  `carry loss + N(0, slow) + Rayleigh fading`.

The distance law (1 m figure, exponent) is not fitted: the data has one
distance.
"""

import argparse
import collections
import csv
import gzip
import math
import statistics as st

RSSI_UNKNOWN = 127
CARRY_REFERENCE = "held_to_ear"
QUANTILES = [0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99]


def load(path, receiver):
    groups = collections.defaultdict(list)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["receiver"] != receiver:
                continue
            rssi = int(float(row["rssi_dbm"]))
            if rssi == RSSI_UNKNOWN:
                continue
            key = (row["environment"], row["user_rotation_deg"], row["collect"],
                   row["carry_position"])
            groups[key].append(rssi)
    return groups


def quantile(sorted_values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


LN2 = math.log(2.0)


def rayleigh_cdf(r):
    """P(fade <= r dB) for fade = 10 log10(E / ln 2), E ~ Exp(1)."""
    return -math.expm1(-LN2 * 10.0 ** (r / 10.0))


def rayleigh_quantile(q):
    return 10.0 * math.log10(-math.log1p(-q) / LN2)


def bisect(cdf, q):
    lo, hi = -100.0, 100.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def model_cdf(x, components, slow_sd, step=0.25):
    """CDF of carry loss (mixture) + N(0, slow_sd) + Rayleigh fade, by
    integrating over the slow term on a grid (±6 sd)."""
    total = 0.0
    n = int(6 * slow_sd / step)
    for i in range(-n, n + 1):
        y = i * step
        w = math.exp(-0.5 * (y / slow_sd) ** 2) * step / (slow_sd * math.sqrt(2 * math.pi))
        total += w * sum(cw * rayleigh_cdf(x - y - m) for cw, m in components)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", help="path to mitll-ble-rssi-6ft.csv.gz")
    ap.add_argument("--receiver", default="iphone_x", choices=["iphone_x", "nrf52"])
    args = ap.parse_args()
    groups = load(args.csv, args.receiver)
    groups = {k: v for k, v in groups.items() if len(v) >= 10}
    n_rows = sum(len(v) for v in groups.values())
    print(f"receiver {args.receiver}: {len(groups)} collects, {n_rows} receptions "
          f"(MIT Lincoln Laboratory data, CC BY 4.0)")

    # Fast: receptions around their collect's median.
    medians = {k: st.median(v) for k, v in groups.items()}
    resid = sorted(r - medians[k] for k, v in groups.items() for r in v)
    fast_sd = st.pstdev(resid)
    mad = st.median(abs(r) for r in resid)
    print(f"\nreception spread around the collect median: sd {fast_sd:.2f} dB, "
          f"1.4826*MAD {1.4826 * mad:.2f} dB")
    print("  quantile   data  Rayleigh  normal(sd)")
    for q in QUANTILES:
        z = bisect(phi, q)
        print(f"  {q:8.2f} {quantile(resid, q):+6.1f} {rayleigh_quantile(q):+9.1f} {z * fast_sd:+10.1f}")
    # sd of the median of n receptions, normal-equivalent: 1 / (2 f(0) sqrt(n))
    # with f the fade density at its median; the same as a normal law of
    # sd s for s = 1 / (2 f(0) sqrt(pi / 2)).
    f0 = LN2 * math.log(10.0) / 10.0 * 0.5
    median_sd1 = 1.0 / (2.0 * f0)
    print(f"  Rayleigh fading: sd {st.pstdev([rayleigh_quantile((i + 0.5) / 20000) for i in range(20000)]):.2f} dB; "
          f"median of n receptions has sd {median_sd1:.2f}/sqrt(n) dB, "
          f"as for a normal law of sd {median_sd1 / math.sqrt(math.pi / 2):.2f} dB")

    # Carry loss relative to held_to_ear, per environment, then averaged.
    by_env_carry = collections.defaultdict(list)
    for (env, _rot, _col, carry), m in medians.items():
        by_env_carry[(env, carry)].append(m)
    envs = sorted({e for e, _ in by_env_carry})
    carries = sorted({c for _, c in by_env_carry})
    loss = {}
    print("\ncarry loss vs held_to_ear (dB, positive = weaker), per environment:")
    for c in carries:
        diffs = []
        for e in envs:
            if (e, c) in by_env_carry and (e, CARRY_REFERENCE) in by_env_carry:
                diffs.append(st.mean(by_env_carry[(e, CARRY_REFERENCE)]) - st.mean(by_env_carry[(e, c)]))
        loss[c] = st.mean(diffs) if diffs else 0.0
        print(f"  {c:20s} {loss[c]:+5.1f}  (" + ", ".join(f"{d:+.1f}" for d in diffs) + ")")
    shares = {c: 1.0 / len(carries) for c in carries}
    mean_loss = sum(shares[c] * loss[c] for c in carries)
    var_loss = sum(shares[c] * (loss[c] - mean_loss) ** 2 for c in carries)
    print(f"  one end: mean {mean_loss:.2f} dB, sd {math.sqrt(var_loss):.2f} dB "
          f"(carry positions equally likely)")

    # Slow: collect medians without carry loss, around their mean.
    levels = [m + loss[k[3]] for k, m in medians.items()]
    slow_sd = st.pstdev(levels)
    env_means = {e: st.mean([m + loss[k[3]] for k, m in medians.items() if k[0] == e]) for e in envs}
    within_env = [m + loss[k[3]] - env_means[k[0]] for k, m in medians.items()]
    print(f"\ncollect level (carry loss removed): sd {slow_sd:.2f} dB; "
          f"between environments {st.pstdev(list(env_means.values())):.2f} dB, "
          f"within (rotation, repeat, placement) {st.pstdev(within_env):.2f} dB")
    for e in envs:
        print(f"  {e:32s} mean {env_means[e]:6.1f} dBm")

    # Whole distribution around the overall median: data vs model.
    all_rssi = sorted(r for v in groups.values() for r in v)
    center = quantile(all_rssi, 0.5)
    comps = [(shares[c], -loss[c]) for c in carries]
    model_q = {q: bisect(lambda x: model_cdf(x, comps, slow_sd), q) for q in QUANTILES}
    print(f"\nRSSI around the median ({center:.0f} dBm): data vs model "
          f"(carry loss + N(0, {slow_sd:.1f}) + Rayleigh fading)")
    print("  quantile   data   model")
    for q in QUANTILES:
        d = quantile(all_rssi, q) - center
        m = model_q[q] - model_q[0.5]
        print(f"  {q:8.2f} {d:+6.1f} {m:+7.1f}")

    dev = 3.0
    contact = math.sqrt(slow_sd ** 2 + 2 * var_loss + 2 * dev ** 2)
    print("\nfitted parameters:")
    print(f"  reception (fast) fading     Rayleigh; median-equivalent normal sd "
          f"{median_sd1 / math.sqrt(math.pi / 2):.1f} dB (sd of one reception {fast_sd:.1f} dB)")
    print(f"  slow shadowing sigma        {slow_sd:.1f} dB")
    print(f"  body loss, both ends, mean  {2 * mean_loss:.1f} dB")
    print(f"  body loss, both ends, sd    {math.sqrt(2 * var_loss):.1f} dB")
    print(f"  contact sigma (slow, body both ends, device offsets {dev:.0f} dB each) "
          f"{contact:.1f} dB")


if __name__ == "__main__":
    main()
