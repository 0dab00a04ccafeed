#include "servo.h"

#include <avr/interrupt.h>
#include <avr/io.h>

#include "config.h"
#include "pins.h"

/* The timer counts 0.5 us ticks (prescaler 8). Pulses are produced one servo after the other: the compare
 * interrupt lowers the current pin, raises the next one and schedules the end of its pulse; after the
 * last one it waits for the end of the 20 ms frame. */
#define TICKS_PER_US 2
#define FRAME_TICKS (20000U * TICKS_PER_US)
#define DEFAULT_MIN_US 544
#define DEFAULT_MAX_US 2400

#if defined(BOARD_MEGA)
#define S_TCCRA TCCR5A
#define S_TCCRB TCCR5B
#define S_TCNT TCNT5
#define S_OCR OCR5A
#define S_TIMSK TIMSK5
#define S_OCIE OCIE5A
#define S_VECT TIMER5_COMPA_vect
#define S_PWM_TCCRA _BV(WGM50)
#define S_PWM_TCCRB (_BV(CS51) | _BV(CS50))
#else
#define S_TCCRA TCCR1A
#define S_TCCRB TCCR1B
#define S_TCNT TCNT1
#define S_OCR OCR1A
#define S_TIMSK TIMSK1
#define S_OCIE OCIE1A
#define S_VECT TIMER1_COMPA_vect
#define S_PWM_TCCRA _BV(WGM10)
#define S_PWM_TCCRB (_BV(CS11) | _BV(CS10))
#endif

typedef struct {
  uint8_t pin; /* 0xFF: free slot */
  volatile uint8_t *port;
  uint8_t mask;
  uint16_t ticks;
  uint16_t min_us, max_us;
} servo_t;

static servo_t servos[SERVO_MAX];
static volatile int8_t current = -1;
static uint8_t attached;

ISR(S_VECT) {
  int8_t c = current;
  if (c < 0)
    S_TCNT = 0; /* frame start */
  else if (servos[c].pin != 0xFF)
    *servos[c].port &= ~servos[c].mask;
  c++;
  while (c < SERVO_MAX && servos[c].pin == 0xFF) c++;
  if (c < SERVO_MAX) {
    *servos[c].port |= servos[c].mask;
    S_OCR = S_TCNT + servos[c].ticks;
    current = c;
  } else {
    uint16_t next = S_TCNT + 16;
    S_OCR = next < FRAME_TICKS ? FRAME_TICKS : next;
    current = -1;
  }
}

static servo_t *find(uint8_t pin) {
  for (uint8_t i = 0; i < SERVO_MAX; i++)
    if (servos[i].pin == pin) return &servos[i];
  return 0;
}

uint8_t servo_active(void) { return attached != 0; }

uint8_t servo_free_slot(void) { return find(0xFF) != 0; }

void servo_reset(void) {
  S_TIMSK &= ~_BV(S_OCIE);
  for (uint8_t i = 0; i < SERVO_MAX; i++) {
    servos[i].pin = 0xFF;
    servos[i].min_us = DEFAULT_MIN_US;
    servos[i].max_us = DEFAULT_MAX_US;
  }
  attached = 0;
  current = -1;
  S_TCCRA = S_PWM_TCCRA;
  S_TCCRB = S_PWM_TCCRB;
}

uint8_t servo_attach(uint8_t pin) {
  servo_t *s = find(pin);
  if (!s) s = find(0xFF);
  if (!s) return 0;
  if (s->pin == pin) return 1;
  pin_def_t d;
  pin_def(pin, &d);
  uint8_t sreg = SREG;
  cli();
  s->port = pin_port_register(pin);
  s->mask = d.mask;
  s->ticks = 1500 * TICKS_PER_US;
  s->pin = pin;
  SREG = sreg;
  if (attached++ == 0) {
    /* Take the timer: normal mode, 0.5 us per tick, outputs disconnected. */
    S_TCCRA = 0;
    S_TCCRB = _BV(CS11);
    S_TCNT = 0;
    S_OCR = 100;
    current = -1;
    S_TIMSK |= _BV(S_OCIE);
  }
  return 1;
}

void servo_detach(uint8_t pin) {
  servo_t *s = find(pin);
  if (!s) return;
  uint8_t sreg = SREG;
  cli();
  *s->port &= ~s->mask;
  s->pin = 0xFF;
  SREG = sreg;
  if (--attached == 0) {
    S_TIMSK &= ~_BV(S_OCIE);
    S_TCCRA = S_PWM_TCCRA;
    S_TCCRB = S_PWM_TCCRB;
  }
}

void servo_config(uint8_t pin, uint16_t min_us, uint16_t max_us) {
  servo_t *s = find(pin);
  if (!s) return;
  s->min_us = min_us;
  s->max_us = max_us;
}

void servo_write(uint8_t pin, uint16_t value) {
  servo_t *s = find(pin);
  if (!s) return;
  uint16_t us = value;
  if (value < DEFAULT_MIN_US) {
    if (value > 180) value = 180;
    us = s->min_us + (uint16_t)(((uint32_t)(s->max_us - s->min_us) * value) / 180);
  }
  uint8_t sreg = SREG;
  cli();
  s->ticks = us * TICKS_PER_US;
  SREG = sreg;
}
