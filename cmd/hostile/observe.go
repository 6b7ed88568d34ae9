package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procStat is one process of the server's tree at one moment.
type procStat struct {
	Pid    int   `json:"pid"`
	RSSKiB int64 `json:"rss_kib"`
	FDs    int   `json:"fds"`
}

// obsSample is the server's tree at one moment, supervisor first.
type obsSample struct {
	T      int64      `json:"t"` // unix ms
	RSSKiB int64      `json:"rss_kib"`
	Procs  []procStat `json:"procs"`
	// TCPMemPages is the whole machine's TCP buffer memory in pages
	// (/proc/net/sockstat): what stuffed sockets cost outside any RSS.
	TCPMemPages int64 `json:"tcp_mem_pages"`
}

// observeResult is what observe prints: the peaks, the last sample and
// every sample.
type observeResult struct {
	Pid                 int         `json:"pid"`
	MaxRSSKiB           int64       `json:"max_rss_kib"`            // whole tree
	MaxSupervisorRSSKiB int64       `json:"max_supervisor_rss_kib"` // the root process
	MaxFDs              int         `json:"max_fds"`                // in any one process
	MaxSupervisorFDs    int         `json:"max_supervisor_fds"`
	MaxProcs            int         `json:"max_procs"`
	MaxTCPMemPages      int64       `json:"max_tcp_mem_pages"`
	EndRSSKiB           int64       `json:"end_rss_kib"`
	Samples             []obsSample `json:"samples"`
}

// add folds a sample into the result.
func (r *observeResult) add(s obsSample) {
	r.Samples = append(r.Samples, s)
	r.MaxRSSKiB = max(r.MaxRSSKiB, s.RSSKiB)
	r.MaxProcs = max(r.MaxProcs, len(s.Procs))
	r.EndRSSKiB = s.RSSKiB
	r.MaxTCPMemPages = max(r.MaxTCPMemPages, s.TCPMemPages)
	for i, p := range s.Procs {
		r.MaxFDs = max(r.MaxFDs, p.FDs)
		if i == 0 {
			r.MaxSupervisorRSSKiB = max(r.MaxSupervisorRSSKiB, p.RSSKiB)
			r.MaxSupervisorFDs = max(r.MaxSupervisorFDs, p.FDs)
		}
	}
}

// runObserve samples a process tree until its duration ends or a signal.
func runObserve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("observe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pid-file", "", "file holding the supervisor's pid (re-read every sample)")
	pid := fs.Int("pid", 0, "the supervisor's pid (instead of --pid-file)")
	every := fs.Duration("interval", 500*time.Millisecond, "time between samples")
	bound := fs.Duration("duration", 10*time.Minute, "stop after this (or at SIGTERM/SIGINT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*pidFile == "") == (*pid == 0) || *every <= 0 || *bound <= 0 {
		return errors.New("observe: give one of --pid-file and --pid, and a positive --interval and --duration")
	}
	ctx, cancel := context.WithTimeout(ctx, *bound)
	defer cancel()
	res := observeResult{Pid: *pid}
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		if p := currentPid(*pidFile, res.Pid); p > 0 {
			res.Pid = p
			res.add(sampleTree(p))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return writeJSON(stdout, res)
		}
	}
}

// currentPid reads the pid file, or keeps last when there is none (the
// server has not written it yet, or has removed it on its way out).
func currentPid(pidFile string, last int) int {
	if pidFile == "" {
		return last
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return last
	}
	if p, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && p > 0 {
		return p
	}
	return last
}

// sampleTree measures pid and its descendants, pid first.
func sampleTree(pid int) obsSample {
	s := obsSample{T: time.Now().UnixMilli(), TCPMemPages: tcpMemPages()}
	for _, p := range treePids(pid) {
		st, ok := statProc(p)
		if !ok {
			continue // exited meanwhile
		}
		s.Procs = append(s.Procs, st)
		s.RSSKiB += st.RSSKiB
	}
	return s
}

// treePids is pid and all its descendants, parents first.
func treePids(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, childPids(out[i])...)
	}
	return out
}

// childPids lists pid's children from /proc/PID/task/*/children.
func childPids(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// statProc reads one process's RSS and open descriptors; false if it is
// gone.
func statProc(pid int) (procStat, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStat{}, false
	}
	defer f.Close()
	st := procStat{Pid: pid, FDs: countFDs(pid)}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			st.RSSKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return st, true
}

// countFDs counts /proc/PID/fd, in batches: it may hold 20000 entries.
func countFDs(pid int) int {
	d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(4096)
		n += len(names)
		if err != nil {
			return n
		}
	}
}

// tcpMemPages reads the TCP line's "mem" field of /proc/net/sockstat;
// 0 if it cannot.
func tcpMemPages() int64 {
	data, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	return sockstatTCPMem(string(data))
}

// sockstatTCPMem finds "mem N" on the "TCP:" line of a sockstat text.
func sockstatTCPMem(text string) int64 {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				return n
			}
		}
	}
	return 0
}
