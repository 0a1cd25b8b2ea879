"""A legacy Server-Sent-Events backend on Flask, the way Flask apps write SSE:
a generator that yields one event at a time, returned as
Response(stream(), mimetype='text/event-stream'). It knows nothing about
sse_proxy.

  PORT             listening port on 127.0.0.1      (default 5000)
  SSE_TOKEN        the bearer token it expects       (default "secret")
  SSE_INTERVAL_MS  time between the events of a burst (default 1000)
  SSE_BURST        events per burst                  (default 5)
  SSE_PAUSE_MS     silence after each burst          (default 20000)
"""

import json
import os
import threading
import time

from flask import Flask, Response, abort, jsonify, request

TOKEN = os.environ.get("SSE_TOKEN", "secret")
INTERVAL = int(os.environ.get("SSE_INTERVAL_MS", "1000")) / 1000
BURST = int(os.environ.get("SSE_BURST", "5"))
PAUSE = int(os.environ.get("SSE_PAUSE_MS", "20000")) / 1000

app = Flask(__name__)

# Open event streams. The generator's finally block runs when the client has
# gone: Werkzeug closes the generator once a write to the client fails.
streams = 0
streams_lock = threading.Lock()


def now_ms():
    return round(time.time() * 1000, 1)


@app.get("/events")
def events():
    auth = request.headers.get("Authorization", "")
    if auth != "Bearer " + TOKEN:
        abort(401)
    # Resume after the last event the client saw.
    try:
        last = int(request.headers.get("Last-Event-ID", "0"))
    except ValueError:
        last = 0

    def stream():
        global streams
        with streams_lock:
            streams += 1
        try:
            hello = json.dumps({"authorization": auth, "sent": now_ms()})
            yield f"event: hello\ndata: {hello}\n\n"
            n = last
            while True:
                for _ in range(BURST):
                    n += 1
                    data = json.dumps({"n": n, "sent": now_ms()})
                    yield f"id: {n}\nevent: tick\ndata: {data}\n\n"
                    time.sleep(INTERVAL)
                time.sleep(PAUSE)
        finally:
            with streams_lock:
                streams -= 1

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache"})


@app.get("/stats")
def stats():
    with streams_lock:
        return jsonify(streams=streams)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")),
            threaded=True)
