"""A conforming software module for `rig module --link PATH`: polls the meter in IEC 61107 mode A
as 004 asks (`/?!` CR LF, 300 baud 7E1), waits up to 1.6 s for the first character and 1.6 s
between characters (the 500 ms reaction and the 1500 ms inter-character limit, with margin),
reads to the BCC, checks it, and asks again 3 s after an answer (2 s after one it could not use).

Runs for the seconds given (default 120), then prints one JSON object: the requests it sent and
the answers it accepted. Plain pyserial, no protocol package. The timeout is set when the port opens: changing it later
reconfigures the port, which a pty refuses at 300 baud 7E1 (termios EINVAL).
"""
import json
import sys
import time

import serial

port = sys.argv[1]
run_s = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
WAIT_S = 1.6


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
        time.sleep(3.0 if good else 2.0)
print(json.dumps({"requests": sent, "accepted": accepted}))
