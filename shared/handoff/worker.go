package handoff

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/camelot/lancelot/shared/config"
)

// A worker finds its control channel at workerControlFD and its listening
// sockets from workerFirstSocketFD on, in the order of envWorkerSockets.
const (
	workerControlFD     = 3
	workerFirstSocketFD = 4
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
func (w Worker) Command(exe string, env []string) (*exec.Cmd, error) {
	cfg, err := json.Marshal(w.Config)
	if err != nil {
		return nil, fmt.Errorf("encode worker config: %w", err)
	}
	ids := make([]string, len(w.Sockets))
	files := []*os.File{w.Control}
	for i, s := range w.Sockets {
		ids[i] = strconv.Itoa(s.ID)
		files = append(files, s.File)
	}
	cmd := exec.Command("/proc/self/exe", "worker", "--slot", strconv.Itoa(w.Slot))
	cmd.Args[0] = exe
	cmd.ExtraFiles = files // fd 3 = control, fd 4.. = sockets
	cmd.Env = append(workerEnv(env),
		envWorkerConfig+"="+string(cfg),
		envWorkerSockets+"="+strings.Join(ids, ","),
	)
	return cmd, nil
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
	raw, ok := os.LookupEnv(envWorkerConfig)
	if !ok {
		return Worker{}, errors.New("worker: not started by serve (no " + envWorkerConfig + ")")
	}
	var w Worker
	if err := json.Unmarshal([]byte(raw), &w.Config); err != nil {
		return Worker{}, fmt.Errorf("worker: %s: %w", envWorkerConfig, err)
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
