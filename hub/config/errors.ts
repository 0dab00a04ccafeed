/**
 * Turning schema issues into lines a user can act on: `fleet.yaml:12: devices[1].sensors[0].range: expected ...`.
 */
import { type Document, isMap, isNode, isPair, isScalar, isSeq, type LineCounter, type Node } from "yaml";
import type { z } from "zod";

/** One problem in a fleet file. `line` is 1-based; 0 when the problem has no place in the text. */
export interface FleetIssue {
  file: string;
  line: number;
  /** Dotted path with indices, e.g. `devices[1].sensors[0].range`; empty for the top level. */
  path: string;
  message: string;
}

/** Thrown by the loaders when a fleet file cannot be read, parsed or validated; the message is one line per issue. */
export class FleetConfigError extends Error {
  readonly issues: readonly FleetIssue[];
  constructor(issues: FleetIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "FleetConfigError";
    this.issues = issues;
  }
}

/** `file:line: path: message`, leaving out what is unknown. */
export function formatIssue(issue: FleetIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}` : issue.file;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/** `["devices", 1, "id"]` → `devices[1].id`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

/**
 * The 1-based line where `path` is written. When the path does not exist (a missing key), the line of the
 * deepest node that does. With `key`, the line of that key inside the map at `path` (for unknown keys).
 */
export function lineOf(
  doc: Document,
  counter: LineCounter,
  path: readonly PropertyKey[],
  key?: string,
): number {
  let node: unknown = doc.contents;
  let best: Node | null = isNode(node) ? node : null;
  const segments: PropertyKey[] = key === undefined ? [...path] : [...path, key];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (!pair) break;
      // For the last segment of an unknown-key lookup, point at the key itself.
      if (key !== undefined && i === segments.length - 1 && isNode(pair.key)) {
        best = pair.key;
        break;
      }
      node = pair.value;
      // A block collection starts on the line after its key; the key's line is where the user looks.
      if ((isMap(node) || isSeq(node)) && !node.flow && isNode(pair.key)) best = pair.key;
      else if (isNode(node)) best = node;
      else if (isNode(pair.key)) best = pair.key;
    } else if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
      if (isNode(node)) best = node;
      else break;
    } else break;
  }
  const offset = best?.range?.[0];
  return offset === undefined ? 0 : counter.linePos(offset).line;
}

/** A schema node as zod 4 describes itself (`_zod.def`); only the wrappers a fleet file uses are followed. */
interface SchemaNode {
  _zod: {
    def: {
      type: string;
      in?: SchemaNode;
      innerType?: SchemaNode;
      element?: SchemaNode;
      shape?: Record<string, SchemaNode>;
      options?: SchemaNode[];
    };
  };
}

/** The keys an object schema at `path` allows, following defaults, pipes, arrays and unions. */
export function allowedKeys(schema: unknown, path: readonly PropertyKey[]): string[] {
  let nodes: SchemaNode[] = [schema as SchemaNode];
  const unwrap = (n: SchemaNode): SchemaNode[] => {
    const def = n._zod.def;
    if (def.in) return unwrap(def.in);
    if (def.innerType) return unwrap(def.innerType);
    if (def.options) return def.options.flatMap(unwrap);
    return [n];
  };
  for (const seg of path) {
    nodes = nodes.flatMap(unwrap).flatMap((n) => {
      const def = n._zod.def;
      if (typeof seg === "number" && def.element) return [def.element];
      const child = typeof seg === "string" ? def.shape?.[seg] : undefined;
      return child ? [child] : [];
    });
  }
  return [...new Set(nodes.flatMap(unwrap).flatMap((n) => Object.keys(n._zod.def.shape ?? {})))];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(cur + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

/** `unknown key "x"`, with the closest allowed key when one is near (a typo), else the list of allowed keys. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  if (allowed.length === 0) return `unknown key "${key}"`;
  const best = allowed
    .map((k) => [k, editDistance(key.toLowerCase(), k.toLowerCase())] as const)
    .sort((x, y) => x[1] - y[1])[0];
  if (best && best[1] <= Math.max(1, Math.floor(key.length / 3)))
    return `unknown key "${key}" (did you mean "${best[0]}"?)`;
  return `unknown key "${key}" (allowed: ${allowed.join(", ")})`;
}

/** Maps zod's issues to {@link FleetIssue}s, with the message reworded as "expected ...". */
export function issuesFromZod(
  error: z.ZodError,
  file: string,
  doc: Document,
  counter: LineCounter,
  /** The schema that produced `error`, to name the keys allowed where an unknown one was found. */
  schema?: unknown,
): FleetIssue[] {
  const out: FleetIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({
          file,
          line: lineOf(doc, counter, issue.path, key),
          path: formatPath([...issue.path, key]),
          message: unknownKeyMessage(key, schema ? allowedKeys(schema, issue.path) : []),
        });
      }
      continue;
    }
    out.push({
      file,
      line: lineOf(doc, counter, issue.path),
      path: formatPath(issue.path),
      message: reword(issue),
    });
  }
  return out.sort((a, b) => a.line - b.line);
}

/** How YAML users call zod's types. */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: "a mapping (key: value)",
  array: "a list",
  string: "a string",
  number: "a number",
  boolean: "true or false",
};

function reword(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && issue.message.startsWith("Invalid input")) {
    const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
    return issue.input === undefined ? `required: expected ${expected}` : `expected ${expected}`;
  }
  if ((issue.code === "too_small" || issue.code === "too_big") && /^Too (small|big): /.test(issue.message)) {
    return issue.message.replace(/^Too (small|big): /, "");
  }
  if (issue.code === "invalid_value" && issue.message.startsWith("Invalid")) {
    return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (issue.code === "invalid_type" && issue.input === undefined && !issue.message.startsWith("required")) {
    return `required: ${issue.message}`;
  }
  return issue.message;
}
