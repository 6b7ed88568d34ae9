package main

import (
	"context"
	"io"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// runChild is a child process: it runs the share its parent sends until
// the share's end time or stdin's EOF, and reports its tally (loadgen's
// child protocol: ready once every slot has tried its first connection,
// then the tally).
func runChild(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	return loadgen.ServeShare(ctx, stdin, stdout, serveShare)
}

func serveShare(ctx context.Context, sh share, p *loadgen.Parent[wireTally]) (wireTally, error) {
	ctx, cancel := context.WithDeadline(ctx, sh.Until)
	defer cancel()
	t := newTally()
	runShare(ctx, sh, t, func() { p.Ready(t.openNow()) }) // a lost parent shows at the end
	return t.wire(), nil
}

// runShare runs one share until ctx is done (or a badq quota is made).
func runShare(ctx context.Context, sh share, t *tally, ready func()) {
	spec, _ := lookupAttack(sh.Config.Mode) // checked by the parent
	if spec.churn {
		newChurner(sh, t).run(ctx, ready)
		return
	}
	newHolder(sh, spec.behave, t).run(ctx, ready)
}
