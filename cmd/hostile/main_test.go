package main

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// runAttack re-executes its own binary as "hostile child": under test,
	// this binary. The child reports its errors to its parent.
	if len(os.Args) > 1 && os.Args[1] == childMode {
		if runChild(context.Background(), os.Stdin, os.Stdout) != nil {
			os.Exit(1)
		}
		return
	}
	goleak.VerifyTestMain(m)
}
