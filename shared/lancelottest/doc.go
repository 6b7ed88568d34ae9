// Package lancelottest provides helpers for tests of Launcelot servers, as
// net/http/httptest does for HTTP: the default table's questions and
// answers, a client that fails the test on a wrong answer, one-shot
// exchanges that report instead (for any goroutine), and the sockets a test
// sets up (free ports, listeners as the supervisor passes them).
//
// It is for tests only: it imports testing, and only _test.go files may
// import it. Every address it dials or binds is on this machine.
//
// Not a public API beyond this module.
package lancelottest
