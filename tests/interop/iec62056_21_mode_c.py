"""Read `rig sim --link PATH --framing 7bit` in IEC 62056-21 protocol mode C with the
`iec62056-21` package's own client (`Iec6205621Client.standard_readout`): the request at 300
baud, the identification, `ACK 0 Z 0` CR LF, the package's switch to the rate the identification
announces, and the data message with its BCC check.

Prints one JSON object: the baud character and the rate the client switched to, and the data
sets. Exit 0 when the package accepted the message (it raises on a bad BCC or a timeout).
"""
import json
import sys

from iec62056_21.client import Iec6205621Client

client = Iec6205621Client.with_serial_transport(port=sys.argv[1])
client.connect()
try:
    answer = client.standard_readout()
finally:
    client.disconnect()

print(json.dumps({
    "manufacturer": client.manufacturer_id,
    "baud_char": client.switchover_baudrate_char,
    "switched_to": client.switchover_baudrate,
    "data_sets": [
        {"address": ds.address, "value": ds.value, "unit": ds.unit} for ds in answer.data
    ],
}))
