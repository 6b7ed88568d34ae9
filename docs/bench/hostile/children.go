package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// kid is one child process running a share.
type kid struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	msgs chan childMsg // closed after the final message, or at EOF
}

// startKid starts exe as a child and sends it its share.
func startKid(exe string, sh share, stderr io.Writer) (*kid, error) {
	cmd := exec.Command(exe, childMode)
	cmd.Stderr = stderr
	// The child dies with this process even if the stdin EOF that
	// normally stops it never comes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	k := &kid{cmd: cmd, in: in, msgs: make(chan childMsg, 2)}
	go k.pump(out)
	if err := json.NewEncoder(in).Encode(sh); err != nil {
		k.close()
		return nil, fmt.Errorf("send share to child %d: %w", cmd.Process.Pid, err)
	}
	return k, nil
}

// pump turns the child's stdout into messages until the final one.
func (k *kid) pump(out io.Reader) {
	defer close(k.msgs)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // an encoded histogram is a few KB
	for sc.Scan() {
		var m childMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = childMsg{Error: fmt.Sprintf("bad message %.80q: %v", sc.Text(), err)}
		}
		k.msgs <- m
		if m.Result != nil || m.Error != "" {
			return
		}
	}
}

// next waits for the child's next message.
func (k *kid) next(ctx context.Context) (childMsg, error) {
	select {
	case m, ok := <-k.msgs:
		switch {
		case !ok:
			return m, fmt.Errorf("child %d ended without a result", k.cmd.Process.Pid)
		case m.Error != "":
			return m, fmt.Errorf("child %d: %s", k.cmd.Process.Pid, m.Error)
		}
		return m, nil
	case <-ctx.Done():
		return childMsg{}, fmt.Errorf("child %d: %w", k.cmd.Process.Pid, ctx.Err())
	}
}

// close stops the child (SIGKILL if it has not finished) and reaps it.
func (k *kid) close() {
	k.in.Close()
	k.cmd.Process.Kill() // harmless once it has exited
	for range k.msgs {
	}
	k.cmd.Wait()
}

// kids are the child processes of one attack.
type kids []*kid

func startChildren(exe string, shares []share, stderr io.Writer) (kids, error) {
	var ks kids
	for _, sh := range shares {
		k, err := startKid(exe, sh, stderr)
		if err != nil {
			ks.close()
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// ready waits until every child has tried its connections (or ctx ends)
// and returns how many they hold.
func (ks kids) ready(ctx context.Context) (int64, error) {
	var open int64
	var errs []error
	for _, k := range ks {
		m, err := k.next(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("setup: %w", err))
			continue
		}
		open += m.Open
	}
	return open, errors.Join(errs...)
}

// results waits for every child's tally and merges it into t. The
// children end on their own at the attack's end, or sooner (a badq quota
// made); when ctx ends first they are asked to stop, and one that has not
// reported within grace of ctx's deadline is given up (and later killed).
func (ks kids) results(ctx context.Context, t *tally, grace time.Duration) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			ks.stop()
		case <-done:
		}
	}()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now()
	}
	wait, cancel := context.WithDeadline(context.Background(), dl.Add(grace))
	defer cancel()
	var errs []error
	for _, k := range ks {
		errs = append(errs, k.result(wait, t))
	}
	return errors.Join(errs...)
}

// stop asks every child to stop: EOF on its stdin.
func (ks kids) stop() {
	for _, k := range ks {
		k.in.Close() // closing twice is harmless: exec guards it with a sync.Once
	}
}

func (k *kid) result(ctx context.Context, t *tally) error {
	for {
		m, err := k.next(ctx)
		switch {
		case err != nil:
			return err
		case m.Result != nil:
			return t.merge(*m.Result)
		}
		// A late ready message: the child was still setting up.
	}
}

func (ks kids) close() {
	for _, k := range ks {
		k.close()
	}
}
