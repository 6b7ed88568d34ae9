package main

import (
	"errors"
	"fmt"
	"strings"
)

// Exit statuses (docs/reference.md, "Errors and exit status").
const (
	exitFailure    = 1 // every error that is not one of those below
	exitUsage      = 2 // the command line is wrong: nothing was done
	exitNotRunning = 3 // reload, upgrade, status: no supervisor runs
)

// exitError gives an error an exit status other than exitFailure. It has
// no ExitCode method on purpose: urfave/cli would print and exit itself.
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is an error in the command line (exit status 2).
func usageErrorf(format string, a ...any) error {
	return &exitError{status: exitUsage, err: fmt.Errorf(format, a...)}
}

// notRunningf is the error of a command that found no supervisor running
// (exit status 3).
func notRunningf(format string, a ...any) error {
	return &exitError{status: exitNotRunning, err: fmt.Errorf(format, a...)}
}

// exitStatus is the status main exits with for err.
func exitStatus(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.status
	}
	return exitFailure
}

// doubleDash names flags as the help and the docs do: package flag says
// "flag needs an argument: -workers", lancelot says --workers. A word of
// one dash and one letter (bench's -c) is a short flag and stays.
func doubleDash(s string) string {
	words := strings.Split(s, " ")
	for i, w := range words {
		if len(w) > 2 && w[0] == '-' && isLetter(w[1]) && isLetter(w[2]) {
			words[i] = "-" + w
		}
	}
	return strings.Join(words, " ")
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
