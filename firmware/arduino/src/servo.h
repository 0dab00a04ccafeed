/* Hobby servos on up to SERVO_MAX pins, driven by one 16-bit timer (timer 1 on the 328P, timer 5 on the
 * 2560). While any servo is attached that timer cannot do PWM, as with the Arduino Servo library. */
#ifndef GANGLION_SERVO_H
#define GANGLION_SERVO_H

#include <stdint.h>

/* Returns 0 when all slots are taken. */
uint8_t servo_attach(uint8_t pin);
void servo_detach(uint8_t pin);
/* value < 544: an angle in degrees (0..180) between the pin's min and max pulse; otherwise microseconds. */
void servo_write(uint8_t pin, uint16_t value);
/* SERVO_CONFIG: pulse range in microseconds for angle writes on this pin. */
void servo_config(uint8_t pin, uint16_t min_us, uint16_t max_us);
/* True while the servo timer is taken (PWM on its outputs is refused). */
uint8_t servo_active(void);
uint8_t servo_free_slot(void);
void servo_reset(void);

#endif
