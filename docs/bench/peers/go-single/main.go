// Command go-single is a reference Launcelot server: what a Go user writes
// first. It is in this repository so that the benchmarks show what lancelot's
// design buys over the obvious Go program.
//
// The model: one process, net.Listen, a goroutine per connection, bufio with
// small (256-byte) buffers. Whitespace (space, tab, CR, LF) before a question
// is skipped and a question ends at '?'; pipelined questions are answered in
// order and flushed together, once no complete question is left in the read
// buffer. An unknown question gets the earlier answers, then the connection is
// closed; so does a question longer than the read buffer. Only the standard
// library is used, and there is no package-level state.
//
// Usage:
//
//	go-single HOST PORT [WORKERS]
//
// WORKERS is accepted for a command line common to all the reference servers
// and ignored: go-single is one process.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"time"
)

const bufSize = 256

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "go-single: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 || len(args) > 3 {
		return errors.New("usage: go-single HOST PORT [WORKERS]")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	log.Printf("listening on %s", ln.Addr())
	return serve(ln)
}

// serve accepts until the listener fails for good. Transient errors such as
// running out of file descriptors are retried after a pause that doubles from
// 5 ms up to 1 s, as net/http does.
func serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Printf("accept: %v; retrying in %v", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go handle(c)
	}
}

// handle serves one connection until it closes or asks an unknown question.
func handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, bufSize)
	w := bufio.NewWriterSize(c, bufSize)
	for {
		q, err := r.ReadSlice('?')
		if err != nil { // EOF, or bufio.ErrBufferFull for an over-long question
			return
		}
		a, ok := answer(bytes.TrimLeft(q, " \t\r\n"))
		if !ok {
			w.Flush()
			return
		}
		w.WriteString(a)
		// Flush unless another complete question is already buffered: the
		// answers to pipelined questions go out together, and nothing waits.
		if next, _ := r.Peek(r.Buffered()); bytes.IndexByte(next, '?') < 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

// answer looks a question up in the protocol's table.
func answer(q []byte) (string, bool) {
	switch string(q) {
	case "What is your name?":
		return "My name is Sir Lancelot of Camelot.", true
	case "What is your quest?":
		return "To seek the Holy Grail.", true
	case "What is your favorite color?":
		return "Blue.", true
	}
	return "", false
}
