#include "firmata.h"

#include <avr/io.h>
#include <string.h>

#include "analog.h"
#include "clock.h"
#include "config.h"
#include "ganglion.h"
#include "i2c.h"
#include "pins.h"
#include "servo.h"
#include "uart.h"

#define DEFAULT_SAMPLING_MS 19
#define MIN_SAMPLING_MS 1

/* Parser state: a command byte followed by its data, or a sysex frame. */
static uint8_t cmd;          /* pending command byte, 0 when none */
static uint8_t need;         /* data bytes the pending command still needs */
static uint8_t data[2];
static uint8_t ndata;
static uint8_t in_sysex;
static uint8_t sysex[SYSEX_BUF_SIZE];
static uint8_t sysex_len;
static uint8_t sysex_overflow;

/* Reporting state. */
static uint16_t report_ports;   /* bit per Firmata port */
static uint8_t last_port[TOTAL_PORTS];
static uint16_t report_analog;  /* bit per ADC channel */
static uint16_t sampling_ms;
static uint32_t last_sample;

/* I2C. */
typedef struct {
  uint8_t addr;
  int16_t reg; /* -1: none */
  uint8_t count;
  uint8_t stop_tx;
} i2c_query_t;
static i2c_query_t queries[I2C_MAX_QUERIES];
static uint8_t nqueries;
static uint16_t i2c_read_delay_us;

/* ---- output helpers ---- */

void sysex_begin(uint8_t c) {
  uart_write(START_SYSEX);
  uart_write(c);
}

void sysex_end(void) { uart_write(END_SYSEX); }

void send_7bit(uint32_t v, uint8_t nbytes) {
  while (nbytes--) {
    uart_write(v & 0x7F);
    v >>= 7;
  }
}

void send_string_P(const char *s) {
  sysex_begin(STRING_DATA);
  char c;
  while ((c = pgm_read_byte(s++))) send_7bit((uint8_t)c, 2);
  sysex_end();
}

/* "<prefix><n>" without printf: printf would cost ~1.5 KB of flash. */
static void send_string_num_P(const char *prefix, uint16_t n) {
  sysex_begin(STRING_DATA);
  char c;
  while ((c = pgm_read_byte(prefix++))) send_7bit((uint8_t)c, 2);
  char digits[5];
  uint8_t i = 0;
  do {
    digits[i++] = '0' + n % 10;
    n /= 10;
  } while (n);
  while (i) send_7bit((uint8_t)digits[--i], 2);
  sysex_end();
}

void firmata_send_version(void) {
  uart_write(REPORT_VERSION);
  uart_write(PROTOCOL_MAJOR);
  uart_write(PROTOCOL_MINOR);
}

void firmata_send_firmware(void) {
  static const char name[] PROGMEM = FIRMWARE_NAME;
  sysex_begin(REPORT_FIRMWARE);
  uart_write(FIRMWARE_MAJOR);
  uart_write(FIRMWARE_MINOR);
  for (const char *p = name; pgm_read_byte(p); p++) send_7bit(pgm_read_byte(p), 2);
  sysex_end();
}

static void send_analog(uint8_t channel, uint16_t value) {
  uart_write(ANALOG_MESSAGE | (channel & 0x0F));
  send_7bit(value, 2);
}

static void send_port(uint8_t port, uint8_t value) {
  uart_write(DIGITAL_MESSAGE | port);
  send_7bit(value, 2);
}

/* ---- queries ---- */

static void capability_response(void) {
  static const uint8_t modes[] PROGMEM = {MODE_INPUT, MODE_PULLUP, MODE_OUTPUT, MODE_ANALOG,
                                          MODE_PWM,   MODE_SERVO,  MODE_I2C};
  sysex_begin(CAPABILITY_RESPONSE);
  for (uint8_t pin = 0; pin < TOTAL_PINS; pin++) {
    for (uint8_t i = 0; i < sizeof modes; i++) {
      uint8_t m = pgm_read_byte(&modes[i]);
      if (!pin_supports(pin, m)) continue;
      uart_write(m);
      /* Resolution in bits: ADC 10, PWM 8, servo 14 (the value range hosts may send), digital 1. */
      uart_write(m == MODE_ANALOG ? 10 : m == MODE_PWM ? 8 : m == MODE_SERVO ? 14 : 1);
    }
    uart_write(0x7F);
  }
  sysex_end();
}

static void analog_mapping_response(void) {
  sysex_begin(ANALOG_MAPPING_RESPONSE);
  for (uint8_t pin = 0; pin < TOTAL_PINS; pin++) {
    pin_def_t d;
    pin_def(pin, &d);
    uart_write(d.adc);
  }
  sysex_end();
}

static void pin_state_response(uint8_t pin) {
  if (pin >= TOTAL_PINS) return;
  uint8_t m = pin_mode[pin];
  /* For outputs the state is the value last written; for inputs, whether the pull-up is on. */
  uint16_t state = m == MODE_PULLUP ? 1 : (m == MODE_INPUT || m == MODE_ANALOG) ? 0 : pin_value[pin];
  sysex_begin(PIN_STATE_RESPONSE);
  uart_write(pin);
  uart_write(m);
  uart_write(state & 0x7F);
  if (state > 0x7F) uart_write((state >> 7) & 0x7F);
  sysex_end();
}

/* ---- I2C ---- */

static void i2c_reply(uint8_t addr, int16_t reg, uint8_t count, uint8_t stop_tx) {
  uint8_t buf[I2C_MAX_BYTES];
  uint8_t err = I2C_OK;
  if (reg >= 0) {
    uint8_t r = (uint8_t)reg;
    err = i2c_write(addr, &r, 1, stop_tx);
    if (!err && i2c_read_delay_us) delay_us(i2c_read_delay_us);
  }
  if (!err) err = i2c_read(addr, buf, count);
  if (err) {
    static const char msg[] PROGMEM = "I2C: no reply from address ";
    send_string_num_P(msg, addr);
    return;
  }
  sysex_begin(I2C_REPLY);
  send_7bit(addr, 2);
  /* firmata.js files replies without a register under register 0. */
  send_7bit(reg >= 0 ? (uint16_t)reg : 0, 2);
  for (uint8_t i = 0; i < count; i++) send_7bit(buf[i], 2);
  sysex_end();
}

static void i2c_request(void) {
  /* [0]=I2C_REQUEST [1]=address LSB [2]=mode/flags (bits 3-4 mode, bit 5 10-bit, bit 6 restart) [3..]=data */
  if (sysex_len < 3) return;
  if (!i2c_enabled()) {
    static const char msg[] PROGMEM = "I2C: send I2C_CONFIG first";
    send_string_P(msg);
    return;
  }
  if (sysex[2] & 0x20) {
    static const char msg[] PROGMEM = "I2C: 10-bit addresses are not supported";
    send_string_P(msg);
    return;
  }
  uint8_t addr = sysex[1];
  uint8_t mode = (sysex[2] >> 3) & 0x03;
  uint8_t stop_tx = !(sysex[2] & 0x40);
  uint8_t n = (sysex_len - 3) / 2; /* decoded data bytes */
  uint8_t bytes[I2C_MAX_BYTES];
  if (n > I2C_MAX_BYTES) n = I2C_MAX_BYTES;
  for (uint8_t i = 0; i < n; i++) bytes[i] = sysex[3 + 2 * i] | (sysex[4 + 2 * i] << 7);

  if (mode == 0) { /* write */
    if (i2c_write(addr, bytes, n, 1)) {
      static const char msg[] PROGMEM = "I2C: write failed to address ";
      send_string_num_P(msg, addr);
    }
    return;
  }
  if (mode == 3) { /* stop continuous reads of this address */
    uint8_t j = 0;
    for (uint8_t i = 0; i < nqueries; i++)
      if (queries[i].addr != addr) queries[j++] = queries[i];
    nqueries = j;
    return;
  }
  /* read once / continuously: [register,] byte count */
  int16_t reg = -1;
  uint8_t count;
  if (n >= 2) {
    reg = bytes[0];
    count = bytes[1];
  } else if (n == 1) {
    count = bytes[0];
  } else {
    return;
  }
  if (count > I2C_MAX_BYTES) count = I2C_MAX_BYTES;
  if (mode == 1) {
    i2c_reply(addr, reg, count, stop_tx);
  } else if (nqueries < I2C_MAX_QUERIES) {
    queries[nqueries++] = (i2c_query_t){addr, reg, count, stop_tx};
  } else {
    static const char msg[] PROGMEM = "I2C: too many continuous reads";
    send_string_P(msg);
  }
}

static void i2c_config(void) {
  i2c_read_delay_us = sysex_len >= 3 ? (uint16_t)(sysex[1] | (sysex[2] << 7)) : 0;
  if (!i2c_enabled()) {
    for (uint8_t pin = 0; pin < TOTAL_PINS; pin++)
      if (pin_supports(pin, MODE_I2C)) pin_set_mode(pin, MODE_I2C);
    i2c_enable();
  }
}

/* ---- commands ---- */

static void set_mode(uint8_t pin, uint8_t mode) {
  if (pin >= TOTAL_PINS) return;
  if (pin_mode[pin] == MODE_I2C && mode != MODE_I2C && i2c_enabled()) i2c_disable();
  if (!pin_set_mode(pin, mode)) {
    static const char msg[] PROGMEM = "unsupported pin mode for pin ";
    send_string_num_P(msg, pin);
  }
}

static void digital_port_write(uint8_t port, uint8_t value) {
  /* Only pins in OUTPUT mode take the value; inputs use PULLUP mode for their pull-up. */
  for (uint8_t i = 0; i < 8; i++) {
    uint8_t pin = port * 8 + i;
    if (pin >= TOTAL_PINS) break;
    if (pin_mode[pin] == MODE_OUTPUT) pin_write(pin, (value >> i) & 1);
  }
}

static void report_digital(uint8_t port, uint8_t enable) {
  if (port >= TOTAL_PORTS) return;
  if (enable) {
    report_ports |= 1 << port;
    last_port[port] = port_read_inputs(port);
    send_port(port, last_port[port]); /* the host wants the current state, not just later changes */
  } else {
    report_ports &= ~(1 << port);
  }
}

static void report_analog_channel(uint8_t channel, uint8_t enable) {
  if (channel >= ANALOG_CHANNELS) return;
  if (enable) {
    report_analog |= 1 << channel;
    send_analog(channel, analog_read(channel));
  } else {
    report_analog &= ~(1 << channel);
  }
}

static void system_reset(void) {
  report_ports = 0;
  report_analog = 0;
  nqueries = 0;
  sampling_ms = DEFAULT_SAMPLING_MS;
  i2c_read_delay_us = 0;
  i2c_disable();
  servo_reset();
  pins_reset();
}

static void run_command(void) {
  uint8_t c = cmd & 0xF0;
  uint8_t low = cmd & 0x0F;
  uint16_t v14 = data[0] | (data[1] << 7);
  if (cmd < 0xF0) {
    if (c == DIGITAL_MESSAGE) digital_port_write(low, (uint8_t)v14);
    else if (c == ANALOG_MESSAGE) pin_analog_write(low, v14);
    else if (c == REPORT_ANALOG) report_analog_channel(low, data[0]);
    else if (c == REPORT_DIGITAL) report_digital(low, data[0]);
  } else if (cmd == SET_PIN_MODE) {
    set_mode(data[0], data[1]);
  } else if (cmd == SET_DIGITAL_PIN_VALUE) {
    pin_write(data[0], data[1]);
  }
}

static void run_sysex(void) {
  if (sysex_len == 0) return;
  switch (sysex[0]) {
    case REPORT_FIRMWARE:
      firmata_send_firmware();
      break;
    case CAPABILITY_QUERY:
      capability_response();
      break;
    case ANALOG_MAPPING_QUERY:
      analog_mapping_response();
      break;
    case PIN_STATE_QUERY:
      if (sysex_len >= 2) pin_state_response(sysex[1]);
      break;
    case EXTENDED_ANALOG:
      if (sysex_len >= 3) {
        uint32_t v = 0;
        for (uint8_t i = sysex_len - 1; i >= 2; i--) v = (v << 7) | sysex[i];
        pin_analog_write(sysex[1], v > 0xFFFF ? 0xFFFF : (uint16_t)v);
      }
      break;
    case SAMPLING_INTERVAL:
      if (sysex_len >= 3) {
        sampling_ms = sysex[1] | (sysex[2] << 7);
        if (sampling_ms < MIN_SAMPLING_MS) sampling_ms = MIN_SAMPLING_MS;
      }
      break;
    case SERVO_CONFIG:
      /* pin, min pulse (2 bytes), max pulse (2 bytes): also puts the pin in SERVO mode */
      if (sysex_len >= 6 && sysex[1] < TOTAL_PINS) {
        set_mode(sysex[1], MODE_SERVO);
        servo_config(sysex[1], sysex[2] | (sysex[3] << 7), sysex[4] | (sysex[5] << 7));
      }
      break;
    case I2C_REQUEST:
      i2c_request();
      break;
    case I2C_CONFIG:
      i2c_config();
      break;
    default:
      ganglion_sysex(sysex, sysex_len); /* ours, or silently ignored */
      break;
  }
}

void firmata_byte(uint8_t b) {
  if (in_sysex) {
    if (b == END_SYSEX) {
      in_sysex = 0;
      if (!sysex_overflow) run_sysex();
      return;
    }
    if (!(b & 0x80)) {
      if (sysex_len < SYSEX_BUF_SIZE)
        sysex[sysex_len++] = b;
      else
        sysex_overflow = 1;
      return;
    }
    in_sysex = 0; /* a command byte inside a sysex: the frame was cut; drop it and parse b as a command */
  }
  if (b & 0x80) {
    cmd = 0;
    ndata = 0;
    uint8_t c = b < 0xF0 ? (b & 0xF0) : b;
    switch (c) {
      case START_SYSEX:
        in_sysex = 1;
        sysex_len = 0;
        sysex_overflow = 0;
        return;
      case REPORT_VERSION:
        firmata_send_version();
        return;
      case SYSTEM_RESET:
        system_reset();
        return;
      case DIGITAL_MESSAGE:
      case ANALOG_MESSAGE:
      case SET_PIN_MODE:
      case SET_DIGITAL_PIN_VALUE:
        need = 2;
        break;
      case REPORT_ANALOG:
      case REPORT_DIGITAL:
        need = 1;
        break;
      default:
        return; /* unknown: its data bytes are skipped until the next command byte */
    }
    cmd = b;
    data[1] = 0;
    return;
  }
  if (!cmd) return;
  data[ndata++] = b;
  if (ndata == need) {
    run_command();
    ndata = 0; /* running status: more data bytes repeat the same command, as in MIDI */
  }
}

void firmata_poll(uint32_t now) {
  for (uint8_t port = 0; port < TOTAL_PORTS; port++) {
    if (!(report_ports & (1 << port))) continue;
    uint8_t v = port_read_inputs(port);
    if (v != last_port[port]) {
      last_port[port] = v;
      send_port(port, v);
    }
  }
  if (now - last_sample < sampling_ms) return;
  last_sample = now;
  if (report_analog) {
    for (uint8_t pin = 0; pin < TOTAL_PINS; pin++) {
      if (pin_mode[pin] != MODE_ANALOG) continue;
      pin_def_t d;
      pin_def(pin, &d);
      if (d.adc != NO_ADC && (report_analog & (1 << d.adc))) send_analog(d.adc, analog_read(d.adc));
    }
  }
  for (uint8_t i = 0; i < nqueries; i++)
    i2c_reply(queries[i].addr, queries[i].reg, queries[i].count, queries[i].stop_tx);
}

void firmata_init(void) {
  memset(last_port, 0, sizeof last_port);
  system_reset();
}
