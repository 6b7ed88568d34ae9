package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseAttack(t *testing.T) {
	for _, tc := range []struct {
		mode string
		args []string
		want func(attackConfig) bool
	}{
		// Success cases: each mode's defaults, and flags over them.
		{"silent", nil, func(c attackConfig) bool {
			return c.Count == 1000 && c.Reconnect && c.Server == defaultServer && c.PerProcess == defaultPerProcess
		}},
		{"nul", nil, func(c attackConfig) bool { return !c.Reconnect && c.Payload == 64 }},
		{"badq", []string{"--count", "200000", "--concurrency", "8"}, func(c attackConfig) bool {
			return c.Count == 200000 && c.Concurrency == 8 && c.Sources == 8 && c.Question == unknownQuestion
		}},
		{"trickle", []string{"--interval", "2s", "--server", "127.0.0.3:9"}, func(c attackConfig) bool {
			return c.Interval == 2*time.Second && c.Server == "127.0.0.3:9" && !strings.Contains(c.Question, "x")
		}},
		{"metrics-idle", []string{"--variant", "silent"}, func(c attackConfig) bool { return c.Variant == "silent" }},
		{"metrics-bigheader", nil, func(c attackConfig) bool {
			return c.HeaderBytes == 1<<20-1024 && c.Chunk == 64<<10 && c.ChunkEvery == 100*time.Millisecond
		}},
		{"proxyv2", []string{"--addresses", "--reconnect"}, func(c attackConfig) bool { return c.Addresses && c.Reconnect }},
	} {
		got, err := parseAttack(tc.mode, tc.args, io.Discard)
		if err != nil {
			t.Errorf("parseAttack(%q, %q): %v", tc.mode, tc.args, err)
			continue
		}
		if !tc.want(got) {
			t.Errorf("parseAttack(%q, %q) = %+v", tc.mode, tc.args, got)
		}
	}
}

func TestParseAttackRejects(t *testing.T) {
	for _, tc := range []struct {
		mode string
		args []string
	}{
		// Failure cases: anything off 127.0.0.0/8, bad numbers, bad modes.
		{"silent", []string{"--server", "10.0.0.1:1060"}},
		{"silent", []string{"--server", "[::1]:1060"}},
		{"silent", []string{"--server", "example.com:1060"}},
		{"silent", []string{"--count", "0"}},
		{"silent", []string{"--duration", "-1s"}},
		{"silent", []string{"--sources", "255"}},
		{"silent", []string{"--per-process", "0"}},
		{"silent", []string{"extra"}},
		{"silent", []string{"--interval", "1s"}}, // trickle's flag only
		{"badq", []string{"--concurrency", "0"}},
		{"trickle", []string{"--interval", "0s"}},
		{"metrics-idle", []string{"--variant", "post"}},
		{"metrics-bigheader", []string{"--header-bytes", "10"}},
		{"flood", nil},
	} {
		if got, err := parseAttack(tc.mode, tc.args, io.Discard); err == nil {
			t.Errorf("parseAttack(%q, %q) = %+v, want an error", tc.mode, tc.args, got)
		}
	}
}

func TestParseGood(t *testing.T) {
	cfg, err := parseGood([]string{"--persistent", "--interval", "5ms", "--count", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Persistent || cfg.Interval != 5*time.Millisecond || cfg.Count != 3 || cfg.Timeout != 2*time.Second ||
		cfg.Answer != nameAnswer {
		t.Errorf("parseGood = %+v", cfg)
	}
	for _, args := range [][]string{{"--server", "192.168.1.1:1060"}, {"--interval", "0s"}, {"--count", "-1"}} {
		if _, err := parseGood(args, io.Discard); err == nil {
			t.Errorf("parseGood(%q): want an error", args)
		}
	}
}

func TestRunUnknownMode(t *testing.T) {
	if err := run(t.Context(), []string{"flood"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("run(flood): want an error")
	}
	if err := run(t.Context(), []string{"-h"}, nil, io.Discard, io.Discard); err != nil {
		t.Errorf("run(-h) = %v, want nil", err)
	}
}
