package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The child protocol, one JSON value per line. The parent writes the share
// (a JSON object), later the line "go", and closes stdin to stop the child.
// The child writes {"ready":true} once its setup is done, and at the end one
// {"tally":...} or {"error":"..."}.
const goLine = "go\n"

// childMsg is one line a child writes.
type childMsg struct {
	Ready bool       `json:"ready,omitempty"`
	Tally *wireTally `json:"tally,omitempty"`
	Error string     `json:"error,omitempty"`
}

func (m childMsg) final() bool { return m.Tally != nil || m.Error != "" }

// child is one child process running a share.
type child struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	msgs   chan childMsg // closed after the final message or at EOF
	stderr *tail
}

// startChild starts args as a child and sends it its share.
func startChild(args []string, sh share) (*child, error) {
	cmd := exec.Command(args[0], args[1:]...)
	childAttr(cmd)
	c := &child{cmd: cmd, msgs: make(chan childMsg, 2), stderr: &tail{}}
	cmd.Stderr = c.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child %s: %w", args[0], err)
	}
	c.in = in
	go c.pump(out)
	if err := json.NewEncoder(in).Encode(sh); err != nil {
		c.close()
		return nil, fmt.Errorf("send share to child: %w", err)
	}
	return c, nil
}

// pump turns the child's stdout into messages until the final one.
func (c *child) pump(out io.Reader) {
	defer close(c.msgs)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // an encoded histogram is a few KB
	for sc.Scan() {
		var m childMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = childMsg{Error: fmt.Sprintf("bad message %.80q: %v", sc.Text(), err)}
		}
		c.msgs <- m
		if m.final() {
			return
		}
	}
}

// next waits for the child's next message.
func (c *child) next(ctx context.Context) (childMsg, error) {
	select {
	case m, ok := <-c.msgs:
		switch {
		case !ok:
			return m, fmt.Errorf("child %d ended without a result: %s", c.cmd.Process.Pid, c.stderr)
		case m.Error != "":
			return m, fmt.Errorf("child %d: %s", c.cmd.Process.Pid, m.Error)
		}
		return m, nil
	case <-ctx.Done():
		return childMsg{}, fmt.Errorf("child %d: %w", c.cmd.Process.Pid, ctx.Err())
	}
}

// close stops the child (by SIGKILL if it has not finished), and reaps it.
func (c *child) close() {
	c.in.Close()
	c.cmd.Process.Kill() // harmless once it has exited
	for range c.msgs {
	}
	c.cmd.Wait()
}

// children are the processes running the shares this one cannot hold.
type children []*child

func startChildren(args []string, shares []share) (children, error) {
	var cs children
	for _, sh := range shares {
		c, err := startChild(args, sh)
		if err != nil {
			cs.close()
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// ready waits until every child has opened its share.
func (cs children) ready(ctx context.Context) error {
	var errs []error
	for _, c := range cs {
		if m, err := c.next(ctx); err != nil {
			errs = append(errs, err)
		} else if !m.Ready {
			errs = append(errs, fmt.Errorf("child %d: expected ready", c.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
}

// start begins every child's timed phase.
func (cs children) start() {
	for _, c := range cs {
		io.WriteString(c.in, goLine) // a dead child shows up in results
	}
}

// results stops every child, then merges each one's tally into t. A child
// that has not reported within grace is killed.
func (cs children) results(t *tally, grace time.Duration) error {
	for _, c := range cs {
		c.in.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.result(ctx, t))
		c.close()
	}
	return errors.Join(errs...)
}

func (c *child) result(ctx context.Context, t *tally) error {
	m, err := c.next(ctx)
	if err != nil {
		return err
	}
	if m.Tally == nil {
		return fmt.Errorf("child %d: expected a tally", c.cmd.Process.Pid)
	}
	ct, err := m.Tally.unwire()
	if err != nil {
		return fmt.Errorf("child %d: %w", c.cmd.Process.Pid, err)
	}
	t.add(&ct)
	return nil
}

func (cs children) close() {
	for _, c := range cs {
		c.close()
	}
}

// tail keeps the last bytes a child wrote on stderr, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = t.buf[len(t.buf)-tailMax:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
