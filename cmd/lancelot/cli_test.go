package main

// The command line: bad input to serve, the config file, and ask.

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestServeRejects: bad flags and config files make serve exit non-zero
// quickly, with one line on stderr naming the problem, and leave no process
// behind (runCLI checks the process group).
func TestServeRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	config := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A plain listener, without SO_REUSEPORT, holds this port.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() }) // after the parallel subtests
	takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	missing := filepath.Join(dir, "missing.yaml")
	unknownKey := config("unknown-key.yaml", "workers: 1\nwrokers: 2\n")
	badType := config("bad-type.yaml", "workers: many\n")
	badDuration := config("bad-duration.yaml", "idle-timeout: soon\n")
	badYAML := config("bad.yaml", "workers: [1\n")
	notMap := config("list.yaml", "- workers\n- 2\n")
	badAnswers := config("bad-answers.yaml", "answers:\n  \"Who\": \"Me.\"\n")
	badAnswersType := config("answers-type.yaml", "answers: 5\n")
	badValue := config("bad-value.yaml", "workers: 0\n")

	for _, tc := range []struct {
		name string
		args []string
		// names are what the error line must mention (any one of them,
		// case-insensitively).
		names []string
	}{
		// Flags
		{"unknown flag", []string{"--bogus"}, []string{"bogus"}},
		{"zero workers", []string{"--workers", "0"}, []string{"workers"}},
		{"too many workers", []string{"--workers", "2000"}, []string{"workers"}},
		{"workers not a number", []string{"--workers", "many"}, []string{"workers"}},
		{"unknown log format", []string{"--log-format", "xml"}, []string{"log-format"}},
		{"unknown log level", []string{"--log-level", "trace"}, []string{"log-level"}},
		{"bad duration", []string{"--idle-timeout", "5x"}, []string{"idle-timeout"}},
		{"zero duration", []string{"--read-timeout", "0s"}, []string{"read-timeout"}},
		{"zero question bytes", []string{"--max-question-bytes", "0"}, []string{"max-question-bytes"}},
		{"listen without port", []string{"--listen", "127.0.0.1"}, []string{"listen"}},
		{"INTERFACE and --listen", []string{"--listen", "127.0.0.1:" + takenPort, "127.0.0.1"}, []string{"listen", "interface"}},
		{"two INTERFACEs", []string{"127.0.0.1", "127.0.0.2"}, []string{"interface"}},
		// Config file
		{"missing config file", []string{"--config", missing}, []string{missing}},
		{"unknown config key", []string{"--config", unknownKey}, []string{"wrokers"}},
		{"config value of the wrong type", []string{"--config", badType}, []string{"workers"}},
		{"config duration of the wrong type", []string{"--config", badDuration}, []string{"idle-timeout"}},
		{"config invalid value", []string{"--config", badValue}, []string{"workers"}},
		// A flag wins over the file's value, but does not make a bad file
		// good: the file is checked whole.
		{"config value of the wrong type under a flag", []string{"--workers", "1", "--config", badType}, []string{"workers"}},
		{"config duration of the wrong type under a flag", []string{"--idle-timeout", "1s", "--config", badDuration}, []string{"idle-timeout"}},
		{"invalid YAML", []string{"--config", badYAML}, []string{badYAML, "yaml"}},
		{"YAML not a map", []string{"--config", notMap}, []string{notMap, "yaml"}},
		{"metrics without port", []string{"--metrics", "localhost"}, []string{"metrics"}},
		{"metrics port taken", []string{"--metrics", "127.0.0.1:" + takenPort}, []string{"metrics", takenPort}},
		{"invalid answers", []string{"--config", badAnswers}, []string{"answers"}},
		{"answers not a map", []string{"--config", badAnswersType}, []string{"answers"}},
		// Port
		{"port taken by a plain listener", []string{"--workers", "2", "--listen", "127.0.0.1:" + takenPort}, []string{takenPort}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if !hasListen(args) {
				// Never 1060, in case a case wrongly starts serving.
				args = append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(lancelottest.FreePort(t))}, args...)
			}
			args = append([]string{"serve", "--pid-file", filepath.Join(t.TempDir(), "pid")}, args...)
			r := runCLI(t, 5*time.Second, args...)
			checkOneLineError(t, args, r, tc.names)
		})
	}
}

func hasListen(args []string) bool {
	for _, a := range args {
		if a == "--listen" {
			return true
		}
	}
	return false
}

// checkOneLineError checks a failed run: non-zero status within 5 s,
// nothing on stdout, one line on stderr mentioning one of names.
func checkOneLineError(t *testing.T, args []string, r cliResult, names []string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("lancelot %q exited 0, want non-zero; stderr %q", args, r.stderr)
	}
	if r.elapsed > 5*time.Second {
		t.Errorf("lancelot %q took %v to fail", args, r.elapsed)
	}
	if r.stdout != "" {
		t.Errorf("lancelot %q wrote to stdout: %q", args, r.stdout)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("lancelot %q stderr = %q, want exactly one line", args, r.stderr)
	}
	for _, name := range names {
		if strings.Contains(strings.ToLower(line), strings.ToLower(name)) {
			return
		}
	}
	t.Errorf("lancelot %q stderr = %q, want it to name %q", args, line, names)
}

// TestConfigFileFlagsWin: settings come from the config file under their
// flag names; a flag on the command line wins over the file.
func TestConfigFileFlagsWin(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "lancelot.yaml")
	if err := os.WriteFile(cfg, []byte("workers: 3\nmax-question-bytes: 10\nshutdown-timeout: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--workers", "2")
	if w := s.workerPIDs(); len(w) != 2 {
		t.Errorf("workers = %v with --workers 2 over a file saying 3, want 2", w)
	}
	if n := len(listeningInodes(t, s.port)); n != 2 {
		t.Errorf("listening sockets = %d, want 2", n)
	}
	// max-question-bytes: 10 from the file applies: 18 bytes without '?'.
	c := lancelottest.Dial(t, s.addr)
	c.Send("What is your name")
	c.ExpectClosed(5 * time.Second)
}

// TestSampleConfig: the shipped configs/lancelot.yaml is a valid config
// file (flags override its listen address and pid file here).
func TestSampleConfig(t *testing.T) {
	t.Parallel()
	sample, err := filepath.Abs(filepath.Join("..", "..", "configs", "lancelot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", sample, "--workers", "1", "--shutdown-timeout", "1s")
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName + lancelottest.QQuest + lancelottest.QColor)
	c.ExpectAll(lancelottest.AName + lancelottest.AQuest + lancelottest.AColor)
}

func TestAsk(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--workers", "1", "--shutdown-timeout", "1s")
	closedPort := strconv.Itoa(lancelottest.FreePort(t))

	// Success cases
	r := runCLI(t, 10*time.Second, "ask", "--server", s.addr, lancelottest.QName, lancelottest.QQuest, lancelottest.QColor)
	if want := lancelottest.AName + "\n" + lancelottest.AQuest + "\n" + lancelottest.AColor + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("ask three questions: exit %d, stdout %q, stderr %q; want exit 0, stdout %q", r.code, r.stdout, r.stderr, want)
	}
	r = runCLI(t, 10*time.Second, "ask", "--server", s.addr, lancelottest.QColor)
	if r.code != 0 || r.stdout != lancelottest.AColor+"\n" {
		t.Errorf("ask one question: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Failure cases
	for _, tc := range []struct {
		name   string
		args   []string
		stdout string // answers printed before the failure
	}{
		{"unknown question", []string{"--server", s.addr, "What is your age?"}, ""},
		{"unknown after a known one", []string{"--server", s.addr, lancelottest.QName, "What is your age?", lancelottest.QColor}, lancelottest.AName + "\n"},
		{"closed port", []string{"--server", "127.0.0.1:" + closedPort, lancelottest.QName}, ""},
		{"no question", []string{"--server", s.addr}, ""},
		{"question never finished", []string{"--server", s.addr, "--timeout", "300ms", "What is your name"}, ""},
	} {
		args := append([]string{"ask", "--timeout", "5s"}, tc.args...)
		r := runCLI(t, 10*time.Second, args...)
		if r.code == 0 {
			t.Errorf("%s: lancelot %q exited 0, want non-zero", tc.name, args)
		}
		if r.stdout != tc.stdout {
			t.Errorf("%s: stdout = %q, want %q", tc.name, r.stdout, tc.stdout)
		}
		if line := strings.TrimSuffix(r.stderr, "\n"); line == "" || strings.Contains(line, "\n") {
			t.Errorf("%s: stderr = %q, want a one-line message", tc.name, r.stderr)
		}
		if r.elapsed > 5*time.Second {
			t.Errorf("%s: took %v", tc.name, r.elapsed)
		}
	}
	// The server is unharmed.
	if got, err := lancelottest.AskOnce(s.addr, lancelottest.QQuest, 5*time.Second); err != nil || got != lancelottest.AQuest {
		t.Errorf("server after the failed asks: %q, %v", got, err)
	}
}

// TestLogFlags: --log-format json makes every log line, the workers'
// included, a JSON object; --log-level warn hides a normal start and stop.
func TestLogFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		check func(t *testing.T, logs string)
	}{
		{[]string{"--log-format", "json", "--log-level", "debug"}, func(t *testing.T, logs string) {
			lines := strings.Split(strings.TrimSpace(logs), "\n")
			if len(lines) < 4 {
				t.Errorf("only %d log lines at debug level:\n%s", len(lines), logs)
			}
			for _, line := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil || m["level"] == nil {
					t.Errorf("log line %q is not a JSON object with msg and level (%v)", line, err)
				}
			}
		}},
		{[]string{"--log-level", "warn"}, func(t *testing.T, logs string) {
			if strings.Contains(logs, "level=INFO") || strings.Contains(logs, "level=DEBUG") {
				t.Errorf("--log-level warn logged below warn:\n%s", logs)
			}
		}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, append([]string{"--workers", "2", "--shutdown-timeout", "1s"}, tc.args...)...)
			if got, err := lancelottest.AskOnce(s.addr, lancelottest.QName, 5*time.Second); err != nil || got != lancelottest.AName {
				t.Fatalf("ask: %q, %v", got, err)
			}
			s.signal(syscall.SIGTERM)
			if err := s.wait(5 * time.Second); err != nil {
				t.Fatalf("exit after TERM: %v", err)
			}
			tc.check(t, s.logs.String())
		})
	}
}

// TestUnknownCommand: a mistyped command fails with one line too.
func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"srve"}, {"--bogus"}} {
		r := runCLI(t, 10*time.Second, args...)
		checkOneLineError(t, args, r, []string{strings.TrimLeft(args[0], "-")})
	}
	r := runCLI(t, 10*time.Second, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "serve") || !strings.Contains(r.stdout, "ask") {
		t.Errorf("lancelot --help: exit %d, stdout %q; want 0 and the commands", r.code, r.stdout)
	}
}
