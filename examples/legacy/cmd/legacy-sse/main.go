// Command legacy-sse serves the legacy SSE backend of package legacy over
// plain HTTP/1.1, the way an old Express app would:
//
//	go run ./examples/legacy/cmd/legacy-sse -listen 127.0.0.1:3000 -token secret
//	curl -N -H 'Authorization: Bearer secret' http://127.0.0.1:3000/events
//
// The token can also come from the LEGACY_TOKEN environment variable.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sse-proxy/caddy-sse-proxy/examples/legacy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "address to listen on")
	token := flag.String("token", os.Getenv("LEGACY_TOKEN"), "bearer token clients must send (empty: no authentication; default $LEGACY_TOKEN)")
	path := flag.String("path", legacy.DefaultPath, `URL path of the stream ("*" for every path)`)
	interval := flag.Duration("interval", legacy.DefaultInterval, "time between events of a burst")
	burst := flag.Int("burst", legacy.DefaultBurst, "events per burst")
	pause := flag.Duration("pause", legacy.DefaultPause, "silence after each burst (negative: none)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	auth := "no authentication"
	if *token != "" {
		auth = "Authorization: Bearer <token> required"
	}
	fmt.Printf("legacy SSE backend on http://%s%s (%s, health: %s)\n", l.Addr(), *path, auth, legacy.HealthPath)

	err = legacy.Serve(ctx, l, legacy.Options{
		Token:    *token,
		Path:     *path,
		Interval: *interval,
		Burst:    *burst,
		Pause:    *pause,
	})
	if err != nil {
		log.Fatal(err)
	}
}
