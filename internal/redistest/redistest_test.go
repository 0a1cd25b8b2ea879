package redistest

import (
	"net"
	"testing"
	"time"
)

func TestServerAnswersOnBothAddressesAndRestartsAtTheSame(t *testing.T) {
	s := Start(t, WithTCP())
	for _, addr := range [][2]string{{"unix", s.Addr()}, {"tcp", s.TCPAddr()}} {
		c, err := net.DialTimeout(addr[0], addr[1], time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	s.Kill()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Start()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	s.Pause()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("PING answered while paused")
	}
	s.Resume()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestMissingRedisServerSkipsOutsideCI(t *testing.T) {
	var sub *testing.T
	t.Run("no redis-server", func(t *testing.T) {
		sub = t
		t.Setenv("PATH", t.TempDir())
		t.Setenv("CI", "")
		Start(t)
		t.Error("Start returned without redis-server")
	})
	if !sub.Skipped() {
		t.Fatal("not skipped")
	}
}
