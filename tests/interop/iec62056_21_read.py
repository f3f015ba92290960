"""Read `rig sim --link PATH --framing 7bit` with the `iec62056-21` package's own message classes
over pyserial (mode A: request, identification, readout data message with its BCC check).

Prints one JSON object: the identification as the package parsed it, the raw identification line,
and the data sets. Exit 0 when the package accepted the message (it raises on a bad BCC).
"""
import json
import sys

import serial
from iec62056_21 import messages

port, baud = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300
with serial.Serial(port, baudrate=baud, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
                   stopbits=serial.STOPBITS_ONE, timeout=20) as ser:
    ser.write(messages.RequestMessage().to_bytes())
    ident_line = ser.read_until(b"\n")
    ident = messages.IdentificationMessage.from_bytes(ident_line)
    body = ser.read_until(b"\x03")
    body += ser.read(1)  # BCC
    readout = messages.ReadoutDataMessage.from_bytes(body)

sets = [
    {"address": ds.address, "value": ds.value, "unit": ds.unit}
    for line in readout.data_block.data_lines
    for ds in line.data_sets
]
print(json.dumps({
    "identification_line": ident_line.decode("latin-1"),
    "manufacturer": ident.manufacturer,
    "baud_char": ident.switchover_baudrate_char,
    "identification": ident.identification,
    "data_sets": sets,
}))
