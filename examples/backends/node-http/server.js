// A legacy Server-Sent-Events backend on Node's own http module, written the
// way such servers usually are: headers with writeHead, one res.write per
// event, a timer per client, cleanup when the request closes. It knows
// nothing about sse_proxy.
//
//   PORT             listening port on 127.0.0.1      (default 3000)
//   SSE_TOKEN        the bearer token it expects       (default "secret")
//   SSE_INTERVAL_MS  time between the events of a burst (default 1000)
//   SSE_BURST        events per burst                  (default 5)
//   SSE_PAUSE_MS     silence after each burst          (default 20000)
'use strict';

const http = require('http');

const port = Number(process.env.PORT || 3000);
const token = process.env.SSE_TOKEN || 'secret';
const interval = Number(process.env.SSE_INTERVAL_MS || 1000);
const burst = Number(process.env.SSE_BURST || 5);
const pause = Number(process.env.SSE_PAUSE_MS || 20000);

let streams = 0; // open event streams

function events(req, res) {
  const auth = req.headers.authorization || '';
  if (auth !== `Bearer ${token}`) {
    res.writeHead(401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'unauthorized' }));
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  streams++;
  res.write(`event: hello\ndata: ${JSON.stringify({ authorization: auth, sent: Date.now() })}\n\n`);

  // Resume after the last event the client saw.
  let n = Number(req.headers['last-event-id']) || 0;
  let timer;
  const tick = (i) => {
    n++;
    res.write(`id: ${n}\nevent: tick\ndata: ${JSON.stringify({ n, sent: Date.now() })}\n\n`);
    i++;
    timer = setTimeout(tick, i < burst ? interval : interval + pause, i % burst);
  };
  tick(0);

  req.on('close', () => {
    clearTimeout(timer);
    streams--;
  });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/events') {
    events(req, res);
  } else if (req.method === 'GET' && path === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ streams }));
  } else {
    res.writeHead(404);
    res.end();
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${port}/events`);
});
