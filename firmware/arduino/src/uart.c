#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "config.h"

static volatile uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint8_t rx_head, rx_tail;
static volatile uint8_t tx_buf[TX_BUF_SIZE];
/* TX_BUF_SIZE may be 256, so the indices are uint8_t and wrap by themselves or by the mask. */
static volatile uint8_t tx_head, tx_tail;

/* The 328P names its only USART without a number; the 2560 has four. */
#if defined(USART0_RX_vect)
#define UART_RX_VECT USART0_RX_vect
#define UART_UDRE_VECT USART0_UDRE_vect
#else
#define UART_RX_VECT USART_RX_vect
#define UART_UDRE_VECT USART_UDRE_vect
#endif

#define RX_MASK (RX_BUF_SIZE - 1)
#define TX_MASK (TX_BUF_SIZE - 1)

void uart_init(void) {
  /* Double speed: UBRR 34 gives 57143 baud (-0.8 %); normal speed would be +2.1 %. */
  UCSR0A = _BV(U2X0);
  UBRR0 = (uint16_t)((F_CPU + 4 * SERIAL_BAUD) / (8 * SERIAL_BAUD) - 1); /* rounded: 34, not 33 (+2.1 %) */
  UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
  UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

ISR(UART_RX_VECT) {
  uint8_t b = UDR0;
  uint8_t next = (rx_head + 1) & RX_MASK;
  if (next != rx_tail) { /* on overflow the byte is dropped; Firmata hosts resync on the next command */
    rx_buf[rx_head] = b;
    rx_head = next;
  }
}

ISR(UART_UDRE_VECT) {
  UDR0 = tx_buf[tx_tail];
  tx_tail = (tx_tail + 1) & TX_MASK;
  /* Switch the interrupt off as soon as the ring is empty, not on a later interrupt with nothing to send:
   * avr8js (unlike the chip) clears UDRE when it services the interrupt, so an idle UDRE interrupt would
   * leave the flag clear and the next uart_write would never be sent. */
  if (tx_head == tx_tail) UCSR0B &= ~_BV(UDRIE0);
}

int16_t uart_read(void) {
  if (rx_head == rx_tail) return -1;
  uint8_t b = rx_buf[rx_tail];
  rx_tail = (rx_tail + 1) & RX_MASK;
  return b;
}

uint8_t uart_rx_pending(void) { return rx_head != rx_tail; }

void uart_write(uint8_t b) {
  uint8_t next = (tx_head + 1) & TX_MASK;
  while (next == tx_tail) wdt_reset(); /* the UDRE interrupt drains it; interrupts are on in the main loop */
  tx_buf[tx_head] = b;
  tx_head = next;
  UCSR0B |= _BV(UDRIE0);
}

void uart_flush(void) {
  while (tx_head != tx_tail) wdt_reset();
  while (!(UCSR0A & _BV(UDRE0))) {
  }
}
