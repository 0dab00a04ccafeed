/** Entry point: builds the store, connects it to `/api/live` on this page's host, renders the app. */
import { render } from "preact";
import { App } from "./app.tsx";
import { adoptTokenFromFragment } from "./auth.ts";
import { connectLive } from "./live.ts";
import { DashboardStore } from "./state.ts";
import "uplot/dist/uPlot.min.css";
import "./style.css";

// `#token=…` (the link `ganglion start` prints): kept for this tab and taken out of the address bar at once.
adoptTokenFromFragment();
addEventListener("hashchange", adoptTokenFromFragment);

const store = new DashboardStore();
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
connectLive(`${scheme}//${location.host}/api/live`, {
  message: (msg) => store.receive(msg),
  connection: (state) => store.setConnection(state),
});
const root = document.getElementById("app")!;
root.textContent = ""; // the static placeholder of index.html
render(<App store={store} />, root);
