"""The Python `iec62056-21` client as the module under test of `rig module --link PATH`: a
third-party reader in the loop. It runs the package's standard readout (`startup`, then
`ack_with_option_select("readout")` and the baud switch) again and again for the seconds given,
and prints one JSON object with what each attempt raised.

Against a mode A meter (the 351's module interface) the package reads the identification as mode
C, acknowledges with `ACK 0 ' ' 0` CR LF and then fails to switch to the rate of ' ' ("Not a valid
baudrate"): rig module names the acknowledgement as a request that is not `/?!` CR LF.
"""
import json
import sys
import time

from iec62056_21 import client

port = sys.argv[1]
run_s = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
errors = []
end = time.monotonic() + run_s
while time.monotonic() < end:
    c = client.Iec6205621Client.with_serial_transport(port=port)
    try:
        c.connect()
        c.standard_readout()
        errors.append(None)
    except Exception as e:  # the package raises ValueError, TimeoutError, serial errors
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        try:
            c.disconnect()
        except Exception:
            pass
    time.sleep(3.0)
print(json.dumps({"attempts": len(errors), "errors": errors}))
