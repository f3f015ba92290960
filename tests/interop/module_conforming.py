"""A conforming software module for `rig module --link PATH`: polls the meter in IEC 61107 mode A
as 004 asks (`/?!` CR LF, 300 baud 7E1), waits up to 1.6 s for the first character and 1.6 s
between characters (the 500 ms reaction and the 1500 ms inter-character limit, with margin),
reads to the BCC, checks it, and asks again 3 s after an answer (2 s after one it could not use).

Runs for the seconds given (default 120), then prints one JSON object: the requests it sent and
the answers it accepted. With `--forward FILE` it "forwards" the data sets of each accepted
answer: one JSON line per value, `{"obis": …, "value": …, "unit": …}`, appended to FILE (what
`module_report.py FILE` reports to `rig module --module-report`); `--forward-bad-bcc` also
forwards a whole answer whose BCC does not check (a defective module, for module.data).
Plain pyserial, no protocol package. The timeout is set when the port opens: changing it later
reconfigures the port, which a pty refuses at 300 baud 7E1 (termios EINVAL).
"""
import argparse
import json
import re
import time

import serial

args = argparse.ArgumentParser()
args.add_argument("port")
args.add_argument("run_s", nargs="?", type=float, default=120.0)
args.add_argument("--forward", metavar="FILE")
args.add_argument("--forward-bad-bcc", action="store_true")
args = args.parse_args()
port, run_s = args.port, args.run_s
WAIT_S = 1.6
DATA_SET = re.compile(rb"([0-9.]+)\(([^)*]*)(?:\*([^)]*))?\)")


def read_answer(ser):
    """Characters up to the one after ETX, or what came before a silence of WAIT_S."""
    got = bytearray()
    while True:
        c = ser.read(1)
        if not c:
            return bytes(got), False
        got += c
        if len(got) >= 2 and got[-2] == 0x03:
            return bytes(got), True


def bcc_ok(answer):
    stx = answer.find(b"\x02")
    if stx < 0:
        return False
    x = 0
    for b in answer[stx + 1:-1]:
        x ^= b
    return (x & 0x7F) == (answer[-1] & 0x7F)


def forward(answer):
    """Appends the answer's data sets (between STX and ETX) to the --forward file."""
    if not args.forward:
        return
    stx, etx = answer.find(b"\x02"), answer.find(b"\x03")
    with open(args.forward, "a") as f:
        for m in DATA_SET.finditer(answer[stx + 1:etx]):
            value = {"obis": m[1].decode(), "value": m[2].decode()}
            if m[3]:
                value["unit"] = m[3].decode()
            f.write(json.dumps(value) + "\n")


sent = accepted = 0
end = time.monotonic() + run_s
with serial.Serial(port, baudrate=300, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
                   stopbits=serial.STOPBITS_ONE, timeout=WAIT_S) as ser:
    while time.monotonic() < end:
        ser.reset_input_buffer()
        ser.write(b"/?!\r\n")
        sent += 1
        answer, whole = read_answer(ser)
        good = whole and bcc_ok(answer)
        accepted += good
        if good or (whole and args.forward_bad_bcc):
            forward(answer)
        time.sleep(3.0 if good else 2.0)
print(json.dumps({"requests": sent, "accepted": accepted}))
