/* TWI master, blocking with a timeout so a stuck bus cannot hang the firmware. */
#ifndef GANGLION_I2C_H
#define GANGLION_I2C_H

#include <stdint.h>

#define I2C_OK 0
#define I2C_NACK_ADDR 1
#define I2C_NACK_DATA 2
#define I2C_TIMEOUT 3
#define I2C_BUS_ERROR 4

void i2c_enable(void);
void i2c_disable(void);
uint8_t i2c_enabled(void);
/* Write n bytes; stop = 0 leaves the bus held for a repeated start. */
uint8_t i2c_write(uint8_t addr, const uint8_t *data, uint8_t n, uint8_t stop);
uint8_t i2c_read(uint8_t addr, uint8_t *data, uint8_t n);

#endif
