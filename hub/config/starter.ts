/**
 * The commented starter `fleet.yaml` that `ganglion init` writes. It must always parse: a test loads it.
 */

/** Returns the starter fleet file: hub settings at their defaults, and commented examples of each board kind. */
export function starterFleetYaml(): string {
  return `# Ganglion fleet file: the hub's settings and the boards it supervises.
# Every key is checked when the hub starts; a misspelt key is refused with its line number.
# Reference: DESIGN.md §2. JSON with the same keys is accepted too (fleet.json).

hub:
  http:
    host: 127.0.0.1        # bind elsewhere and POST/DELETE need --api-token (or GANGLION_API_TOKEN)
    port: 8080             # --http-port / GANGLION_HTTP_PORT override; 0 picks a free port
  mqtt:
    host: 127.0.0.1        # 0.0.0.0 for Raspberry Pis on your LAN (then also set tls below)
    port: 1883             # --mqtt-port / GANGLION_MQTT_PORT override
    topicPrefix: ganglion
    anonymousRead: false   # true lets anyone read state/, status and hub/events
    maxPacketSize: 65536   # bytes; a bigger packet drops only that connection
    # broker: mqtt://10.0.0.2:1883   # use an existing broker instead of the embedded one
  # tls:                   # mqtts for boards on a LAN
  #   cert: ./certs/hub.crt
  #   key: ./certs/hub.key
  dataDir: ./data          # SQLite history lives here
  retention: 100000        # telemetry rows kept per sensor (a sensor may set its own)
  heartbeatMs: 5000        # how often Pi agents send a heartbeat

# Add devices with \`ganglion device add <id> --board <kind>\`: it writes the entry (and, for a Pi, the hash of a
# fresh token it prints once). Ids: lowercase letters, digits and dashes; "hub" is reserved.
devices: []
# Examples:
#
# - id: uno-1
#   board: uno                     # arduino-uno, arduino-nano, arduino-mega (uno, nano, mega also accepted)
#   link:
#     type: serial
#     path: /dev/ttyACM0           # or vendorId: "2341" and productId: "0043" to find it by USB id
#   sensors:
#     - id: temp
#       kind: thermometer
#       unit: °C
#       pin: A0
#       periodMs: 1000
#       range: [-20, 60]           # readings outside are rejected
#       maxRatePerS: 5             # faster jumps are flagged as noise
#       staleMs: 5000              # no reading for this long: faulty
#       flatLineMs: 60000          # no change for this long: faulty (stuck)
#   actuators:
#     - id: led
#       kind: led
#       pin: 13
#       initial: false
#
# - id: pi-1
#   board: raspberry-pi
#   link:
#     type: mqtt
#     tokenHash: scrypt$16384$8$1$...   # written by \`ganglion device add pi-1 --board raspberry-pi\`
#   sensors:
#     - id: temp
#       kind: thermometer
#       unit: °C
#       address: 28-0316a2794bff   # 1-Wire id; I2C sensors use their address (0x48) or iio:deviceN
#       periodMs: 2000
#       range: [-55, 125]
`;
}
