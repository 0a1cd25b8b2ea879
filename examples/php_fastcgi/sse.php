<?php
// A legacy PHP event stream. It knows nothing about HTTP/2, heartbeats or
// cookies: sse_proxy, in front of php_fastcgi, takes care of those (see the
// Caddyfile next to this file).

const TOKEN = 'secret'; // the bearer token this "legacy" script expects

// sse_proxy builds this header from the session cookie; a request without
// the cookie is answered 401 by Caddy and never starts a PHP worker.
$auth = $_SERVER['HTTP_AUTHORIZATION'] ?? '';
if (!hash_equals('Bearer ' . TOKEN, $auth)) {
    http_response_code(401);
    header('Content-Type: application/json');
    echo json_encode(['error' => 'unauthorized']);
    exit;
}

// Stream: no time limit, no output buffering or compression in PHP.
set_time_limit(0);
ini_set('zlib.output_compression', '0');
while (ob_get_level() > 0) {
    ob_end_flush();
}
header('Content-Type: text/event-stream');
header('Cache-Control: no-cache');

// Continue the numbering after the last event the browser saw.
$n = (int) ($_SERVER['HTTP_LAST_EVENT_ID'] ?? 0);

while (true) {
    // A burst of five events, one a second...
    for ($i = 0; $i < 5; $i++) {
        $n++;
        echo "id: $n\n";
        echo "event: tick\n";
        echo 'data: ' . json_encode(['n' => $n, 'time' => gmdate('c')]) . "\n\n";
        flush();
        // PHP notices a client that left only when it writes.
        if (connection_aborted()) {
            exit;
        }
        sleep(1);
    }
    // ...then silence, as a feed waiting for news. Meanwhile sse_proxy sends
    // heartbeats, so no proxy or browser on the way gives up on the stream.
    sleep(20);
}
