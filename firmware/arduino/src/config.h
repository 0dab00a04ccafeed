/* Board selection and sizes. One of BOARD_UNO, BOARD_NANO, BOARD_MEGA is set by the Makefile. */
#ifndef GANGLION_CONFIG_H
#define GANGLION_CONFIG_H

#include <stdint.h>

#define FIRMWARE_NAME "Ganglion"
#define FIRMWARE_MAJOR 0
#define FIRMWARE_MINOR 1

/* Firmata protocol version we speak (2.6 message set, subset of features). */
#define PROTOCOL_MAJOR 2
#define PROTOCOL_MINOR 6

#define SERIAL_BAUD 57600UL

#if defined(BOARD_MEGA)
#define TOTAL_PINS 70
#define TOTAL_PORTS 9    /* Firmata ports of 8 pins: 0..8 */
#define ANALOG_CHANNELS 16
#define RX_BUF_SIZE 128  /* powers of two: indices wrap with a mask */
#define TX_BUF_SIZE 256
#define SYSEX_BUF_SIZE 128
#define I2C_MAX_QUERIES 8
#define SERVO_MAX 8
#elif defined(BOARD_UNO) || defined(BOARD_NANO)
#if defined(BOARD_NANO)
#define TOTAL_PINS 22    /* pins 20, 21 are A6, A7: analog only */
#define ANALOG_CHANNELS 8
#else
#define TOTAL_PINS 20
#define ANALOG_CHANNELS 6
#endif
#define TOTAL_PORTS 3
#define RX_BUF_SIZE 64
#define TX_BUF_SIZE 128
#define SYSEX_BUF_SIZE 80 /* room for a 32-byte I2C write (2 wire bytes per data byte) */
#define I2C_MAX_QUERIES 4
#define SERVO_MAX 4
#else
#error "define BOARD_UNO, BOARD_NANO or BOARD_MEGA"
#endif

#define I2C_MAX_BYTES 32

#endif
