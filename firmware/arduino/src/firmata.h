/* Firmata 2.x: the host-facing protocol (parser, replies, reporting). */
#ifndef GANGLION_FIRMATA_H
#define GANGLION_FIRMATA_H

#include <avr/pgmspace.h>
#include <stdint.h>

/* Message commands. */
#define DIGITAL_MESSAGE 0x90
#define ANALOG_MESSAGE 0xE0
#define REPORT_ANALOG 0xC0
#define REPORT_DIGITAL 0xD0
#define SET_PIN_MODE 0xF4
#define SET_DIGITAL_PIN_VALUE 0xF5
#define REPORT_VERSION 0xF9
#define SYSTEM_RESET 0xFF
#define START_SYSEX 0xF0
#define END_SYSEX 0xF7

/* Sysex commands. */
#define ANALOG_MAPPING_QUERY 0x69
#define ANALOG_MAPPING_RESPONSE 0x6A
#define CAPABILITY_QUERY 0x6B
#define CAPABILITY_RESPONSE 0x6C
#define PIN_STATE_QUERY 0x6D
#define PIN_STATE_RESPONSE 0x6E
#define EXTENDED_ANALOG 0x6F
#define SERVO_CONFIG 0x70
#define STRING_DATA 0x71
#define I2C_REQUEST 0x76
#define I2C_REPLY 0x77
#define I2C_CONFIG 0x78
#define REPORT_FIRMWARE 0x79
#define SAMPLING_INTERVAL 0x7A

void firmata_init(void);
/* Feed one received byte to the parser. */
void firmata_byte(uint8_t b);
/* Work due at time now: digital change reports, and analog/I2C samples every sampling interval. */
void firmata_poll(uint32_t now);
void firmata_send_version(void);
void firmata_send_firmware(void);

/* Helpers shared with the Ganglion extensions. */
void sysex_begin(uint8_t cmd);
void sysex_end(void);
/* A value as 7-bit bytes, least significant first. */
void send_7bit(uint32_t v, uint8_t nbytes);
/* A STRING_DATA message from flash (each character as two 7-bit bytes). */
void send_string_P(const char *s);

#endif
