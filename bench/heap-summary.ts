/**
 * Groups a V8 heap snapshot's nodes by type and name (constructor for objects, function name for closures) and
 * prints the groups with the largest self size, so "what costs memory per device" reads off one table:
 *
 *   node --import tsx bench/heap-summary.ts FILE.heapsnapshot [TOP=40]
 */
import { readFileSync } from "node:fs";

const file = process.argv[2];
if (file === undefined) {
  console.error("usage: heap-summary FILE.heapsnapshot [TOP]");
  process.exit(2);
}
const top = Number(process.argv[3] ?? 40);

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const width = fields.length;
const typeAt = fields.indexOf("type");
const nameAt = fields.indexOf("name");
const sizeAt = fields.indexOf("self_size");
const types = snap.snapshot.meta.node_types[0];
const groups = new Map<string, { count: number; size: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + typeAt] as number] as string;
  let name = snap.strings[snap.nodes[i + nameAt] as number] ?? "";
  // Strings and numbers are grouped by type alone: their "names" are their values.
  if (type === "string" || type === "concatenated string" || type === "sliced string" || type === "number")
    name = "";
  if (name.length > 60) name = `${name.slice(0, 57)}...`;
  const key = `${type} ${name}`;
  const size = snap.nodes[i + sizeAt] as number;
  total += size;
  const g = groups.get(key);
  if (g === undefined) groups.set(key, { count: 1, size });
  else {
    g.count++;
    g.size += size;
  }
}
const rows = [...groups.entries()].sort((a, b) => b[1].size - a[1].size).slice(0, top);
console.log(`total self size ${(total / 2 ** 20).toFixed(1)} MB`);
for (const [key, g] of rows) {
  console.log(`${(g.size / 2 ** 20).toFixed(2).padStart(8)} MB ${String(g.count).padStart(9)}  ${key}`);
}

// `--owners "TYPE NAME"`: groups the nodes of one group by the type and name of the object that holds them (its
// first non-weak retainer), e.g. `--owners "array (object properties)"` says whose property stores dominate.
const ownersAt = process.argv.indexOf("--owners");
if (ownersAt >= 0) {
  const wanted = process.argv[ownersAt + 1] ?? "";
  const edgeFields = (snap.snapshot.meta as unknown as { edge_fields: string[] }).edge_fields;
  const edgeTypes = (snap.snapshot.meta as unknown as { edge_types: [string[]] }).edge_types[0];
  const edges = (snap as unknown as { edges: number[] }).edges;
  const ew = edgeFields.length;
  const toAt = edgeFields.indexOf("to_node");
  const etAt = edgeFields.indexOf("type");
  const countAt = fields.indexOf("edge_count");
  const keyOf = (n: number) => {
    const type = types[snap.nodes[n + typeAt] as number] as string;
    const name = snap.strings[snap.nodes[n + nameAt] as number] ?? "";
    return `${type} ${name.length > 60 ? `${name.slice(0, 57)}...` : name}`;
  };
  const owner = new Map<number, number>();
  let e = 0;
  for (let n = 0; n < snap.nodes.length; n += width) {
    const count = snap.nodes[n + countAt] as number;
    for (let k = 0; k < count; k++, e += ew) {
      if (edgeTypes[edges[e + etAt] as number] === "weak") continue;
      const to = edges[e + toAt] as number;
      if (!owner.has(to)) owner.set(to, n);
    }
  }
  const byOwner = new Map<string, { count: number; size: number }>();
  for (let n = 0; n < snap.nodes.length; n += width) {
    if (!keyOf(n).startsWith(wanted)) continue;
    const o = owner.get(n);
    const key = o === undefined ? "(none)" : keyOf(o);
    const size = snap.nodes[n + sizeAt] as number;
    const g = byOwner.get(key);
    if (g === undefined) byOwner.set(key, { count: 1, size });
    else {
      g.count++;
      g.size += size;
    }
  }
  console.log(`\nowners of "${wanted}":`);
  for (const [key, g] of [...byOwner.entries()].sort((a, b) => b[1].size - a[1].size).slice(0, top))
    console.log(`${(g.size / 2 ** 20).toFixed(2).padStart(8)} MB ${String(g.count).padStart(9)}  ${key}`);
}
