/* Ganglion firmware: a Firmata 2.x board with Ganglion's heartbeat and watchdog extensions.
 * Everything is event-driven from one loop; between events the CPU sleeps in idle mode and is woken by
 * the 1 ms timer interrupt or by the UART. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "analog.h"
#include "clock.h"
#include "firmata.h"
#include "ganglion.h"
#include "uart.h"

int main(void) {
  clock_init();
  uart_init();
  analog_init();
  firmata_init();
  ganglion_init();
  set_sleep_mode(SLEEP_MODE_IDLE);
  sei();

  /* Announce ourselves like any Firmata board, then tell the hub why we (re)started. */
  firmata_send_version();
  firmata_send_firmware();
  ganglion_send_heartbeat(millis());

  for (;;) {
    wdt_reset();
    int16_t b;
    while ((b = uart_read()) >= 0) firmata_byte((uint8_t)b);
    uint32_t now = millis();
    firmata_poll(now);
    ganglion_poll(now);

    /* Sleep unless a byte arrived meanwhile. Interrupts are off while deciding, and "sei; sleep" is
     * atomic (the instruction after sei always runs first), so a wake-up cannot be lost. */
    cli();
    if (!uart_rx_pending()) {
      sleep_enable();
      sei();
      sleep_cpu();
      sleep_disable();
    }
    sei();
  }
}
