/* Timer 0 drives the millisecond clock (and PWM on its two outputs); the other timers are set up for PWM. */
#ifndef GANGLION_CLOCK_H
#define GANGLION_CLOCK_H

#include <stdint.h>

void clock_init(void);
uint32_t millis(void);
/* Busy-wait n microseconds (approximate), feeding the watchdog. */
void delay_us(uint16_t n);

#endif
