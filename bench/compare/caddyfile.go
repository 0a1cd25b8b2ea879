package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// site is one Caddy site: a subject served over one protocol on its own port.
type site struct {
	subject string
	proto   string // h1: plain HTTP; h2: TLS (Caddy negotiates h2 by ALPN)
	port    int
}

// handlerBlock is the Caddyfile handler config of a proxied subject.
func handlerBlock(subject string, upstream string) string {
	switch subject {
	case "reverse_proxy":
		return "reverse_proxy " + upstream
	case "sse_proxy":
		return "sse_proxy " + upstream + " {\n\t\theartbeat 15s\n\t}"
	// Later: case "sse_proxy_shared": the same with the `share` subdirective.
	default:
		panic("no Caddy config for subject " + subject)
	}
}

// caddyfile renders one Caddyfile with every site. Sites bind to 127.0.0.1 only.
func caddyfile(sites []site, upstream, certFile, keyFile string) string {
	var b strings.Builder
	b.WriteString(`{
	admin off
	auto_https off
	persist_config off
	servers {
		protocols h1 h2
	}
	log {
		level WARN
	}
}
`)
	for _, s := range sites {
		scheme, tls := "http", ""
		if s.proto == "h2" {
			scheme, tls = "https", fmt.Sprintf("\ttls %s %s\n", certFile, keyFile)
		}
		fmt.Fprintf(&b, "\n# %s over %s\n%s://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\t%s\n}\n",
			s.subject, s.proto, scheme, s.port, tls, handlerBlock(s.subject, upstream))
	}
	return b.String()
}

// writeSelfSignedCert writes a one-day ECDSA certificate for 127.0.0.1 and
// localhost into dir and returns the file paths.
func writeSelfSignedCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "sse_proxy benchmark"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
