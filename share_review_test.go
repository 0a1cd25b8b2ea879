package sseproxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// Found in review of the shared-stream hardening: each test here failed
// before the fix it is named after.

// A backend that gives each visitor without a cookie a session of its own
// (Set-Cookie in the stream's answer) must not have that session handed
// to every cookie-less client that shares the stream: they would all log
// in as one. Only the client whose request the backend answered gets it.
func TestSharedClientsNeverGetAnotherClientsSetCookie(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var n atomic.Int32
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("Set-Cookie", fmt.Sprintf("sid=secret-%d; HttpOnly", n.Add(1)))
				sseHeaders(w)
				for {
					write(w, "data: tick\n\n")
					select {
					case <-time.After(20 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
				}
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n}")
			c := testcaddy.Client(t, p)
			first := testcaddy.Open(t, c, base+"/events", sseAccept)
			first.WaitFor(t, "data: tick\n\n", wait)
			if got := first.Resp.Header.Values("Set-Cookie"); len(got) != 1 || got[0] != "sid=secret-1; HttpOnly" {
				t.Errorf("the client that started the stream got Set-Cookie %q, want the backend's", got)
			}
			second := testcaddy.Open(t, c, base+"/events", sseAccept)
			second.WaitFor(t, "data: tick\n\n", wait)
			if got := second.Resp.Header.Values("Set-Cookie"); len(got) != 0 {
				t.Errorf("a client that joined got another client's Set-Cookie %q", got)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("upstream got %d requests, want 1 (the clients share)", got)
			}
		})
	}
}

// A first answer that is not a stream and breaks in the middle of its body
// (the upstream's connection drops) must not reach a shared client as a
// body that ended well: unshared, the client's response is cut off too, so
// that it can tell a truncated body from a whole one.
func TestSharedClientSeesANonStreamAnswerThatBrokeAsBroken(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				write(w, `{"part": "one", `)
				time.Sleep(100 * time.Millisecond)
				panic(http.ErrAbortHandler) // the connection drops mid-body
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n\treconnect_for 1s\n}")
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", sseAccept)
			err := s.WaitEnd(t, wait)
			if err == io.EOF {
				t.Errorf("the client got %q as a whole body; want its response cut off", s.Bytes())
			}
		})
	}
}

// clientCert makes a self-signed client certificate for cn.
func clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A TLS client certificate is a credential like a cookie: a backend that
// knows its users by the certificate the proxy passes on (header_up of a
// {http.request.tls.client.*} placeholder) must never have one user's
// stream served to another. Clients with different certificates do not
// share; clients with the same one do.
func TestSharedClientsWithDifferentClientCertificatesNeverShare(t *testing.T) {
	testcaddy.LeakCheck(t)
	var mu sync.Mutex
	seen := map[string]int{}
	up := newUpstream(t, echoing("X-Client-Subject", func(v string) {
		mu.Lock()
		seen[v]++
		mu.Unlock()
	}))
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY} {\n\t\tclient_auth {\n\t\t\tmode request\n\t\t}\n\t}\n"+
		"\tsse_proxy %s {\n\t\tshare\n\t\tshare_linger 200ms\n\t\theader_up X-Client-Subject {http.request.tls.client.subject}\n\t}\n}\n",
		testcaddy.GlobalOptions, port, up.addr()))
	base := fmt.Sprintf("https://localhost:%d", port)
	certs := map[string]tls.Certificate{"alice": clientCert(t, "alice"), "bob": clientCert(t, "bob")}
	for _, user := range []string{"alice", "bob", "alice"} {
		tr := &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, //nolint:gosec // a test certificate
				Certificates:       []tls.Certificate{certs[user]},
			},
		}
		var conns []net.Conn
		var connsMu sync.Mutex
		dialer := &net.Dialer{}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				connsMu.Lock()
				conns = append(conns, c)
				connsMu.Unlock()
			}
			return c, err
		}
		t.Cleanup(func() {
			tr.CloseIdleConnections()
			connsMu.Lock()
			defer connsMu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		s := testcaddy.Open(t, &http.Client{Transport: tr}, base+"/events", sseAccept)
		s.WaitFor(t, "data: for ", wait)
		s.WaitFor(t, "\n\n", wait)
		events, _, _ := testcaddy.ParseEvents(s.Bytes())
		if want := "for CN=" + user; len(events) == 0 || events[0].Data != want {
			t.Errorf("%s got %q, want %q", user, s.Bytes(), want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen["CN=alice"] != 1 || seen["CN=bob"] != 1 {
		t.Errorf("upstream requests by client certificate: %v; want one for alice (shared by her two clients) and one for bob", seen)
	}
}
