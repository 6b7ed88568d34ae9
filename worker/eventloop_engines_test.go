package worker_test

import "github.com/camelot/lancelot/worker"

// The event loop joins the engine suite (engines_test.go) a second time
// with three loops accepting on each listener: on a small machine
// NewEventLoop starts one loop only, and every test should also pass when
// connections are spread over several.
func init() {
	testEngines["eventloop-3loops"] = func(o worker.Options) worker.Engine { return worker.NewEventLoopN(o, 3) }
}
