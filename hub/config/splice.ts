/**
 * Text-level edits of the `devices:` block list. Re-printing a whole YAML document normalises spacing the user
 * chose (yaml cannot keep `{ a: 1 }` next to `[1, 2]`), so adding or removing a device splices only the lines of
 * that device and leaves every other byte alone. Each function returns `undefined` when the layout is one it does
 * not recognise; the caller then falls back to re-printing the document.
 */
import {
  type Document,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  type Node,
  type YAMLSeq,
  Document as YamlDocument,
} from "yaml";

function lineStart(text: string, pos: number): number {
  return text.lastIndexOf("\n", pos - 1) + 1;
}

/** Position just after the newline ending the last non-blank line at or before `pos` (or the text's end). */
function afterLastContentLine(text: string, pos: number): number {
  let p = pos;
  while (p > 0 && /\s/.test(text[p - 1] ?? "")) p--;
  const nl = text.indexOf("\n", p);
  return nl < 0 ? text.length : nl + 1;
}

function isCommentLine(line: string, minIndent: number): boolean {
  const trimmed = line.trimStart();
  return trimmed.startsWith("#") && line.length - trimmed.length >= minIndent;
}

/** Moves a line start back over the comment lines directly above it (they describe the item below). */
function backOverComments(text: string, start: number, minIndent: number): number {
  let s = start;
  while (s > 0) {
    const prev = lineStart(text, s - 1);
    if (!isCommentLine(text.slice(prev, s - 1), minIndent)) break;
    s = prev;
  }
  return s;
}

function devicesSeq(doc: Document): { seq: YAMLSeq; key: Node } | undefined {
  if (!isMap(doc.contents)) return undefined;
  const pair = doc.contents.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === "devices");
  if (!pair || !isNode(pair.key) || !isSeq(pair.value)) return undefined;
  return { seq: pair.value, key: pair.key };
}

/** Where an item's `- ` is: its line start and dash column, if the item starts on its dash's line. */
function dashOf(text: string, item: unknown): { line: number; column: number } | undefined {
  if (!isNode(item) || !item.range) return undefined;
  const line = lineStart(text, item.range[0]);
  const prefix = text.slice(line, item.range[0]);
  if (!/^ *- +$/.test(prefix)) return undefined;
  return { line, column: prefix.indexOf("-") };
}

/** Renders a device entry as block YAML, short scalar lists in flow style (`range: [-20, 60]`). */
function renderEntry(entry: Record<string, unknown>, column: number): string {
  const doc = new YamlDocument(entry);
  const flowLists = (node: unknown): void => {
    if (isSeq(node)) {
      if (node.items.every(isScalar)) node.flow = true;
      else node.items.forEach(flowLists);
    } else if (isMap(node)) {
      for (const pair of node.items) flowLists(pair.value);
    }
  };
  flowLists(doc.contents);
  const lines = doc.toString({ lineWidth: 0, flowCollectionPadding: false }).trimEnd().split("\n");
  const pad = " ".repeat(column);
  return lines.map((l, i) => (i === 0 ? `${pad}- ${l}` : `${pad}  ${l}`)).join("\n");
}

/** Appends a device entry to the `devices:` list as new lines; everything else is left as written. */
export function spliceAdd(text: string, doc: Document, entry: Record<string, unknown>): string | undefined {
  const found = devicesSeq(doc);
  if (!found) return undefined;
  const { seq } = found;
  if (seq.flow) {
    // `devices: []` becomes `devices:` followed by a block list; a comment after `[]` stays on its line.
    if (seq.items.length > 0 || !seq.range) return undefined;
    const [from, to] = seq.range;
    const lineEnd = text.indexOf("\n", to);
    const end = lineEnd < 0 ? text.length : lineEnd;
    let before = text.slice(0, from);
    while (before.endsWith(" ")) before = before.slice(0, -1);
    const rest = text.slice(to, end);
    return `${before}${rest}\n${renderEntry(entry, 2)}${text.slice(end)}${lineEnd < 0 ? "\n" : ""}`;
  }
  const first = dashOf(text, seq.items[0]);
  const last = seq.items.at(-1);
  if (!first || !isNode(last) || !last.range) return undefined;
  const at = afterLastContentLine(text, last.range[1]);
  const needsNewline = at === text.length && !text.endsWith("\n");
  return `${text.slice(0, at)}${needsNewline ? "\n" : ""}${renderEntry(entry, first.column)}\n${text.slice(at)}`;
}

/** Removes the lines of device `index` (and the comment lines directly above it) from the `devices:` list. */
export function spliceRemove(text: string, doc: Document, index: number): string | undefined {
  const found = devicesSeq(doc);
  if (!found || found.seq.flow) return undefined;
  const { seq, key } = found;
  const item = seq.items[index];
  const dash = dashOf(text, item);
  if (!dash || !isNode(item) || !item.range) return undefined;
  const start = backOverComments(text, dash.line, dash.column);
  let end: number;
  const next = seq.items[index + 1];
  if (next !== undefined) {
    const nextDash = dashOf(text, next);
    if (!nextDash) return undefined;
    end = backOverComments(text, nextDash.line, nextDash.column);
  } else {
    end = afterLastContentLine(text, item.range[1]);
  }
  let out = text.slice(0, start) + text.slice(end);
  if (seq.items.length === 1 && key.range) {
    // The list is now empty: write `devices: []` so the file still says what the key holds.
    const colon = out.indexOf(":", key.range[1]);
    if (colon < 0) return undefined;
    out = `${out.slice(0, colon + 1)} []${out.slice(colon + 1)}`;
  }
  return out;
}
