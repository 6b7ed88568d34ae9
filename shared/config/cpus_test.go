package config

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A process's cgroup files as a host shows them: /proc/self/cgroup, the
// cgroup mounts of /proc/self/mountinfo, and the quota files under the
// mount points, all below a test directory.
type cgroupTree struct {
	cgroup string            // /proc/self/cgroup
	mounts []string          // "ROOT MOUNTPOINT FSTYPE SUPEROPTIONS"
	files  map[string]string // path below the root -> content
}

func (tree cgroupTree) write(t *testing.T) cgroupFS {
	t.Helper()
	dir := t.TempDir()
	fs := cgroupFS{proc: filepath.Join(dir, "proc"), root: dir}
	var info strings.Builder
	for i, m := range tree.mounts {
		f := strings.Fields(m)
		info.WriteString(strings.Join([]string{strconv.Itoa(30 + i), "22", "0:" + strconv.Itoa(27+i), f[0], f[1], "rw,relatime", "-", f[2], f[2], f[3]}, " ") + "\n")
	}
	// procfs finds "self" by its link, as on a real /proc.
	files := map[string]string{"proc/1/cgroup": tree.cgroup, "proc/1/mountinfo": info.String()}
	for p, c := range tree.files {
		files[p] = c
	}
	for p, c := range files {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("1", filepath.Join(fs.proc, "self")); err != nil {
		t.Fatal(err)
	}
	return fs
}

// hybrid is this kind of host: cpu on cgroup v1, an empty cgroup2 beside.
const hybridCgroup = "4:memory:/\n1:cpu:/svc/app\n0::/\n"

var hybridMounts = []string{"/ /sys/fs/cgroup/cpu cgroup rw,cpu", "/ /sys/fs/cgroup/memory cgroup rw,memory", "/ /sys/fs/cgroup/unified cgroup2 rw"}

func TestCPUsUnder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tree     cgroupTree
		affinity int
		want     CPUs
	}{
		// A quota that caps the affinity mask.
		{"v1 quota of one CPU", cgroupTree{hybridCgroup, hybridMounts, map[string]string{
			"sys/fs/cgroup/cpu/svc/app/cpu.cfs_quota_us": "100000\n", "sys/fs/cgroup/cpu/svc/app/cpu.cfs_period_us": "100000\n"}},
			64, CPUs{1, "cgroup-quota"}},
		{"v1 quota of 1.5 CPUs rounds up", cgroupTree{hybridCgroup, hybridMounts, map[string]string{
			"sys/fs/cgroup/cpu/svc/app/cpu.cfs_quota_us": "150000", "sys/fs/cgroup/cpu/svc/app/cpu.cfs_period_us": "100000"}},
			64, CPUs{2, "cgroup-quota"}},
		{"v1 quota on an ancestor", cgroupTree{hybridCgroup, hybridMounts, map[string]string{
			"sys/fs/cgroup/cpu/svc/app/cpu.cfs_quota_us": "-1", "sys/fs/cgroup/cpu/svc/app/cpu.cfs_period_us": "100000",
			"sys/fs/cgroup/cpu/svc/cpu.cfs_quota_us": "300000", "sys/fs/cgroup/cpu/svc/cpu.cfs_period_us": "100000"}},
			8, CPUs{3, "cgroup-quota"}},
		{"v1 cpu,cpuacct mounted together", cgroupTree{"3:cpu,cpuacct:/app\n", []string{"/ /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct"}, map[string]string{
			"sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us": "50000", "sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us": "100000"}},
			4, CPUs{1, "cgroup-quota"}},
		{"v2 cpu.max", cgroupTree{"0::/app.slice/lancelot.service\n", []string{"/ /sys/fs/cgroup cgroup2 rw"}, map[string]string{
			"sys/fs/cgroup/app.slice/lancelot.service/cpu.max": "200000 100000\n"}},
			16, CPUs{2, "cgroup-quota"}},
		{"v2 in a cgroup namespace (the mount's root is the path)", cgroupTree{"0::/\n", []string{"/ /sys/fs/cgroup cgroup2 rw"}, map[string]string{
			"sys/fs/cgroup/cpu.max": "100000 100000\n"}},
			16, CPUs{1, "cgroup-quota"}},
		{"v1 bind mount of a sub-tree", cgroupTree{"1:cpu:/docker/abc\n", []string{"/docker/abc /sys/fs/cgroup/cpu cgroup rw,cpu"}, map[string]string{
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"}},
			4, CPUs{1, "cgroup-quota"}},
		// No quota, or one that allows more than the mask.
		{"v1 no quota", cgroupTree{hybridCgroup, hybridMounts, map[string]string{
			"sys/fs/cgroup/cpu/svc/app/cpu.cfs_quota_us": "-1", "sys/fs/cgroup/cpu/svc/app/cpu.cfs_period_us": "100000"}},
			2, CPUs{2, "affinity"}},
		{"v2 max", cgroupTree{"0::/app\n", []string{"/ /sys/fs/cgroup cgroup2 rw"}, map[string]string{
			"sys/fs/cgroup/app/cpu.max": "max 100000\n"}},
			2, CPUs{2, "affinity"}},
		{"quota above the mask", cgroupTree{hybridCgroup, hybridMounts, map[string]string{
			"sys/fs/cgroup/cpu/svc/app/cpu.cfs_quota_us": "400000", "sys/fs/cgroup/cpu/svc/app/cpu.cfs_period_us": "100000"}},
			2, CPUs{2, "affinity"}},
		{"v2 without the cpu controller (no cpu.max)", cgroupTree{hybridCgroup, hybridMounts, nil}, 2, CPUs{2, "affinity"}},
		{"no cgroups at all", cgroupTree{"", nil, nil}, 3, CPUs{3, "affinity"}},
		{"an affinity of zero still gives one", cgroupTree{"", nil, nil}, 0, CPUs{1, "affinity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpusUnder(tc.tree.write(t), tc.affinity); got != tc.want {
				t.Errorf("cpusUnder(affinity %d) = %+v, want %+v", tc.affinity, got, tc.want)
			}
		})
	}
}

// TestAvailableCPUsHere: on the real host the figure is the affinity mask
// (from /proc/self/status, not sched_getaffinity) capped by the cgroup
// quota, both read here another way: the cgroup paths of
// /proc/self/cgroup under the mount points of /proc/self/mounts, each
// quota file from there up to the mount point.
func TestAvailableCPUsHere(t *testing.T) {
	want := CPUs{N: affinityFromStatus(t), Source: "affinity"}
	if q, ok := quotaFromMounts(t); ok && q < want.N {
		want = CPUs{N: q, Source: "cgroup-quota"}
	}
	if got := AvailableCPUs(); got != want {
		t.Errorf("AvailableCPUs() = %+v, want %+v", got, want)
	}
}

// affinityFromStatus counts the CPUs of Cpus_allowed_list ("0-3,6").
func affinityFromStatus(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		list, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		n := 0
		for _, part := range strings.Split(strings.TrimSpace(list), ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			z, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				t.Fatalf("Cpus_allowed_list %q", list)
			}
			n += z - a + 1
		}
		return n
	}
	t.Fatal("no Cpus_allowed_list in /proc/self/status")
	return 0
}

// quotaFromMounts is the smallest quota, in CPUs rounded up, along this
// process's cpu cgroup (v1) and its cgroup2 path.
func quotaFromMounts(t *testing.T) (int, bool) {
	groups, err := os.ReadFile("/proc/self/cgroup")
	mounts, err2 := os.ReadFile("/proc/self/mounts")
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	best, found := 0, false
	for _, line := range strings.Split(strings.TrimSpace(string(groups)), "\n") {
		f := strings.SplitN(line, ":", 3)
		v1 := slices.Contains(strings.Split(f[1], ","), "cpu")
		if len(f) != 3 || !v1 && f[0] != "0" {
			continue
		}
		for _, m := range strings.Split(string(mounts), "\n") {
			mf := strings.Fields(m)
			if len(mf) < 4 || v1 && (mf[2] != "cgroup" || !slices.Contains(strings.Split(mf[3], ","), "cpu")) || !v1 && mf[2] != "cgroup2" {
				continue
			}
			for dir := filepath.Join(mf[1], f[2]); strings.HasPrefix(dir, mf[1]); dir = filepath.Dir(dir) {
				if q, ok := quotaIn(dir, v1); ok && (!found || q < best) {
					best, found = q, true
				}
				if dir == mf[1] {
					break
				}
			}
		}
	}
	return best, found
}

// quotaIn reads one cgroup directory's quota, in CPUs rounded up.
func quotaIn(dir string, v1 bool) (int, bool) {
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	q, p := read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")
	if !v1 {
		q, p, _ = strings.Cut(read("cpu.max"), " ")
	}
	quota, err1 := strconv.Atoi(q)
	period, err2 := strconv.Atoi(p)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0, false
	}
	return (quota + period - 1) / period, true
}
