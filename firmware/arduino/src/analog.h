/* The ADC: 10-bit single conversions against AVcc. */
#ifndef GANGLION_ANALOG_H
#define GANGLION_ANALOG_H

#include <stdint.h>

void analog_init(void);
uint16_t analog_read(uint8_t channel);

#endif
