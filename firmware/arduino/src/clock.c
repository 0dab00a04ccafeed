#include "clock.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include <util/delay.h>

static volatile uint32_t ms;
static volatile uint16_t us_frac;

/* Timer 0 runs in fast PWM with prescaler 64, so it overflows every 256 * 64 / 16 MHz = 1024 us.
 * Keeping it in PWM mode (rather than CTC at exactly 1 ms) leaves both of its outputs usable for PWM;
 * the 24 us per overflow are accumulated so the clock does not drift. The overflow is also what wakes
 * the CPU from idle sleep once per millisecond. */
ISR(TIMER0_OVF_vect) {
  uint32_t m = ms + 1;
  uint16_t f = us_frac + 24;
  if (f >= 1000) {
    f -= 1000;
    m++;
  }
  us_frac = f;
  ms = m;
}

void clock_init(void) {
  TCCR0A = _BV(WGM01) | _BV(WGM00);
  TCCR0B = _BV(CS01) | _BV(CS00);
  TIMSK0 = _BV(TOIE0);

  /* 8-bit phase-correct PWM at ~490 Hz on the other timers (what Arduino boards are expected to do). */
  TCCR1A = _BV(WGM10);
  TCCR1B = _BV(CS11) | _BV(CS10);
  TCCR2A = _BV(WGM20);
  TCCR2B = _BV(CS22);
#if defined(TCCR3A)
  TCCR3A = _BV(WGM30);
  TCCR3B = _BV(CS31) | _BV(CS30);
  TCCR4A = _BV(WGM40);
  TCCR4B = _BV(CS41) | _BV(CS40);
  TCCR5A = _BV(WGM50);
  TCCR5B = _BV(CS51) | _BV(CS50);
#endif
}

uint32_t millis(void) {
  uint8_t sreg = SREG;
  cli();
  uint32_t m = ms;
  SREG = sreg;
  return m;
}

void delay_us(uint16_t n) {
  while (n--) {
    _delay_us(1);
    if ((n & 0xff) == 0) wdt_reset();
  }
}
