#include "ganglion.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "clock.h"
#include "firmata.h"

/* Raw reset flags and where they came from. .noinit: .bss is cleared after .init3 runs, which would erase
 * what we save there. */
static uint8_t reset_flags __attribute__((section(".noinit")));
static uint8_t reset_flags_source __attribute__((section(".noinit")));
/* Survives every reset but a loss of power: SRAM comes up random, so finding the magic means a warm reset. */
static uint32_t sram_magic __attribute__((section(".noinit")));
#define SRAM_MAGIC 0x6A6C6E67UL /* "gnlj" */

#define SOURCE_MCUSR 0
#define SOURCE_BOOTLOADER 1 /* Optiboot >= 6 clears MCUSR and hands the flags over in r2 */
#define SOURCE_SRAM 2       /* older bootloaders clear MCUSR and hand nothing over: only power-on is known */

static uint16_t heartbeat_ms;
static uint16_t heartbeat_seq;
static uint32_t last_heartbeat;

/* Runs before the C runtime initialises memory, and before anything can clear MCUSR. The watchdog must be
 * switched off here: after a watchdog reset it stays on with a 16 ms timeout, shorter than the start-up. */
void save_reset_cause(void) __attribute__((naked, used, section(".init3")));
void save_reset_cause(void) {
  uint8_t r2;
  __asm__ __volatile__("mov %0, r2" : "=r"(r2));
  uint8_t flags = MCUSR;
  MCUSR = 0;
  wdt_disable();
  if (flags) {
    reset_flags = flags;
    reset_flags_source = SOURCE_MCUSR;
  } else if (r2 && !(r2 & 0xE0)) {
    reset_flags = r2;
    reset_flags_source = SOURCE_BOOTLOADER;
  } else {
    /* Optiboot 4.x (Debian's, the Uno's) clears MCUSR without passing it on. */
    reset_flags = sram_magic == SRAM_MAGIC ? 0 : _BV(PORF);
    reset_flags_source = SOURCE_SRAM;
  }
  sram_magic = SRAM_MAGIC;
}

/* One cause from the flags; power-on wins because the other flags are meaningless after it. */
static uint8_t reset_cause(uint8_t f) {
  if (f & _BV(PORF)) return CAUSE_POWER_ON;
  if (f & _BV(WDRF)) return CAUSE_WATCHDOG;
  if (f & _BV(BORF)) return CAUSE_BROWN_OUT;
  if (f & _BV(EXTRF)) return CAUSE_EXTERNAL;
#if defined(JTRF)
  if (f & _BV(JTRF)) return CAUSE_JTAG;
#endif
  return CAUSE_UNKNOWN;
}

void ganglion_init(void) {
  heartbeat_ms = DEFAULT_HEARTBEAT_MS;
  heartbeat_seq = 0;
  /* 1 s: long enough for the longest blocking work (a full TX ring, an I2C timeout), short enough that a
   * hung board is back within about a second. */
  wdt_enable(WDTO_1S);
}

void ganglion_send_heartbeat(uint32_t now) {
  last_heartbeat = now;
  sysex_begin(GANGLION_HEARTBEAT);
  send_7bit(HEARTBEAT_VERSION, 1);
  send_7bit(reset_cause(reset_flags), 1);
  send_7bit(reset_flags & 0x7F, 1);
  send_7bit(reset_flags_source, 1);
  send_7bit(now, 5);
  send_7bit(heartbeat_seq, 2);
  send_7bit(heartbeat_ms, 2);
  sysex_end();
  heartbeat_seq = (heartbeat_seq + 1) & 0x3FFF;
}

void ganglion_poll(uint32_t now) {
  if (heartbeat_ms && now - last_heartbeat >= heartbeat_ms) ganglion_send_heartbeat(now);
}

void ganglion_sysex(const uint8_t *msg, uint8_t len) {
  if (msg[0] == GANGLION_HEARTBEAT) {
    /* No data: send one now. Two data bytes: new interval in ms (0 = only on request), then send one. */
    if (len >= 3) heartbeat_ms = msg[1] | (msg[2] << 7);
    ganglion_send_heartbeat(millis());
  } else if (msg[0] == GANGLION_HANG && len == 5 && msg[1] == 'H' && msg[2] == 'A' && msg[3] == 'N' &&
             msg[4] == 'G') {
    /* Simulate a hung firmware: interrupts off, the watchdog is no longer fed, and it resets the board. */
    cli();
    for (;;) {
    }
  }
}
