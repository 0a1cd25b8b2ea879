<?php
// A legacy PHP event stream. It knows nothing about HTTP/2, heartbeats or
// cookies: sse_proxy, in front of php_fastcgi, takes care of those (see the
// Caddyfile next to this file).
//
// Settings come from the environment (in php-fpm: env[NAME] in the pool):
//   SSE_TOKEN        the bearer token this script expects (default "secret")
//   SSE_INTERVAL_MS  time between the events of a burst  (default 1000)
//   SSE_BURST        events per burst                   (default 5)
//   SSE_PAUSE_MS     silence after each burst           (default 20000)

function setting(string $name, string $default): string
{
    $v = getenv($name);
    return ($v === false || $v === '') ? $default : $v;
}

$token = setting('SSE_TOKEN', 'secret');
$interval = (int) setting('SSE_INTERVAL_MS', '1000');
$burst = (int) setting('SSE_BURST', '5');
$pause = (int) setting('SSE_PAUSE_MS', '20000');

// sse_proxy builds this header from the session cookie; a request without
// the cookie is answered 401 by Caddy and never starts a PHP worker.
$auth = $_SERVER['HTTP_AUTHORIZATION'] ?? '';
if (!hash_equals('Bearer ' . $token, $auth)) {
    http_response_code(401);
    header('Content-Type: application/json');
    echo json_encode(['error' => 'unauthorized']);
    exit;
}

// Stream: no time limit, no compression in PHP. PHP's output buffer
// (output_buffering = 4096 in Debian's php.ini) stays: the script empties it
// and the SAPI's after every event, as PHP streaming scripts do.
set_time_limit(0);
ini_set('zlib.output_compression', '0');
header('Content-Type: text/event-stream');
header('Cache-Control: no-cache');
header('Connection: keep-alive');

// Milliseconds since the epoch, so a client can tell how late an event is.
function now_ms(): float
{
    return round(microtime(true) * 1000, 1);
}

// send pushes what was echoed so far to php-fpm's client (Caddy).
function send(): void
{
    if (ob_get_level() > 0) {
        ob_flush();
    }
    flush();
}

// Whom this stream is for: the credential the script was given.
echo "event: hello\n";
echo 'data: ' . json_encode(['authorization' => $auth, 'sent' => now_ms()]) . "\n\n";
send();

// Continue the numbering after the last event the browser saw.
$n = (int) ($_SERVER['HTTP_LAST_EVENT_ID'] ?? 0);

while (true) {
    // A burst of events...
    for ($i = 0; $i < $burst; $i++) {
        $n++;
        echo "id: $n\n";
        echo "event: tick\n";
        echo 'data: ' . json_encode(['n' => $n, 'sent' => now_ms()]) . "\n\n";
        send();
        // PHP notices a client that left only when it writes.
        if (connection_aborted()) {
            exit;
        }
        usleep($interval * 1000);
    }
    // ...then silence, as a feed waiting for news. Meanwhile sse_proxy sends
    // heartbeats, so no proxy or browser on the way gives up on the stream.
    usleep($pause * 1000);
}
