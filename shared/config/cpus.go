package config

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// CPUs is how many CPUs this process may really use, and what set the
// figure: "affinity" (the CPUs it may run on) or "cgroup-quota" (a CPU
// quota on its cgroup that allows fewer).
type CPUs struct {
	N      int
	Source string
}

// AvailableCPUs returns the CPUs this process may use: its affinity mask,
// capped by the CPU quota of the cgroup that holds its cpu controller (and
// of that cgroup's ancestors), rounded up, at least 1. It reads the quota
// itself rather than trust GOMAXPROCS: Go's runtime misses a cgroup v1
// quota on a hybrid host (cpu on v1, an empty cgroup2 tree beside it).
func AvailableCPUs() CPUs {
	return cpusUnder(cgroupFS{proc: "/proc", root: "/"}, runtime.NumCPU())
}

// cgroupFS names where /proc and the mount points it lists are: "/proc"
// and "/" on a real host, a test's directory otherwise.
type cgroupFS struct {
	proc, root string
}

// cpusUnder caps affinity by the quota fs shows for this process.
func cpusUnder(fs cgroupFS, affinity int) CPUs {
	cpus := CPUs{N: max(1, affinity), Source: "affinity"}
	if quota, ok := fs.quota(); ok && quota < cpus.N {
		cpus = CPUs{N: quota, Source: "cgroup-quota"}
	}
	return cpus
}

// quota returns the smallest CPU quota, in whole CPUs rounded up, of the
// cgroups that hold this process's cpu controller, v1 or v2.
func (fs cgroupFS) quota() (int, bool) {
	p, err := procfs.NewFS(fs.proc)
	if err != nil {
		return 0, false
	}
	self, err := p.Self()
	if err != nil {
		return 0, false
	}
	groups, err1 := self.Cgroups()
	mounts, err2 := p.GetMounts()
	if err1 != nil || err2 != nil {
		return 0, false
	}
	best, found := 0, false
	for _, g := range groups {
		v1 := slices.Contains(g.Controllers, "cpu")
		if !v1 && g.HierarchyID != 0 {
			continue
		}
		dir, top, ok := fs.cgroupDir(g.Path, mounts, v1)
		if !ok {
			continue
		}
		if n, ok := quotaUpFrom(dir, top, v1); ok && (!found || n < best) {
			best, found = n, true
		}
	}
	return best, found
}

// cgroupDir finds the directory of cgroup path: under the v1 mount that
// carries the cpu controller, or the cgroup2 mount. top is the mount point,
// where the walk up the tree stops. Of several mounts of one hierarchy
// (bind mounts) the one whose root is the longest prefix of path wins.
func (fs cgroupFS) cgroupDir(path string, mounts []*procfs.MountInfo, v1 bool) (dir, top string, ok bool) {
	bestRoot := -1
	for _, m := range mounts {
		_, cpu := m.SuperOptions["cpu"]
		if v1 && (m.FSType != "cgroup" || !cpu) || !v1 && m.FSType != "cgroup2" {
			continue
		}
		rel, isUnder := strings.CutPrefix(path, strings.TrimSuffix(m.Root, "/"))
		if !isUnder || len(m.Root) <= bestRoot || rel != "" && !strings.HasPrefix(rel, "/") {
			continue
		}
		bestRoot = len(m.Root)
		top = filepath.Join(fs.root, m.MountPoint)
		dir = filepath.Join(top, rel)
	}
	return dir, top, bestRoot >= 0
}

// quotaUpFrom reads the quota of dir and each parent up to top, and
// returns the smallest.
func quotaUpFrom(dir, top string, v1 bool) (int, bool) {
	best, found := 0, false
	for {
		n, ok := readQuota(dir, v1)
		if ok && (!found || n < best) {
			best, found = n, true
		}
		if dir == top || !strings.HasPrefix(dir, top) {
			return best, found
		}
		dir = filepath.Dir(dir)
	}
}

// readQuota reads one cgroup's quota: v1's cpu.cfs_quota_us (-1: none)
// over cpu.cfs_period_us, v2's cpu.max ("max 100000": none).
func readQuota(dir string, v1 bool) (int, bool) {
	var quota, period string
	if v1 {
		quota, period = readTrimmed(filepath.Join(dir, "cpu.cfs_quota_us")), readTrimmed(filepath.Join(dir, "cpu.cfs_period_us"))
	} else {
		quota, period, _ = strings.Cut(readTrimmed(filepath.Join(dir, "cpu.max")), " ")
	}
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, false
	}
	return int(max(1, (q+p-1)/p)), true
}

func readTrimmed(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
