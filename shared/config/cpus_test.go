package config

import (
	"os"
	"path/filepath"
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

// TestAvailableCPUsHere: on the real host the figure is within the
// affinity mask and positive.
func TestAvailableCPUsHere(t *testing.T) {
	got := AvailableCPUs()
	if got.N < 1 || (got.Source != "affinity" && got.Source != "cgroup-quota") {
		t.Errorf("AvailableCPUs() = %+v", got)
	}
}
