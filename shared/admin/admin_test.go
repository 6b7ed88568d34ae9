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
	got := make(chan string, 3)
	serve(t, func(_ context.Context, cmd string) (string, error) {
		got <- cmd
		switch cmd {
		case "fail":
			return "", errors.New("reload aborted: new worker exited")
		case "status":
			return `{"pid": 1}`, nil
		}
		return "", nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := admin.Do(ctx, os.Getpid(), admin.CommandReload); res != "" || err != nil {
		t.Errorf("Do(reload) = %q, %v; want \"\", nil", res, err)
	}
	if res, err := admin.Do(ctx, os.Getpid(), "fail"); err == nil || err.Error() != "reload aborted: new worker exited" {
		t.Errorf("Do(fail) = %q, %v; want the handler's error", res, err)
	}
	if res, err := admin.Do(ctx, os.Getpid(), admin.CommandStatus); res != `{"pid": 1}` || err != nil {
		t.Errorf("Do(status) = %q, %v; want the handler's result", res, err)
	}
	if a, b, c := <-got, <-got, <-got; a != "reload" || b != "fail" || c != "status" {
		t.Errorf("handler saw %q, %q, %q", a, b, c)
	}
}

func TestDoWaitsForTheHandler(t *testing.T) {
	release := make(chan struct{})
	serve(t, func(context.Context, string) (string, error) { <-release; return "", nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := admin.Do(ctx, os.Getpid(), admin.CommandReload)
	close(release)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("Do() with a handler that outlives ctx = %v, want a 'no answer' error", err)
	}
}

func TestDoWithoutSupervisor(t *testing.T) {
	// A pid with no admin socket: nothing listens on it.
	_, err := admin.Do(context.Background(), 1<<30, admin.CommandReload)
	if !errors.Is(err, admin.ErrNoAdminSocket) {
		t.Errorf("Do() to no supervisor = %v, want ErrNoAdminSocket", err)
	}
	var ne *net.OpError
	if !errors.As(err, &ne) {
		t.Errorf("Do() error %v does not carry the dial error", err)
	}
}
