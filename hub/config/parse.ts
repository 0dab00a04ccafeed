/**
 * Reading a fleet file: YAML (or JSON, which YAML 1.2 reads too) → schema → {@link FleetConfig}, with every
 * problem reported as `file:line: path: expected ...`.
 */
import { readFile } from "node:fs/promises";
import { type Document, LineCounter, parseDocument } from "yaml";
import { FleetConfigError, type FleetIssue, issuesFromZod } from "./errors.ts";
import { type FleetConfig, FleetConfigSchema } from "./schema.ts";

/** A parsed fleet file with the YAML document kept, so edits can preserve comments and layout. */
export interface ParsedFleet {
  config: FleetConfig;
  doc: Document;
  counter: LineCounter;
}

/** Parses YAML text into a document, throwing {@link FleetConfigError} on syntax errors (with their lines). */
export function parseFleetDocument(text: string, fileName: string): { doc: Document; counter: LineCounter } {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues: FleetIssue[] = doc.errors.map((err) => ({
      file: fileName,
      line: counter.linePos(err.pos[0]).line,
      path: "",
      message: `not valid YAML: ${err.message.split("\n")[0]}`,
    }));
    throw new FleetConfigError(issues);
  }
  return { doc, counter };
}

/** Parses and validates fleet text; the document is returned too. Throws {@link FleetConfigError}. */
export function parseFleet(text: string, fileName: string): ParsedFleet {
  const { doc, counter } = parseFleetDocument(text, fileName);
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new FleetConfigError([
      { file: fileName, line: 1, path: "", message: "expected a mapping with `hub:` and `devices:`" },
    ]);
  }
  const result = FleetConfigSchema.safeParse(data, { reportInput: true });
  if (!result.success)
    throw new FleetConfigError(issuesFromZod(result.error, fileName, doc, counter, FleetConfigSchema));
  return { config: result.data, doc, counter };
}

/**
 * Parses and validates the text of a fleet file. `fileName` is only used in messages.
 * @throws {FleetConfigError} naming the file, line, path and what is expected, one line per problem.
 */
export function parseFleetConfig(text: string, fileName: string): FleetConfig {
  return parseFleet(text, fileName).config;
}

/**
 * Reads and validates a fleet file (`fleet.yaml`, or JSON).
 * @throws {FleetConfigError} when it is missing, unreadable or invalid.
 */
export async function loadFleetConfig(path: string): Promise<FleetConfig> {
  return parseFleetConfig(await readFleetText(path), path);
}

/** Reads a fleet file's text, turning a missing or unreadable file into a {@link FleetConfigError}. */
export async function readFleetText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === "ENOENT"
        ? "file not found (`ganglion init` writes a starter fleet.yaml)"
        : `cannot read: ${(err as Error).message}`;
    throw new FleetConfigError([{ file: path, line: 0, path: "", message }]);
  }
}
