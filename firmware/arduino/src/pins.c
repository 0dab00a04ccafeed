#include "pins.h"

#include <avr/io.h>
#include <avr/pgmspace.h>

#include "servo.h"

uint8_t pin_mode[TOTAL_PINS];
uint16_t pin_value[TOTAL_PINS];

/* PINx, DDRx and PORTx sit at consecutive addresses on both MCUs, so one pointer per port is enough. */
#define PIN_REG(base) (*(base))
#define DDR_REG(base) (*((base) + 1))
#define PORT_REG(base) (*((base) + 2))

/* PWM outputs: the timer's control register A, its compare register and the COMxy1 bit that connects it. */
enum {
  PWM_0A,
  PWM_0B,
  PWM_1A,
  PWM_1B,
  PWM_2A,
  PWM_2B,
#if defined(BOARD_MEGA)
  PWM_3A,
  PWM_3B,
  PWM_3C,
  PWM_4A,
  PWM_4B,
  PWM_4C,
  PWM_5A,
  PWM_5B,
  PWM_5C,
#endif
};

typedef struct {
  volatile uint8_t *tccra;
  volatile uint8_t *ocr;
  uint8_t com;
  uint8_t wide; /* 16-bit timer: the compare register must be written as a word (high byte first) */
} pwm_def_t;

static const pwm_def_t pwm_table[] = {
    [PWM_0A] = {&TCCR0A, &OCR0A, _BV(COM0A1), 0},
    [PWM_0B] = {&TCCR0A, &OCR0B, _BV(COM0B1), 0},
    [PWM_1A] = {&TCCR1A, (volatile uint8_t *)&OCR1A, _BV(COM1A1), 1},
    [PWM_1B] = {&TCCR1A, (volatile uint8_t *)&OCR1B, _BV(COM1B1), 1},
    [PWM_2A] = {&TCCR2A, &OCR2A, _BV(COM2A1), 0},
    [PWM_2B] = {&TCCR2A, &OCR2B, _BV(COM2B1), 0},
#if defined(BOARD_MEGA)
    [PWM_3A] = {&TCCR3A, (volatile uint8_t *)&OCR3A, _BV(COM3A1), 1},
    [PWM_3B] = {&TCCR3A, (volatile uint8_t *)&OCR3B, _BV(COM3B1), 1},
    [PWM_3C] = {&TCCR3A, (volatile uint8_t *)&OCR3C, _BV(COM3C1), 1},
    [PWM_4A] = {&TCCR4A, (volatile uint8_t *)&OCR4A, _BV(COM4A1), 1},
    [PWM_4B] = {&TCCR4A, (volatile uint8_t *)&OCR4B, _BV(COM4B1), 1},
    [PWM_4C] = {&TCCR4A, (volatile uint8_t *)&OCR4C, _BV(COM4C1), 1},
    [PWM_5A] = {&TCCR5A, (volatile uint8_t *)&OCR5A, _BV(COM5A1), 1},
    [PWM_5B] = {&TCCR5A, (volatile uint8_t *)&OCR5B, _BV(COM5B1), 1},
    [PWM_5C] = {&TCCR5A, (volatile uint8_t *)&OCR5C, _BV(COM5C1), 1},
#endif
};

#define D CAP_DIGITAL
#define DS (CAP_DIGITAL | CAP_SERVO)
#define DI (CAP_DIGITAL | CAP_SERVO | CAP_I2C)
#define P(port, bit, adc, pwm, caps) {port, 1 << (bit), adc, pwm, caps}
#define SERIAL_PIN(port, bit) {port, 1 << (bit), NO_ADC, NO_PWM, 0}

#if defined(BOARD_UNO) || defined(BOARD_NANO)
enum { PB_, PC_, PD_ };
static volatile uint8_t *const ports[] = {&PINB, &PINC, &PIND};

static const pin_def_t pin_table[TOTAL_PINS] PROGMEM = {
    SERIAL_PIN(PD_, 0),                 /* 0  RX */
    SERIAL_PIN(PD_, 1),                 /* 1  TX */
    P(PD_, 2, NO_ADC, NO_PWM, DS),      /* 2 */
    P(PD_, 3, NO_ADC, PWM_2B, DS),      /* 3  OC2B */
    P(PD_, 4, NO_ADC, NO_PWM, DS),      /* 4 */
    P(PD_, 5, NO_ADC, PWM_0B, DS),      /* 5  OC0B */
    P(PD_, 6, NO_ADC, PWM_0A, DS),      /* 6  OC0A */
    P(PD_, 7, NO_ADC, NO_PWM, DS),      /* 7 */
    P(PB_, 0, NO_ADC, NO_PWM, DS),      /* 8 */
    P(PB_, 1, NO_ADC, PWM_1A, DS),      /* 9  OC1A */
    P(PB_, 2, NO_ADC, PWM_1B, DS),      /* 10 OC1B */
    P(PB_, 3, NO_ADC, PWM_2A, DS),      /* 11 OC2A */
    P(PB_, 4, NO_ADC, NO_PWM, DS),      /* 12 */
    P(PB_, 5, NO_ADC, NO_PWM, DS),      /* 13 LED */
    P(PC_, 0, 0, NO_PWM, DS),           /* 14 A0 */
    P(PC_, 1, 1, NO_PWM, DS),           /* 15 A1 */
    P(PC_, 2, 2, NO_PWM, DS),           /* 16 A2 */
    P(PC_, 3, 3, NO_PWM, DS),           /* 17 A3 */
    P(PC_, 4, 4, NO_PWM, DI),           /* 18 A4 SDA */
    P(PC_, 5, 5, NO_PWM, DI),           /* 19 A5 SCL */
#if defined(BOARD_NANO)
    {NO_PORT, 0, 6, NO_PWM, 0},         /* 20 A6: ADC only */
    {NO_PORT, 0, 7, NO_PWM, 0},         /* 21 A7: ADC only */
#endif
};

#elif defined(BOARD_MEGA)
enum { PA_, PB_, PC_, PD_, PE_, PF_, PG_, PH_, PJ_, PK_, PL_ };
static volatile uint8_t *const ports[] = {&PINA, &PINB, &PINC, &PIND, &PINE, &PINF,
                                          &PING, &PINH, &PINJ, &PINK, &PINL};

static const pin_def_t pin_table[TOTAL_PINS] PROGMEM = {
    SERIAL_PIN(PE_, 0),                 /* 0  RX0 */
    SERIAL_PIN(PE_, 1),                 /* 1  TX0 */
    P(PE_, 4, NO_ADC, PWM_3B, DS),      /* 2 */
    P(PE_, 5, NO_ADC, PWM_3C, DS),      /* 3 */
    P(PG_, 5, NO_ADC, PWM_0B, DS),      /* 4 */
    P(PE_, 3, NO_ADC, PWM_3A, DS),      /* 5 */
    P(PH_, 3, NO_ADC, PWM_4A, DS),      /* 6 */
    P(PH_, 4, NO_ADC, PWM_4B, DS),      /* 7 */
    P(PH_, 5, NO_ADC, PWM_4C, DS),      /* 8 */
    P(PH_, 6, NO_ADC, PWM_2B, DS),      /* 9 */
    P(PB_, 4, NO_ADC, PWM_2A, DS),      /* 10 */
    P(PB_, 5, NO_ADC, PWM_1A, DS),      /* 11 */
    P(PB_, 6, NO_ADC, PWM_1B, DS),      /* 12 */
    P(PB_, 7, NO_ADC, PWM_0A, DS),      /* 13 LED */
    P(PJ_, 1, NO_ADC, NO_PWM, DS),      /* 14 */
    P(PJ_, 0, NO_ADC, NO_PWM, DS),      /* 15 */
    P(PH_, 1, NO_ADC, NO_PWM, DS),      /* 16 */
    P(PH_, 0, NO_ADC, NO_PWM, DS),      /* 17 */
    P(PD_, 3, NO_ADC, NO_PWM, DS),      /* 18 */
    P(PD_, 2, NO_ADC, NO_PWM, DS),      /* 19 */
    P(PD_, 1, NO_ADC, NO_PWM, DI),      /* 20 SDA */
    P(PD_, 0, NO_ADC, NO_PWM, DI),      /* 21 SCL */
    P(PA_, 0, NO_ADC, NO_PWM, DS),      /* 22 */
    P(PA_, 1, NO_ADC, NO_PWM, DS),      /* 23 */
    P(PA_, 2, NO_ADC, NO_PWM, DS),      /* 24 */
    P(PA_, 3, NO_ADC, NO_PWM, DS),      /* 25 */
    P(PA_, 4, NO_ADC, NO_PWM, DS),      /* 26 */
    P(PA_, 5, NO_ADC, NO_PWM, DS),      /* 27 */
    P(PA_, 6, NO_ADC, NO_PWM, DS),      /* 28 */
    P(PA_, 7, NO_ADC, NO_PWM, DS),      /* 29 */
    P(PC_, 7, NO_ADC, NO_PWM, DS),      /* 30 */
    P(PC_, 6, NO_ADC, NO_PWM, DS),      /* 31 */
    P(PC_, 5, NO_ADC, NO_PWM, DS),      /* 32 */
    P(PC_, 4, NO_ADC, NO_PWM, DS),      /* 33 */
    P(PC_, 3, NO_ADC, NO_PWM, DS),      /* 34 */
    P(PC_, 2, NO_ADC, NO_PWM, DS),      /* 35 */
    P(PC_, 1, NO_ADC, NO_PWM, DS),      /* 36 */
    P(PC_, 0, NO_ADC, NO_PWM, DS),      /* 37 */
    P(PD_, 7, NO_ADC, NO_PWM, DS),      /* 38 */
    P(PG_, 2, NO_ADC, NO_PWM, DS),      /* 39 */
    P(PG_, 1, NO_ADC, NO_PWM, DS),      /* 40 */
    P(PG_, 0, NO_ADC, NO_PWM, DS),      /* 41 */
    P(PL_, 7, NO_ADC, NO_PWM, DS),      /* 42 */
    P(PL_, 6, NO_ADC, NO_PWM, DS),      /* 43 */
    P(PL_, 5, NO_ADC, PWM_5C, DS),      /* 44 */
    P(PL_, 4, NO_ADC, PWM_5B, DS),      /* 45 */
    P(PL_, 3, NO_ADC, PWM_5A, DS),      /* 46 */
    P(PL_, 2, NO_ADC, NO_PWM, DS),      /* 47 */
    P(PL_, 1, NO_ADC, NO_PWM, DS),      /* 48 */
    P(PL_, 0, NO_ADC, NO_PWM, DS),      /* 49 */
    P(PB_, 3, NO_ADC, NO_PWM, DS),      /* 50 MISO */
    P(PB_, 2, NO_ADC, NO_PWM, DS),      /* 51 MOSI */
    P(PB_, 1, NO_ADC, NO_PWM, DS),      /* 52 SCK */
    P(PB_, 0, NO_ADC, NO_PWM, DS),      /* 53 SS */
    P(PF_, 0, 0, NO_PWM, DS),           /* 54 A0 */
    P(PF_, 1, 1, NO_PWM, DS),           /* 55 A1 */
    P(PF_, 2, 2, NO_PWM, DS),           /* 56 A2 */
    P(PF_, 3, 3, NO_PWM, DS),           /* 57 A3 */
    P(PF_, 4, 4, NO_PWM, DS),           /* 58 A4 */
    P(PF_, 5, 5, NO_PWM, DS),           /* 59 A5 */
    P(PF_, 6, 6, NO_PWM, DS),           /* 60 A6 */
    P(PF_, 7, 7, NO_PWM, DS),           /* 61 A7 */
    P(PK_, 0, 8, NO_PWM, DS),           /* 62 A8 */
    P(PK_, 1, 9, NO_PWM, DS),           /* 63 A9 */
    P(PK_, 2, 10, NO_PWM, DS),          /* 64 A10 */
    P(PK_, 3, 11, NO_PWM, DS),          /* 65 A11 */
    P(PK_, 4, 12, NO_PWM, DS),          /* 66 A12 */
    P(PK_, 5, 13, NO_PWM, DS),          /* 67 A13 */
    P(PK_, 6, 14, NO_PWM, DS),          /* 68 A14 */
    P(PK_, 7, 15, NO_PWM, DS),          /* 69 A15 */
};
#endif

void pin_def(uint8_t pin, pin_def_t *out) { memcpy_P(out, &pin_table[pin], sizeof *out); }

volatile uint8_t *pin_port_register(uint8_t pin) {
  pin_def_t d;
  pin_def(pin, &d);
  return &PORT_REG(ports[d.port]);
}

/* The servo timer's own PWM outputs. */
#if defined(BOARD_MEGA)
#define ON_SERVO_TIMER(id) ((id) >= PWM_5A && (id) <= PWM_5C)
#else
#define ON_SERVO_TIMER(id) ((id) == PWM_1A || (id) == PWM_1B)
#endif

static uint8_t servo_timer_pwm_in_use(uint8_t except) {
  for (uint8_t pin = 0; pin < TOTAL_PINS; pin++) {
    if (pin == except || pin_mode[pin] != MODE_PWM) continue;
    pin_def_t d;
    pin_def(pin, &d);
    if (ON_SERVO_TIMER(d.pwm)) return 1;
  }
  return 0;
}

uint8_t pin_supports(uint8_t pin, uint8_t mode) {
  if (pin >= TOTAL_PINS) return 0;
  pin_def_t d;
  pin_def(pin, &d);
  switch (mode) {
    case MODE_INPUT:
    case MODE_OUTPUT:
    case MODE_PULLUP:
      return d.caps & CAP_DIGITAL;
    case MODE_ANALOG:
      return d.adc != NO_ADC;
    case MODE_PWM:
      return d.pwm != NO_PWM;
    case MODE_SERVO:
      return (d.caps & CAP_SERVO) && SERVO_MAX > 0;
    case MODE_I2C:
      return d.caps & CAP_I2C;
    default:
      return 0;
  }
}

static void pwm_connect(uint8_t id, uint8_t duty) {
  const pwm_def_t *p = &pwm_table[id];
  if (p->wide)
    *(volatile uint16_t *)p->ocr = duty;
  else
    *p->ocr = duty;
  *p->tccra |= p->com;
}

static void pwm_disconnect(uint8_t id) { *pwm_table[id].tccra &= ~pwm_table[id].com; }

uint8_t pin_set_mode(uint8_t pin, uint8_t mode) {
  if (!pin_supports(pin, mode)) return 0;
  pin_def_t d;
  pin_def(pin, &d);
  uint8_t old = pin_mode[pin];
  if (mode == MODE_PWM && ON_SERVO_TIMER(d.pwm) && servo_active()) return 0;
  if (mode == MODE_SERVO && old != MODE_SERVO && (servo_timer_pwm_in_use(pin) || !servo_free_slot())) return 0;
  if (old == MODE_PWM && d.pwm != NO_PWM) pwm_disconnect(d.pwm);
  if (old == MODE_SERVO) servo_detach(pin);
  if (old != mode) pin_value[pin] = 0;
  pin_mode[pin] = mode;
  if (d.port == NO_PORT) return 1; /* analog-only pin: nothing to drive */
  volatile uint8_t *base = ports[d.port];
  switch (mode) {
    case MODE_OUTPUT:
      if (pin_value[pin])
        PORT_REG(base) |= d.mask;
      else
        PORT_REG(base) &= ~d.mask;
      DDR_REG(base) |= d.mask;
      break;
    case MODE_PULLUP:
      DDR_REG(base) &= ~d.mask;
      PORT_REG(base) |= d.mask;
      break;
    case MODE_PWM:
      PORT_REG(base) &= ~d.mask;
      DDR_REG(base) |= d.mask;
      pin_analog_write(pin, pin_value[pin]);
      break;
    case MODE_SERVO:
      PORT_REG(base) &= ~d.mask;
      DDR_REG(base) |= d.mask;
      servo_attach(pin);
      break;
    case MODE_I2C:
      /* The TWI unit drives the pins once enabled; the internal pull-ups help short buses without resistors. */
      DDR_REG(base) &= ~d.mask;
      PORT_REG(base) |= d.mask;
      break;
    default: /* INPUT, ANALOG */
      DDR_REG(base) &= ~d.mask;
      PORT_REG(base) &= ~d.mask;
      break;
  }
  return 1;
}

void pin_write(uint8_t pin, uint8_t level) {
  if (pin >= TOTAL_PINS || pin_mode[pin] != MODE_OUTPUT) return;
  pin_def_t d;
  pin_def(pin, &d);
  pin_value[pin] = level ? 1 : 0;
  volatile uint8_t *base = ports[d.port];
  if (level)
    PORT_REG(base) |= d.mask;
  else
    PORT_REG(base) &= ~d.mask;
}

void pin_analog_write(uint8_t pin, uint16_t value) {
  if (pin >= TOTAL_PINS) return;
  pin_def_t d;
  pin_def(pin, &d);
  if (pin_mode[pin] == MODE_PWM) {
    if (value > 255) value = 255;
    pin_value[pin] = value;
    /* A compare value of 0 still gives a one-cycle spike in fast PWM (timer 0): drive the pin low instead. */
    if (value == 0)
      pwm_disconnect(d.pwm);
    else
      pwm_connect(d.pwm, (uint8_t)value);
  } else if (pin_mode[pin] == MODE_SERVO) {
    pin_value[pin] = value;
    servo_write(pin, value);
  }
}

uint8_t port_read_inputs(uint8_t port) {
  uint8_t value = 0;
  for (uint8_t i = 0; i < 8; i++) {
    uint8_t pin = port * 8 + i;
    if (pin >= TOTAL_PINS) break;
    uint8_t m = pin_mode[pin];
    if (m != MODE_INPUT && m != MODE_PULLUP) continue;
    pin_def_t d;
    pin_def(pin, &d);
    if (PIN_REG(ports[d.port]) & d.mask) value |= 1 << i;
  }
  return value;
}

void pins_reset(void) {
  for (uint8_t pin = 0; pin < TOTAL_PINS; pin++) {
    pin_def_t d;
    pin_def(pin, &d);
    if (d.adc != NO_ADC) {
      pin_set_mode(pin, MODE_ANALOG);
    } else if (d.caps & CAP_DIGITAL) {
      pin_value[pin] = 0;
      pin_set_mode(pin, MODE_OUTPUT);
    } else {
      pin_mode[pin] = MODE_NONE;
    }
  }
}
