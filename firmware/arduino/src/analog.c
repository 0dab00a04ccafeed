#include "analog.h"

#include <avr/io.h>

void analog_init(void) {
  /* Prescaler 128: 125 kHz ADC clock at 16 MHz, inside the 50-200 kHz range for full resolution. */
  ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);
}

uint16_t analog_read(uint8_t channel) {
#if defined(MUX5)
  /* Channels 8-15 of the 2560 are selected with MUX5 in ADCSRB. */
  if (channel & 0x08)
    ADCSRB |= _BV(MUX5);
  else
    ADCSRB &= ~_BV(MUX5);
#endif
  ADMUX = _BV(REFS0) | (channel & 0x07);
  ADCSRA |= _BV(ADSC);
  /* ~104 us; blocking is simpler than the ADC interrupt and short next to the 19 ms sampling interval. */
  while (ADCSRA & _BV(ADSC)) {
  }
  return ADC;
}
