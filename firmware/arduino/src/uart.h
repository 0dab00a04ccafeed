/* USART0 at SERIAL_BAUD, interrupt-driven ring buffers in both directions. */
#ifndef GANGLION_UART_H
#define GANGLION_UART_H

#include <stdint.h>

void uart_init(void);
/* Next received byte, or -1 when none is waiting. */
int16_t uart_read(void);
uint8_t uart_rx_pending(void);
/* Queue one byte; waits (feeding the watchdog) while the TX ring is full. */
void uart_write(uint8_t b);
/* Wait until every queued byte has left the shift register. */
void uart_flush(void);

#endif
