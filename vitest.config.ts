import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Suites start real servers, emulated boards and worker threads; the machines here have two cores.
    pool: "forks",
    maxWorkers: 2,
    // The JSON report is what .ci/run reads to print its plain "N passed, M failed" line.
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
  },
});
