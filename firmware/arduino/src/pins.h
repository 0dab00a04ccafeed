/* The board's pin table (Arduino pin numbers, as Firmata hosts use them) and per-pin mode and value. */
#ifndef GANGLION_PINS_H
#define GANGLION_PINS_H

#include <stdint.h>

#include "config.h"

/* Firmata pin modes (wire values). */
#define MODE_INPUT 0x00
#define MODE_OUTPUT 0x01
#define MODE_ANALOG 0x02
#define MODE_PWM 0x03
#define MODE_SERVO 0x04
#define MODE_I2C 0x06
#define MODE_PULLUP 0x0B
#define MODE_NONE 0x7F /* serial pins: not offered to the host */

#define NO_ADC 0x7F
#define NO_PWM 0xFF
#define NO_PORT 0xFF

/* Capability bits (which modes a pin supports). */
#define CAP_DIGITAL 0x01 /* input, pullup, output */
#define CAP_I2C 0x02
#define CAP_SERVO 0x04

typedef struct {
  uint8_t port; /* index into the board's port table, NO_PORT for analog-only pins */
  uint8_t mask; /* bit within that port */
  uint8_t adc;  /* ADC channel, NO_ADC if none */
  uint8_t pwm;  /* PWM output id, NO_PWM if none */
  uint8_t caps;
} pin_def_t;

extern uint8_t pin_mode[TOTAL_PINS];
/* Last value written: output level, PWM duty, servo position. */
extern uint16_t pin_value[TOTAL_PINS];

void pin_def(uint8_t pin, pin_def_t *out);
/* Static capability, as reported in the capability response. */
uint8_t pin_supports(uint8_t pin, uint8_t mode);
/* The pin's PORTx register (servo pulses are written there from an interrupt). */
volatile uint8_t *pin_port_register(uint8_t pin);
/* Returns 0 if the pin cannot take the mode now (unsupported, or its timer is busy with the other of
 * PWM/servo, or no servo slot is free); nothing is changed then. */
uint8_t pin_set_mode(uint8_t pin, uint8_t mode);
void pin_write(uint8_t pin, uint8_t level);
/* PWM duty (0..255) or servo position, depending on the pin's mode. */
void pin_analog_write(uint8_t pin, uint16_t value);
/* Firmata port value (8 pins) of the pins in INPUT/PULLUP mode. */
uint8_t port_read_inputs(uint8_t port);
/* Put every pin back to its power-on mode (analog pins ANALOG, the others OUTPUT low). */
void pins_reset(void);

#endif
