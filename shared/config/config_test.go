package config_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
)

func TestDefaultIsValid(t *testing.T) {
	d := config.Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	if !slices.Equal(d.Listen, []string{":1060"}) || d.MaxQuestionBytes != 1024 || d.IdleTimeout != 5*time.Minute ||
		d.ReadTimeout != 30*time.Second || d.WriteTimeout != 10*time.Second || d.ShutdownTimeout != 30*time.Second ||
		d.LogFormat != "text" || d.LogLevel != "info" || d.Workers < 1 {
		t.Errorf("Default() = %+v, want the documented defaults", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*config.Config)
		// want is a substring of the error; empty means valid.
		want string
	}{
		// Success cases
		{"default", func(*config.Config) {}, ""},
		{"one worker", func(c *config.Config) { c.Workers = 1 }, ""},
		{"max workers", func(c *config.Config) { c.Workers = config.MaxWorkers }, ""},
		{"ipv6 listen", func(c *config.Config) { c.Listen = []string{"[::1]:1060"} }, ""},
		{"listen on a host name", func(c *config.Config) { c.Listen = []string{"localhost:1060"} }, ""},
		{"listen on a scoped IPv6 address", func(c *config.Config) { c.Listen = []string{"[fe80::1%lo]:1060"} }, ""},
		{"several listen addresses", func(c *config.Config) { c.Listen = []string{"127.0.0.1:1060", "[::1]:1060"} }, ""},
		{"json logs", func(c *config.Config) { c.LogFormat = "json" }, ""},
		{"debug logs", func(c *config.Config) { c.LogLevel = "debug" }, ""},
		{"one question byte", func(c *config.Config) { c.MaxQuestionBytes = 1 }, ""},
		{"metrics", func(c *config.Config) { c.Metrics = "127.0.0.1:9100" }, ""},
		{"custom answers", func(c *config.Config) { c.Answers = map[string]string{"Who are you?": "A knight."} }, ""},
		{"worker timeout off", func(c *config.Config) { c.WorkerTimeout = 0 }, ""},
		{"proxy v2", func(c *config.Config) { c.ProxyProtocol, c.ProxyAllowFrom = "v2", "10.0.0.0/8, 127.0.0.1" }, ""},
		{"agent and drain delay", func(c *config.Config) { c.AgentListen, c.DrainDelay = "127.0.0.1:1061", time.Second }, ""},
		{"connection caps", func(c *config.Config) { c.MaxConnections, c.MaxConnectionsPerSource = 100, 10 }, ""},

		// Failure cases
		{"listen without port", func(c *config.Config) { c.Listen = []string{"127.0.0.1"} }, "--listen"},
		{"no listen address", func(c *config.Config) { c.Listen = nil }, "--listen"},
		{"listen port out of range", func(c *config.Config) { c.Listen = []string{"127.0.0.1:99999"} }, `--listen "127.0.0.1:99999": port "99999"`},
		{"listen port not a number", func(c *config.Config) { c.Listen = []string{"127.0.0.1:abc"} }, `port "abc"`},
		{"listen host a malformed IP", func(c *config.Config) { c.Listen = []string{"127.0.0.1.5:80"} }, `host "127.0.0.1.5": not an IP address`},
		{"metrics port out of range", func(c *config.Config) { c.Metrics = "127.0.0.1:70000" }, `--metrics "127.0.0.1:70000"`},
		{"listen address twice", func(c *config.Config) { c.Listen = []string{":1060", "127.0.0.1:1", ":1060"} }, `--listen ":1060": listed twice`},
		{"zero workers", func(c *config.Config) { c.Workers = 0 }, "--workers"},
		{"negative workers", func(c *config.Config) { c.Workers = -1 }, "--workers"},
		{"too many workers", func(c *config.Config) { c.Workers = config.MaxWorkers + 1 }, "--workers"},
		{"zero question bytes", func(c *config.Config) { c.MaxQuestionBytes = 0 }, "--max-question-bytes"},
		{"zero idle timeout", func(c *config.Config) { c.IdleTimeout = 0 }, "--idle-timeout"},
		{"negative read timeout", func(c *config.Config) { c.ReadTimeout = -time.Second }, "--read-timeout"},
		{"zero write timeout", func(c *config.Config) { c.WriteTimeout = 0 }, "--write-timeout"},
		{"zero shutdown timeout", func(c *config.Config) { c.ShutdownTimeout = 0 }, "--shutdown-timeout"},
		{"xml logs", func(c *config.Config) { c.LogFormat = "xml" }, "--log-format"},
		{"trace logs", func(c *config.Config) { c.LogLevel = "trace" }, "--log-level"},
		{"metrics without port", func(c *config.Config) { c.Metrics = "localhost" }, "--metrics"},
		{"empty answers", func(c *config.Config) { c.Answers = map[string]string{} }, "answers"},
		{"question without ?", func(c *config.Config) { c.Answers = map[string]string{"Who": "Me."} }, "answers"},
		{"answer without .", func(c *config.Config) { c.Answers = map[string]string{"Who?": "Me"} }, "answers"},
		{"negative worker timeout", func(c *config.Config) { c.WorkerTimeout = -time.Second }, "--worker-timeout"},
		{"negative drain delay", func(c *config.Config) { c.DrainDelay = -time.Second }, "--drain-delay"},
		{"negative max connections", func(c *config.Config) { c.MaxConnections = -1 }, "--max-connections"},
		{"negative per source", func(c *config.Config) { c.MaxConnectionsPerSource = -1 }, "--max-connections-per-source"},
		{"proxy mode", func(c *config.Config) { c.ProxyProtocol = "v3" }, "--proxy-protocol"},
		{"proxy without allow list", func(c *config.Config) { c.ProxyProtocol = "auto" }, "--proxy-allow-from"},
		{"bad allow list", func(c *config.Config) { c.ProxyProtocol, c.ProxyAllowFrom = "v1", "10.0.0.0/33" }, "--proxy-allow-from"},
		{"agent without port", func(c *config.Config) { c.AgentListen = "localhost" }, "--agent-listen"},
	} {
		c := config.Default()
		tc.change(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Validate(%+v) = %v, want nil", tc.name, c, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: Validate(%+v) = nil, want an error naming %q", tc.name, c, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: Validate() = %q, want it to name %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: Validate() = %q, want one line", tc.name, err)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct{ iface, want string }{
		{"127.0.0.1", "127.0.0.1:1060"},
		{"localhost", "localhost:1060"},
		{"0.0.0.0", "0.0.0.0:1060"},
		{"", ":1060"},
		{"::1", "[::1]:1060"},
		{"::", "[::]:1060"},
		{"[::1]", "[::1]:1060"},
		{"fe80::1%eth0", "[fe80::1%eth0]:1060"},
	} {
		if got := config.ListenAddr(tc.iface); got != tc.want {
			t.Errorf("ListenAddr(%q) = %q, want %q", tc.iface, got, tc.want)
		}
	}
}

func TestTable(t *testing.T) {
	c := config.Default()
	table, err := c.Table()
	if err != nil {
		t.Fatalf("Default().Table() = %v", err)
	}
	if a, ok := table.Answer([]byte("What is your name?")); !ok || string(a) != "My name is Sir Lancelot of Camelot." {
		t.Errorf("default table: Answer(name) = %q, %v", a, ok)
	}
	c.Answers = map[string]string{"Who are you?": "A knight."}
	table, err = c.Table()
	if err != nil {
		t.Fatalf("Table() with answers = %v", err)
	}
	if a, ok := table.Answer([]byte("Who are you?")); !ok || string(a) != "A knight." {
		t.Errorf("custom table: Answer(who) = %q, %v; want %q", a, ok, "A knight.")
	}
	if a, ok := table.Answer([]byte("What is your name?")); ok {
		t.Errorf("custom table: Answer(name) = %q, want unknown: answers replace the built-in table", a)
	}
}

// TestJSONRoundTrip checks the config survives the trip to a worker (the
// supervisor passes it as JSON in the environment).
func TestJSONRoundTrip(t *testing.T) {
	c := config.Default()
	c.Workers = 3
	c.IdleTimeout = 300 * time.Millisecond
	c.Answers = map[string]string{"Who are you?": "A knight."}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var got config.Config
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Workers != 3 || got.IdleTimeout != c.IdleTimeout || got.Answers["Who are you?"] != "A knight." || !slices.Equal(got.Listen, c.Listen) {
		t.Errorf("round trip of %+v = %+v", c, got)
	}
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"debug", "info", "warn", "error"} {
		if _, err := config.ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"", "INFO", "trace", "warning"} {
		if _, err := config.ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) = nil error, want one", s)
		}
	}
}

// TestValidateIsDeterministic: a configuration with several problems is
// always reported by the same one.
func TestValidateIsDeterministic(t *testing.T) {
	c := config.Default()
	c.IdleTimeout, c.ReadTimeout, c.WriteTimeout, c.ShutdownTimeout = 0, 0, 0, 0
	first := c.Validate()
	for range 50 {
		if err := c.Validate(); err == nil || err.Error() != first.Error() {
			t.Fatalf("Validate() = %v, then %v", first, err)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	c := config.Default()
	c.LogFormat, c.LogLevel = "json", "warn"
	log, h := c.NewLogger(&buf)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	h.Close(5 * time.Second) // writes what is queued
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "shown" || m["k"] != "v" {
		t.Errorf("json logger at warn wrote %q (%v), want one JSON line with msg=shown", buf.String(), err)
	}
}

// TestSameAddress: listen addresses that name one socket address, and
// those that only share a port.
func TestSameAddress(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		// the same address, in two forms
		{":1060", "[::]:1060", true},
		{"127.0.0.1:1060", "127.000.000.001:1060", false}, // not an IP to Go: compared as written
		{"[::1]:1060", "[0::1]:1060", true},
		{"127.0.0.1:http", "127.0.0.1:80", true},
		{"Localhost:1060", "localhost:1060", true},
		// different addresses on one port
		{":1060", "0.0.0.0:1060", false},
		{":1060", "127.0.0.2:1060", false},
		{"[::]:1060", "[::1]:1060", false},
		{":1060", ":1061", false},
	} {
		if got := config.SameAddress(tc.a, tc.b); got != tc.want {
			t.Errorf("SameAddress(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
