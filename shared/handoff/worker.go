package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/config"
)

// A worker finds its control channel at workerControlFD, its configuration
// (JSON, in a sealed memfd) at workerConfigFD and its listening sockets from
// workerFirstSocketFD on, in the order of envWorkerSockets. The
// configuration travels in a descriptor, not in the environment, because
// Linux caps one environment string at 128 KiB, which an answers table
// passes easily.
const (
	workerControlFD     = 3
	workerConfigFD      = 4
	workerFirstSocketFD = 5
	envWorkerConfig     = "LANCELOT_WORKER_CONFIG"
	envWorkerSockets    = "LANCELOT_WORKER_SOCKETS"
)

// Socket is a listening socket and the supervisor's id for it, which the
// control channel's lend and reclaim messages name.
type Socket struct {
	ID   int
	File *os.File
}

// Worker is what a worker process starts with.
type Worker struct {
	// Slot is the worker's position, shown in its command line
	// (`lancelot worker --slot N`) and parsed there by the worker command.
	Slot    int
	Config  config.Config
	Control *os.File // the worker's end of the control channel
	Sockets []Socket
}

// Command returns the command that starts w: the running binary
// (/proc/self/exe, so workers never run a different version than their
// supervisor, even after a new one was installed) as `worker`, with argv[0]
// the binary's path so that `ps -f` shows what runs. env is filtered of the
// variables that must reach the supervisor only.
//
// The caller closes the command's ExtraFiles[1] (the configuration) once
// the command started, as it does its own copies of the others.
func (w Worker) Command(exe string, env []string) (*exec.Cmd, error) {
	cfg, err := configFile(w.Config)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(w.Sockets))
	files := []*os.File{w.Control, cfg}
	for i, s := range w.Sockets {
		ids[i] = strconv.Itoa(s.ID)
		files = append(files, s.File)
	}
	cmd := exec.Command("/proc/self/exe", "worker", "--slot", strconv.Itoa(w.Slot))
	cmd.Args[0] = exe
	cmd.ExtraFiles = files // fd 3 = control, fd 4 = configuration, fd 5.. = sockets
	cmd.Env = append(workerEnv(env),
		envWorkerConfig+"="+strconv.Itoa(workerConfigFD),
		envWorkerSockets+"="+strings.Join(ids, ","),
	)
	return cmd, nil
}

// configFile writes cfg (see encodeConfig) into a memfd, sealed so the
// worker reads exactly what was written, and rewound for it to read from
// the start.
func configFile(cfg config.Config) (*os.File, error) {
	b, err := encodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("lancelot-worker-config", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("worker config: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "worker-config")
	_, err = f.Write(b)
	if err == nil {
		_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("worker config: %w", err)
	}
	return f, nil
}

// workerEnv drops what must reach the supervisor only: systemd's variables
// (every notification comes from the supervisor) and the handoffs' own.
// Other LANCELOT_ variables pass through.
func workerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if hasAnyPrefix(kv, "NOTIFY_SOCKET=", "LISTEN_", "WATCHDOG_", "LANCELOT_UPGRADE_", "LANCELOT_WORKER_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ReadWorker decodes, in the worker process, what Command encoded (all but
// Slot, which the command line carries). It unsets the variables it read,
// so nothing the worker starts inherits them.
func ReadWorker() (Worker, error) {
	if _, ok := os.LookupEnv(envWorkerConfig); !ok {
		return Worker{}, errors.New("worker: not started by serve (no " + envWorkerConfig + ")")
	}
	var w Worker
	f := os.NewFile(workerConfigFD, "worker-config")
	b, err := io.ReadAll(f)
	f.Close()
	if err == nil {
		w.Config, err = decodeConfig(b)
	}
	if err != nil {
		return Worker{}, fmt.Errorf("worker: configuration (fd %d): %w", workerConfigFD, err)
	}
	ids, err := parseIDs(os.Getenv(envWorkerSockets))
	if err != nil {
		return Worker{}, fmt.Errorf("worker: %s: %w", envWorkerSockets, err)
	}
	w.Control = os.NewFile(workerControlFD, "control")
	for i, id := range ids {
		w.Sockets = append(w.Sockets, Socket{ID: id, File: os.NewFile(uintptr(workerFirstSocketFD+i), "listener")})
	}
	os.Unsetenv(envWorkerConfig)
	os.Unsetenv(envWorkerSockets)
	return w, nil
}

func parseIDs(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("no listening sockets passed")
	}
	var ids []int
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.Atoi(f)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("socket id %q", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// encodeConfig is the configuration as a worker reads it: the settings as
// one line of JSON, then, when there is an answers table, each question and
// its answer, each ended by a NUL (neither can hold one: both are printable
// ASCII). JSON for a table of 100,000 entries took half a second to write
// (encoding/json sorts map keys) and as long to read; this, a few
// milliseconds.
func encodeConfig(cfg config.Config) ([]byte, error) {
	answers := cfg.Answers
	cfg.Answers = nil
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode worker config: %w", err)
	}
	b = append(b, '\n')
	for q, a := range answers {
		b = append(append(append(append(b, q...), 0), a...), 0)
	}
	return b, nil
}

// decodeConfig reads what encodeConfig wrote.
func decodeConfig(b []byte) (config.Config, error) {
	var cfg config.Config
	settings, table, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return cfg, errors.New("no end to the settings")
	}
	if err := json.Unmarshal(settings, &cfg); err != nil {
		return cfg, err
	}
	if len(table) == 0 {
		return cfg, nil
	}
	fields := bytes.Split(table, []byte{0})
	if len(fields)%2 != 1 || len(fields[len(fields)-1]) != 0 {
		return cfg, errors.New("the answers table is cut short")
	}
	cfg.Answers = make(map[string]string, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		cfg.Answers[string(fields[i])] = string(fields[i+1])
	}
	return cfg, nil
}
