// eventsource-client.mjs reads a stream with the Node `eventsource`
// package, the way a server-side consumer would, and prints what the
// library hands it, one JSON object a line: {"open"}, {"message"} with
// type, data and lastEventId, {"error"}. It stops after the number of
// messages given as its second argument.
//
// node eventsource-client.mjs <url> <messages>
import { EventSource } from "eventsource";

const [url, want] = process.argv.slice(2);
const print = (o) => process.stdout.write(JSON.stringify({ ...o, at: performance.now() }) + "\n");
let n = 0;
const es = new EventSource(url);
es.onopen = () => print({ kind: "open" });
es.onerror = (e) => print({ kind: "error", message: String(e?.message ?? ""), state: es.readyState });
const record = (e) => {
  print({ kind: "message", type: e.type, data: e.data, id: e.lastEventId });
  if (++n >= Number(want)) {
    es.close();
  }
};
es.addEventListener("message", record);
es.addEventListener("named", record);
