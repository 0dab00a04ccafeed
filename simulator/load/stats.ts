/**
 * Counters a load run shares between its devices (one object, plain numbers: incremented on the hot path) and the
 * summary the CLI and the bench print from them.
 */

/** What a load run has done so far. */
export interface LoadStats {
  devices: number;
  /** Sessions up (CONNACK accepted). */
  connected: number;
  /** Readings taken (each gets the next seq of its sensor). */
  readings: number;
  /** PUBLISHes of readings sent, resends included. */
  sent: number;
  /** Readings the broker acknowledged (PUBACK). */
  acked: number;
  /** Readings sent again after a reconnect (same seq; the hub drops the duplicate). */
  resent: number;
  /** Readings dropped because a device's buffer was full while it was offline. */
  dropped: number;
  /** Logins refused (CONNACK return code ≠ 0). */
  refused: number;
  /** Sessions lost after they were up. */
  lost: number;
  /** Connection attempts that failed before CONNACK (refused port, timeout, reset). */
  failed: number;
  /** Commands answered on `cmd/`. */
  commands: number;
  /** Partitions injected and still active. */
  faulted: number;
}

/** A fresh set of counters. */
export function newStats(devices: number): LoadStats {
  return {
    devices,
    connected: 0,
    readings: 0,
    sent: 0,
    acked: 0,
    resent: 0,
    dropped: 0,
    refused: 0,
    lost: 0,
    failed: 0,
    commands: 0,
    faulted: 0,
  };
}

/** Faults seen by the run: refused logins, lost sessions, failed connects and injected partitions in force. */
export function faultCount(s: LoadStats): number {
  return s.refused + s.lost + s.failed + s.faulted;
}

/** One summary line: `connected 9998/10000 · 1003 msgs/s · acked 120345 · faults 2 (lost 2)`. */
export function summaryLine(s: LoadStats, msgsPerS: number): string {
  const faults = faultCount(s);
  const detail: string[] = [];
  if (s.refused) detail.push(`refused ${s.refused}`);
  if (s.lost) detail.push(`lost ${s.lost}`);
  if (s.failed) detail.push(`failed ${s.failed}`);
  if (s.faulted) detail.push(`partitioned ${s.faulted}`);
  if (s.dropped) detail.push(`dropped ${s.dropped}`);
  const faultText = detail.length ? `faults ${faults} (${detail.join(", ")})` : `faults ${faults}`;
  const backlog = s.readings - s.acked - s.dropped;
  return `connected ${s.connected}/${s.devices} · ${Math.round(msgsPerS)} msgs/s · acked ${s.acked} · backlog ${Math.max(0, backlog)} · ${faultText}`;
}
