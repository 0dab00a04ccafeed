import { afterEach, describe, expect, it } from "vitest";
import { loginCollector } from "../../hub/broker/login-gc.ts";

const g = globalThis as { gc?: unknown };
const original = g.gc;

afterEach(() => {
  g.gc = original;
});

describe("a full collection after each burst of logins", () => {
  it("asks V8 for one asynchronous major collection every N logins", () => {
    const requests: unknown[] = [];
    g.gc = (options: unknown) => requests.push(options);
    const noteLogin = loginCollector(3);
    for (let i = 0; i < 8; i++) noteLogin();
    expect(requests).toEqual([
      { type: "major", execution: "async" },
      { type: "major", execution: "async" },
    ]);
  });

  it("does nothing when Node runs without --expose-gc", () => {
    g.gc = undefined;
    const noteLogin = loginCollector(1);
    expect(() => noteLogin()).not.toThrow();
  });
});
