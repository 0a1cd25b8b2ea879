// A legacy Server-Sent-Events backend on Express, the way Express apps write
// SSE: res.set the headers, flushHeaders, res.write per line, a timer per
// client, cleanup on req 'close'. Node adds "Connection: keep-alive" and
// "Keep-Alive: timeout=5" to the response on its own. It knows nothing about
// sse_proxy.
//
//   PORT             listening port on 127.0.0.1      (default 3000)
//   SSE_TOKEN        the bearer token it expects       (default "secret")
//   SSE_INTERVAL_MS  time between the events of a burst (default 1000)
//   SSE_BURST        events per burst                  (default 5)
//   SSE_PAUSE_MS     silence after each burst          (default 20000)
'use strict';

const express = require('express');

const port = Number(process.env.PORT || 3000);
const token = process.env.SSE_TOKEN || 'secret';
const interval = Number(process.env.SSE_INTERVAL_MS || 1000);
const burst = Number(process.env.SSE_BURST || 5);
const pause = Number(process.env.SSE_PAUSE_MS || 20000);

const app = express();
const clients = new Set(); // the responses of open event streams

function requireToken(req, res, next) {
  if (req.get('Authorization') !== `Bearer ${token}`) {
    return res.status(401).json({ error: 'unauthorized' });
  }
  next();
}

app.get('/events', requireToken, (req, res) => {
  res.set({
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
  });
  res.flushHeaders();
  clients.add(res);

  const send = (fields) => {
    for (const [k, v] of Object.entries(fields)) res.write(`${k}: ${v}\n`);
    res.write('\n');
  };
  send({ event: 'hello', data: JSON.stringify({ authorization: req.get('Authorization'), sent: Date.now() }) });

  // Resume after the last event the client saw.
  let n = parseInt(req.get('Last-Event-ID'), 10) || 0;
  let i = 0;
  let timer;
  const tick = () => {
    n++;
    i = (i + 1) % burst;
    send({ id: n, event: 'tick', data: JSON.stringify({ n, sent: Date.now() }) });
    timer = setTimeout(tick, i === 0 ? interval + pause : interval);
  };
  tick();

  req.on('close', () => {
    clearTimeout(timer);
    clients.delete(res);
  });
});

app.get('/stats', (req, res) => {
  res.json({ streams: clients.size });
});

app.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${port}/events`);
});
