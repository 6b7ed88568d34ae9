package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// The child protocol, one JSON value per line. The parent writes the share
// (a JSON object), may later write the line "go", and closes stdin to stop
// the child. The child writes a ChildMessage with Ready once its setup is
// done, and last one with its Result or its Error.
const goLine = "go\n"

// ChildMessage is one line a child process writes to its parent; R is
// what the child reports at the end.
type ChildMessage[R any] struct {
	// Ready says the child's setup is done; it then held Open connections.
	Ready bool  `json:"ready,omitempty"`
	Open  int64 `json:"open,omitempty"`
	// Result, or else Error, is the child's last message.
	Result *R     `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (m ChildMessage[R]) final() bool { return m.Result != nil || m.Error != "" }

// child is one child process running a share.
type child[R any] struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	msgs   chan ChildMessage[R] // closed after the final message or at EOF
	stderr *tail
}

// startChild starts args as a child and sends it its share. Its stderr
// goes to stderr too, when that is not nil.
func startChild[R any](args []string, sh any, stderr io.Writer) (*child[R], error) {
	cmd := exec.Command(args[0], args[1:]...)
	childAttr(cmd)
	c := &child[R]{cmd: cmd, msgs: make(chan ChildMessage[R], 2), stderr: &tail{}}
	cmd.Stderr = c.stderr
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(c.stderr, stderr)
	}
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
		return nil, fmt.Errorf("send share to child %d: %w", cmd.Process.Pid, err)
	}
	return c, nil
}

// pump turns the child's stdout into messages until the final one.
func (c *child[R]) pump(out io.Reader) {
	defer close(c.msgs)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // an encoded histogram is a few KB
	for sc.Scan() {
		var m ChildMessage[R]
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = ChildMessage[R]{Error: fmt.Sprintf("bad message %.80q: %v", sc.Text(), err)}
		}
		c.msgs <- m
		if m.final() {
			return
		}
	}
}

// next waits for the child's next message.
func (c *child[R]) next(ctx context.Context) (ChildMessage[R], error) {
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
		return ChildMessage[R]{}, fmt.Errorf("child %d: %w", c.cmd.Process.Pid, ctx.Err())
	}
}

// result waits for the child's result, past a late ready message.
func (c *child[R]) result(ctx context.Context, merge func(*R) error) error {
	for {
		m, err := c.next(ctx)
		switch {
		case err != nil:
			return err
		case m.Result != nil:
			return merge(m.Result)
		}
	}
}

// close stops the child (by SIGKILL if it has not finished), and reaps it.
func (c *child[R]) close() {
	c.in.Close()
	c.cmd.Process.Kill() // harmless once it has exited
	for range c.msgs {
	}
	c.cmd.Wait()
}

// Children are the child processes running the shares of a load that
// this process cannot hold; R is what each reports at the end.
type Children[R any] []*child[R]

// StartChildren starts one child per share, each running args (program
// first, a program whose child mode calls ServeShare), and sends it its
// share. The children's stderr also goes to stderr, when that is not nil;
// its last lines go into error messages either way.
func StartChildren[R, S any](args []string, shares []S, stderr io.Writer) (Children[R], error) {
	var cs Children[R]
	for _, sh := range shares {
		c, err := startChild[R](args, sh, stderr)
		if err != nil {
			cs.Close()
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// Ready waits until every child has reported its setup done (or ctx ends)
// and returns the connections they then held.
func (cs Children[R]) Ready(ctx context.Context) (int64, error) {
	var open int64
	var errs []error
	for _, c := range cs {
		m, err := c.next(ctx)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !m.Ready:
			errs = append(errs, fmt.Errorf("child %d: expected ready", c.cmd.Process.Pid))
		}
		open += m.Open
	}
	return open, errors.Join(errs...)
}

// Start sends every child the "go" its Parent.Started waits for.
func (cs Children[R]) Start() {
	for _, c := range cs {
		io.WriteString(c.in, goLine) // a dead child shows up in Results
	}
}

// Stop asks every child to stop: EOF on its stdin.
func (cs Children[R]) Stop() {
	for _, c := range cs {
		c.in.Close() // closing twice is harmless: exec guards it with a sync.Once
	}
}

// Results passes every child's result to merge. Children may end on their
// own; when ctx ends they are asked to Stop, and one that has not reported
// within grace of that is given up (Close kills it).
func (cs Children[R]) Results(ctx context.Context, grace time.Duration, merge func(*R) error) error {
	wait, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-wait.Done():
			return
		}
		cs.Stop()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-wait.Done():
		}
	}()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.result(wait, merge))
	}
	return errors.Join(errs...)
}

// Close kills the children still running and reaps them all.
func (cs Children[R]) Close() {
	for _, c := range cs {
		c.close()
	}
}
