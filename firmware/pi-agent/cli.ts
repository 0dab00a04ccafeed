/** Entry point of the bundle (`dist/ganglion-agent.mjs`) and of `npx tsx firmware/pi-agent/cli.ts`. */
import { main } from "./src/main.ts";

await main(process.argv.slice(2));
