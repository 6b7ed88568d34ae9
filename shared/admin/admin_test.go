package admin_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/camelot/lancelot/shared/admin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func serve(t *testing.T, h admin.Handler) {
	t.Helper()
	ln, err := admin.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ln, h) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v after Close, want nil", err)
		}
	})
}

func TestDoRoundTrip(t *testing.T) {
	got := make(chan string, 2)
	serve(t, func(_ context.Context, cmd string) error {
		got <- cmd
		if cmd == "fail" {
			return errors.New("reload aborted: new worker exited")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Do(ctx, os.Getpid(), admin.CommandReload); err != nil {
		t.Errorf("Do(reload) = %v, want nil", err)
	}
	if err := admin.Do(ctx, os.Getpid(), "fail"); err == nil || err.Error() != "reload aborted: new worker exited" {
		t.Errorf("Do(fail) = %v, want the handler's error", err)
	}
	if a, b := <-got, <-got; a != "reload" || b != "fail" {
		t.Errorf("handler saw %q, %q", a, b)
	}
}

func TestDoWaitsForTheHandler(t *testing.T) {
	release := make(chan struct{})
	serve(t, func(context.Context, string) error { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := admin.Do(ctx, os.Getpid(), admin.CommandReload)
	close(release)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("Do() with a handler that outlives ctx = %v, want a 'no answer' error", err)
	}
}

func TestDoWithoutSupervisor(t *testing.T) {
	// A pid with no admin socket: nothing listens on it.
	err := admin.Do(context.Background(), 1<<30, admin.CommandReload)
	if !errors.Is(err, admin.ErrNoAdminSocket) {
		t.Errorf("Do() to no supervisor = %v, want ErrNoAdminSocket", err)
	}
	var ne *net.OpError
	if !errors.As(err, &ne) {
		t.Errorf("Do() error %v does not carry the dial error", err)
	}
}
