#!/usr/bin/env python3
"""Times the Python IEC 62056-21 parsers on telegram corpora, for `benches/decode.rs`.

Usage: python3 decode_peers.py [--rounds N] [--round-secs S] NAME=FILE [NAME=FILE ...]

Each FILE holds one or more complete mode A answers back to back (identification line, STX,
data sets, '!' CR LF, ETX, BCC), 7-bit characters. Every peer gets the same bytes and, in each
timed pass, frames them itself (the '/' that starts an answer, the ETX and the BCC after it, as
the peers' own transports do) and parses each answer to data sets with values and units:

- iec62056-21 (0.0.2, pwitab): `IdentificationMessage.from_bytes` on the identification line
  and `ReadoutDataMessage.from_bytes` on STX .. BCC. It checks the BCC (XOR, raising ValueError
  on a mismatch), strips '!' CR LF ETX BCC by position, splits lines with `str.splitlines` and
  data sets at each ')' with regular expressions. It does not check parity, line ends or the
  characters of a data set, and it drops the first character of the identification text
  (it expects mode C's '\\' + mode character there).
- iec62056 (0.5.1, jonkerj): `iec62056.parser.Parser().parse(str)` (a lark Earley grammar; the
  parser is built once, outside the timing). It checks the layout against its grammar and converts
  each value to float/int/str by its table of OBIS codes, raising on a code not in the table. It
  does not check the BCC (it keeps the character) and accepts only addresses `C.D` or `A-B:C.D.E`,
  so it cannot read the 351 Combi's three-part addresses such as `1.8.0`.

Before timing, one untimed pass checks that the peer parsed every answer: it counts the answers
and data sets and reports the sum of the numeric values (first value of each data set, summed in
order, printed exactly) and the last data set, which the Rust bench compares with its own decode. A peer that raises on any answer is reported with the error
and not timed (timing an exception path would say nothing). A peer that is not installed is
reported with the pip command that installs it.

Timing: `time.perf_counter` around whole passes over the corpus; each round runs passes until
at least --round-secs have gone by (at least one pass); MB/s per round is bytes parsed / time.

Prints one JSON object on stdout. Standard library only, besides the peers.
"""

import argparse
import importlib
import importlib.metadata
import json
import platform
import sys
import time

PEERS = {
    "iec62056-21": {"module": "iec62056_21.messages", "pip": "pip install iec62056-21==0.0.2"},
    "iec62056": {"module": "iec62056.parser", "pip": "pip install iec62056==0.5.1"},
}


def split_answers(data):
    """Frames a corpus into answers: from each '/' to the ETX after it, plus the BCC."""
    out = []
    i = 0
    n = len(data)
    while True:
        s = data.find(b"/", i)
        if s < 0:
            return out
        e = data.find(b"\x03", s)
        if e < 0 or e + 1 >= n:
            raise ValueError(f"answer at offset {s} has no ETX and BCC")
        out.append(data[s : e + 2])
        i = e + 2


def number(v):
    """The value as a float, or None (the Rust side sums `Value::number()` the same way)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if s and all(c in "0123456789.,+-" for c in s) and any(c.isdigit() for c in s):
            try:
                return float(s.replace(",", "."))
            except ValueError:
                return None
    return None


def make_iec62056_21(mod):
    ident_cls = mod.IdentificationMessage
    readout_cls = mod.ReadoutDataMessage

    def timed(data):
        sets = 0
        for a in split_answers(data):
            lf = a.index(b"\n") + 1
            ident_cls.from_bytes(a[:lf])
            msg = readout_cls.from_bytes(a[lf:])
            for line in msg.data_block.data_lines:
                sets += len(line.data_sets)
        return sets

    def checked(data):
        answers = split_answers(data)
        rows, ident = [], None
        for a in answers:
            lf = a.index(b"\n") + 1
            im = ident_cls.from_bytes(a[:lf])
            ident = {"manufacturer": im.manufacturer, "text": im.identification}
            msg = readout_cls.from_bytes(a[lf:])
            for line in msg.data_block.data_lines:
                for ds in line.data_sets:
                    rows.append((ds.address, ds.value, ds.unit))
        return len(answers), rows, ident

    return timed, checked


def make_iec62056(mod):
    parser = mod.Parser()

    def address(ref):
        a, b, c, d, e = ref.id
        return f"{c}.{d}" if a is None and b is None and e is None else f"{a}-{b}:{c}.{d}.{e}"

    def timed(data):
        sets = 0
        for a in split_answers(data):
            sets += len(parser.parse(a.decode("latin-1")).objects)
        return sets

    def checked(data):
        answers = split_answers(data)
        rows, ident = [], None
        for a in answers:
            t = parser.parse(a.decode("latin-1"))
            ident = {"manufacturer": t.vendor, "text": t.model}
            for o in t.objects:
                rows.append((address(o.reference), o.value, o.unit))
        return len(answers), rows, ident

    return timed, checked


FACTORIES = {"iec62056-21": make_iec62056_21, "iec62056": make_iec62056}


def time_peer(timed, data, rounds, round_secs):
    results = []
    for _ in range(rounds):
        passes = 0
        start = time.perf_counter()
        while True:
            timed(data)
            passes += 1
            elapsed = time.perf_counter() - start
            if elapsed >= round_secs:
                break
        results.append(len(data) * passes / elapsed / 1e6)
    return results


def json_value(v):
    return v if isinstance(v, (int, float, str)) or v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-secs", type=float, default=0.3)
    ap.add_argument("corpora", nargs="+", metavar="NAME=FILE")
    args = ap.parse_args()
    corpora = []
    for c in args.corpora:
        name, _, path = c.partition("=")
        with open(path, "rb") as f:
            corpora.append((name, f.read()))

    report = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "rounds": args.rounds,
        "round_secs": args.round_secs,
        "peers": {},
    }
    for peer, info in PEERS.items():
        entry = {"pip": info["pip"]}
        report["peers"][peer] = entry
        try:
            mod = importlib.import_module(info["module"])
            entry["version"] = importlib.metadata.version(peer)
        except ImportError as e:
            entry["installed"] = False
            entry["error"] = str(e)
            continue
        entry["installed"] = True
        if peer == "iec62056":
            entry["lark"] = importlib.metadata.version("lark")
        timed, checked = FACTORIES[peer](mod)
        entry["corpora"] = {}
        for name, data in corpora:
            res = {"bytes": len(data)}
            entry["corpora"][name] = res
            try:
                answers, rows, ident = checked(data)
            except Exception as e:  # the peer rejects this corpus: report, do not time
                res["ok"] = False
                first = str(e).strip().splitlines()
                res["error"] = f"{type(e).__name__}: {first[0] if first else ''}"
                continue
            nums = [number(v) for _, v, _ in rows]
            res.update(
                ok=True,
                answers=answers,
                data_sets=len(rows),
                # repr: exact, so the Rust side can compare bit for bit (same values, same order)
                value_sum=repr(sum(x for x in nums if x is not None)),
                numbers=sum(1 for x in nums if x is not None),
                last=[rows[-1][0], json_value(rows[-1][1]), rows[-1][2]] if rows else None,
                ident=ident,
            )
            if timed(data) != len(rows):  # the timed path must do the same work
                res["ok"] = False
                res["error"] = "timed pass counted a different number of data sets"
                continue
            res["mbps"] = time_peer(timed, data, args.rounds, args.round_secs)
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
