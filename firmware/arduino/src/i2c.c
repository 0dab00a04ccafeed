#include "i2c.h"

#include <avr/io.h>
#include <avr/wdt.h>
#include <util/twi.h>

static uint8_t enabled;

/* A byte at 100 kHz takes ~90 us; each wait loop iteration takes a few cycles, so this allows
 * several milliseconds before giving up. */
#define WAIT_LIMIT 20000U

static uint8_t wait_twint(void) {
  uint16_t n = WAIT_LIMIT;
  while (!(TWCR & _BV(TWINT))) {
    if (--n == 0) return 0;
  }
  return 1;
}

static void stop(void) {
  TWCR = _BV(TWINT) | _BV(TWEN) | _BV(TWSTO);
  uint16_t n = WAIT_LIMIT;
  while ((TWCR & _BV(TWSTO)) && --n) {
  }
}

/* After a timeout or bus error the unit is reset so the next transfer starts clean. */
static uint8_t fail(uint8_t err) {
  if (err == I2C_TIMEOUT || err == I2C_BUS_ERROR) {
    TWCR = 0;
    TWCR = _BV(TWEN);
  } else {
    stop();
  }
  return err;
}

void i2c_enable(void) {
  TWSR = 0;                                 /* prescaler 1 */
  TWBR = (uint8_t)((F_CPU / 100000UL - 16) / 2); /* 100 kHz */
  TWCR = _BV(TWEN);
  enabled = 1;
}

void i2c_disable(void) {
  TWCR = 0;
  enabled = 0;
}

uint8_t i2c_enabled(void) { return enabled; }

static uint8_t start(uint8_t sla) {
  wdt_reset();
  TWCR = _BV(TWINT) | _BV(TWSTA) | _BV(TWEN);
  if (!wait_twint()) return I2C_TIMEOUT;
  uint8_t st = TW_STATUS;
  if (st != TW_START && st != TW_REP_START) return I2C_BUS_ERROR;
  TWDR = sla;
  TWCR = _BV(TWINT) | _BV(TWEN);
  if (!wait_twint()) return I2C_TIMEOUT;
  st = TW_STATUS;
  if (st == TW_MT_SLA_ACK || st == TW_MR_SLA_ACK) return I2C_OK;
  if (st == TW_MT_SLA_NACK || st == TW_MR_SLA_NACK) return I2C_NACK_ADDR;
  return I2C_BUS_ERROR;
}

uint8_t i2c_write(uint8_t addr, const uint8_t *data, uint8_t n, uint8_t do_stop) {
  uint8_t err = start((uint8_t)(addr << 1) | TW_WRITE);
  if (err) return fail(err);
  for (uint8_t i = 0; i < n; i++) {
    TWDR = data[i];
    TWCR = _BV(TWINT) | _BV(TWEN);
    if (!wait_twint()) return fail(I2C_TIMEOUT);
    if (TW_STATUS != TW_MT_DATA_ACK) return fail(I2C_NACK_DATA);
  }
  if (do_stop) stop();
  return I2C_OK;
}

uint8_t i2c_read(uint8_t addr, uint8_t *data, uint8_t n) {
  if (n == 0) return I2C_OK;
  uint8_t err = start((uint8_t)(addr << 1) | TW_READ);
  if (err) return fail(err);
  for (uint8_t i = 0; i < n; i++) {
    /* ACK every byte but the last, so the device releases the bus before the stop. */
    TWCR = _BV(TWINT) | _BV(TWEN) | (i + 1 < n ? _BV(TWEA) : 0);
    if (!wait_twint()) return fail(I2C_TIMEOUT);
    data[i] = TWDR;
  }
  stop();
  return I2C_OK;
}
