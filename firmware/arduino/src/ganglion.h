/* Ganglion's extensions over Firmata sysex: heartbeat with uptime and reset cause, watchdog.
 * Byte-level format: firmware/arduino/PROTOCOL.md. */
#ifndef GANGLION_GANGLION_H
#define GANGLION_GANGLION_H

#include <stdint.h>

/* Sysex command ids, in the range Firmata reserves for user-defined commands (0x01-0x0F). */
#define GANGLION_HEARTBEAT 0x0A
#define GANGLION_HANG 0x0B

#define HEARTBEAT_VERSION 1
#define DEFAULT_HEARTBEAT_MS 1000

/* Reset causes (the heartbeat's "cause" byte). */
#define CAUSE_UNKNOWN 0
#define CAUSE_POWER_ON 1
#define CAUSE_EXTERNAL 2
#define CAUSE_BROWN_OUT 3
#define CAUSE_WATCHDOG 4
#define CAUSE_JTAG 5

void ganglion_init(void);
/* Sends a heartbeat when one is due. */
void ganglion_poll(uint32_t now);
void ganglion_send_heartbeat(uint32_t now);
/* A sysex frame Firmata did not handle: [0] is the command id. Ignores anything not ours. */
void ganglion_sysex(const uint8_t *msg, uint8_t len);

#endif
