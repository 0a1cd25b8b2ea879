// clients.mjs is the entry of the bundle the client-library tests serve to
// the page (testdata/clients.html): the libraries as pinned in
// package-lock.json, bundled by esbuild because their published builds
// are modules with bare imports or CommonJS, which a page cannot load as
// they are.
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { EventSourcePolyfill } from "event-source-polyfill";

window.fetchEventSource = fetchEventSource;
window.EventSourcePolyfill = EventSourcePolyfill;
