/**
 * Finding serial ports and guessing which are Arduinos, for `ganglion boards` and `ganglion flash`.
 *
 * serialport's `SerialPort.list()` asks udev (`udevadm`) on Linux; containers and minimal systems often have no
 * udev, so when it fails the kernel's own view in `/sys/class/tty` is read instead (same fields).
 */
import { readdir, readFile, realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import { SerialPort } from "serialport";

/** A serial port as the OS reports it; USB ids are lowercase hex without `0x`. */
export interface SerialPortInfo {
  path: string;
  vendorId?: string;
  productId?: string;
  manufacturer?: string;
  serialNumber?: string;
}

/** A port with the guess of what is behind it. */
export interface DetectedPort extends SerialPortInfo {
  /** Whether the USB vendor id is one Arduinos (and their clones) use. */
  likelyArduino: boolean;
  /** What the vendor id says, e.g. `Arduino`, `CH340 (Arduino clone)`. */
  chip?: string;
}

/** USB vendor ids of Arduinos and the USB-serial chips of common clones. */
export const ARDUINO_USB_VENDORS: Readonly<Record<string, string>> = {
  "2341": "Arduino",
  "2a03": "Arduino (arduino.org)",
  "1a86": "CH340 (Arduino clone)",
  "0403": "FTDI (Nano, clones)",
  "10c4": "CP210x (clones)",
};

/** Adds the Arduino guess to a port. */
export function classifyPort(port: SerialPortInfo): DetectedPort {
  const chip = port.vendorId ? ARDUINO_USB_VENDORS[port.vendorId.toLowerCase()] : undefined;
  return chip === undefined ? { ...port, likelyArduino: false } : { ...port, likelyArduino: true, chip };
}

/** The same device names serialport's Linux lister keeps. */
const SERIAL_NAME = /^(tty(S|WCH|ACM|USB|AMA|MFD|O|XRUSB)\d|rfcomm)/;

async function readAttr(dir: string, name: string): Promise<string | undefined> {
  try {
    const value = (await readFile(join(dir, name), "utf8")).trim();
    return value || undefined;
  } catch {
    return undefined;
  }
}

/** Lists serial ports from sysfs (Linux without udev). `sysRoot` is injectable for tests. */
export async function listFromSysfs(sysRoot = "/sys", devRoot = "/dev"): Promise<SerialPortInfo[]> {
  let names: string[];
  try {
    sysRoot = await realpath(sysRoot);
    names = await readdir(join(sysRoot, "class/tty"));
  } catch {
    return [];
  }
  const ports: SerialPortInfo[] = [];
  for (const name of names.filter((n) => SERIAL_NAME.test(n)).sort()) {
    let device: string;
    try {
      device = await realpath(join(sysRoot, "class/tty", name, "device"));
    } catch {
      continue; // virtual terminals and ptys have no device
    }
    // The legacy 8250 driver registers ttyS ports whether or not a UART is there.
    if (device.includes("/serial8250")) continue;
    const port: SerialPortInfo = { path: join(devRoot, name) };
    // A USB serial port's interface sits one or two levels below the USB device that has the ids.
    for (
      let dir = device, i = 0;
      i < 4 && dir.startsWith(sysRoot) && dir !== sysRoot;
      i++, dir = dirname(dir)
    ) {
      const vendorId = await readAttr(dir, "idVendor");
      if (vendorId === undefined) continue;
      port.vendorId = vendorId.toLowerCase();
      const productId = await readAttr(dir, "idProduct");
      const manufacturer = await readAttr(dir, "manufacturer");
      const serialNumber = await readAttr(dir, "serial");
      if (productId) port.productId = productId.toLowerCase();
      if (manufacturer) port.manufacturer = manufacturer;
      if (serialNumber) port.serialNumber = serialNumber;
      break;
    }
    ports.push(port);
  }
  return ports;
}

/** Lists serial ports with serialport, or from sysfs when udev is not available. */
export async function listSerialPorts(): Promise<SerialPortInfo[]> {
  let listed: Awaited<ReturnType<typeof SerialPort.list>>;
  try {
    listed = await SerialPort.list();
  } catch (err) {
    if (process.platform === "linux") return listFromSysfs();
    throw err;
  }
  return listed.map((p) => {
    const port: SerialPortInfo = { path: p.path };
    if (p.vendorId) port.vendorId = p.vendorId.toLowerCase();
    if (p.productId) port.productId = p.productId.toLowerCase();
    if (p.manufacturer) port.manufacturer = p.manufacturer;
    if (p.serialNumber) port.serialNumber = p.serialNumber;
    return port;
  });
}

/** Lists serial ports with the Arduino guess, likely Arduinos first. */
export async function detectPorts(): Promise<DetectedPort[]> {
  const ports = (await listSerialPorts()).map(classifyPort);
  return ports.sort(
    (a, b) => Number(b.likelyArduino) - Number(a.likelyArduino) || a.path.localeCompare(b.path),
  );
}
