/**
 * The API token for mutating requests (DESIGN.md §2: a hub bound beyond loopback wants `Authorization: Bearer
 * <token>` on POST/DELETE; reads and `/api/live` stay open). The page learns it three ways: the `#token=` fragment of
 * the link the hub prints (read once, then removed from the address bar), a prompt shown when an action is answered
 * 401, or what this tab stored earlier (sessionStorage: gone when the tab closes, never shared with other tabs).
 *
 * Every request that needs the token and is refused waits on the same prompt, so `Clear all` asks once.
 */

const STORAGE_KEY = "ganglion.apiToken";

/** Why the prompt is open: the hub asked for a token, or refused the one the page sent. */
export interface TokenPrompt {
  /** `missing`: no token was sent; `refused`: the hub answered 401 to the token this tab held. */
  reason: "missing" | "refused";
  /** Where the refused token came from, for the message. */
  source?: TokenSource;
  /** Counts refusals while this prompt is open: the field is cleared and focused again on each. */
  refusals: number;
  /** What the waiting actions were going to do (`send "on" to tank-pi/status-led`), oldest first. */
  actions: string[];
}

export type TokenSource = "link" | "prompt" | "session";

export interface AuthState {
  /** Whether this tab holds a token (never the token itself: components have no use for it). */
  hasToken: boolean;
  source: TokenSource | undefined;
  prompt: TokenPrompt | null;
  /** A one-line note for the header's status region (`API token forgotten`). */
  notice: string | null;
}

/** The user closed the prompt without a token: the action was not sent. */
export class TokenCancelled extends Error {
  constructor() {
    super("not sent: this hub needs its API token for changes, and none was given");
    this.name = "TokenCancelled";
  }
}

function readStored(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the token lives in memory only
  }
}

function writeStored(token: string | undefined): void {
  try {
    if (token === undefined) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // storage disabled or full: memory only
  }
}

class Auth {
  private token: string | undefined = readStored();
  private source: TokenSource | undefined = this.token === undefined ? undefined : "session";
  private prompt: TokenPrompt | null = null;
  private waiters: { resolve(token: string): void; reject(err: Error): void }[] = [];
  private notice: string | null = null;
  /** The last token the hub refused: the other requests sent with it are the same refusal, not a new one. */
  private lastRefused: string | undefined;
  private listeners = new Set<() => void>();
  private state: AuthState = this.snapshot();

  private snapshot(): AuthState {
    return {
      hasToken: this.token !== undefined,
      source: this.source,
      prompt: this.prompt,
      notice: this.notice,
    };
  }

  private changed(): void {
    this.state = this.snapshot();
    for (const l of this.listeners) l();
  }

  get(): AuthState {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** The token to send now, if any. */
  current(): string | undefined {
    return this.token;
  }

  set(token: string, source: TokenSource): void {
    this.token = token;
    this.source = source;
    this.notice = null;
    this.lastRefused = undefined;
    writeStored(token);
    this.changed();
  }

  /** The "Forget token" control: this tab holds no token any more. */
  forget(): void {
    this.token = undefined;
    this.source = undefined;
    this.notice = "API token forgotten; the next change will ask for it";
    writeStored(undefined);
    this.changed();
  }

  /**
   * A request sent with `sent` (or none) was answered 401. Drops `sent` if it is still the one held, and resolves with
   * the token to try next: one set meanwhile (another request's prompt), else the one the user enters. Rejects with
   * {@link TokenCancelled} when the user closes the prompt.
   */
  refused(sent: string | undefined, action: string): Promise<string> {
    if (this.token !== undefined && this.token !== sent) return Promise.resolve(this.token);
    const fresh = sent !== undefined && sent !== this.lastRefused;
    const source = fresh ? this.source : this.prompt?.source;
    if (sent !== undefined) {
      this.lastRefused = sent;
      this.token = undefined;
      this.source = undefined;
      writeStored(undefined);
    }
    const base = this.prompt ?? { reason: "missing" as const, actions: [], refusals: 0 };
    this.prompt = {
      reason: fresh || base.reason === "refused" ? "refused" : "missing",
      actions: [...base.actions, action],
      refusals: base.refusals + (fresh ? 1 : 0),
      ...(source === undefined ? {} : { source }),
    };
    this.changed();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The prompt's submit: keep the token for this tab and let the waiting actions retry with it. */
  submit(token: string): void {
    const waiters = this.waiters.splice(0);
    this.prompt = null;
    this.set(token, "prompt");
    for (const w of waiters) w.resolve(token);
  }

  /** The prompt's Cancel or Escape: the waiting actions fail with {@link TokenCancelled}. */
  cancel(): void {
    const waiters = this.waiters.splice(0);
    this.prompt = null;
    this.changed();
    for (const w of waiters) w.reject(new TokenCancelled());
  }
}

export const auth = new Auth();

/**
 * Takes `token=…` out of the address's fragment (`http://hub:8080/#token=…`, the link `ganglion start` prints), keeps
 * it for this tab and rewrites the address without it (history.replaceState: no reload, no new history entry), so it
 * does not linger in the address bar, a bookmark or a screenshot. Other fragment parameters stay.
 */
export function adoptTokenFromFragment(): void {
  const hash = location.hash.replace(/^#/, "");
  if (hash === "") return;
  const parts = hash.split("&");
  const at = parts.findIndex((p) => p.startsWith("token="));
  if (at < 0) return;
  let token: string;
  try {
    token = decodeURIComponent(parts[at]!.slice("token=".length)).trim();
  } catch {
    token = "";
  }
  parts.splice(at, 1);
  const rest = parts.join("&");
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
  if (token !== "") auth.set(token, "link");
}
