package worker_test

import "github.com/camelot/lancelot/worker"

// testEngines are the engines every test in server_test.go runs against.
// A new engine joins the suite by adding its constructor here.
var testEngines = map[string]func(worker.Options) worker.Engine{
	"goroutine": func(o worker.Options) worker.Engine { return worker.New(o) },
	"eventloop": func(o worker.Options) worker.Engine { return worker.NewEventLoop(o) },
}
