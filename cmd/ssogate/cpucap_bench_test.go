package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuCaps puts processes into cgroups with a CPU bandwidth limit (CFS
// quota), one cgroup per process, below the cgroup this test process is in.
// It uses the cgroup v1 cpu controller at /sys/fs/cgroup/cpu when mounted,
// else cgroup v2 at /sys/fs/cgroup. Every cgroup it makes is removed in
// the test's cleanup, after moving its process back to where it was, also
// when the test fails.
type cpuCaps struct {
	v2     bool
	parent string // the directory the capped cgroups are made in
}

// newCPUCaps finds a writable cgroup hierarchy with the cpu controller, or
// returns an error that says why there is none.
func newCPUCaps() (*cpuCaps, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	if path, ok := own["cpu"]; ok {
		if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
			c := &cpuCaps{parent: filepath.Join("/sys/fs/cgroup/cpu", path)}
			return c, c.probe()
		}
	}
	controllers, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return nil, fmt.Errorf("no cgroup v1 cpu controller and no cgroup v2 at /sys/fs/cgroup: %w", err)
	}
	if !strings.Contains(" "+strings.TrimSpace(string(controllers))+" ", " cpu ") {
		return nil, fmt.Errorf("cgroup v2 at /sys/fs/cgroup has no cpu controller (%q)", strings.TrimSpace(string(controllers)))
	}
	if path := own[""]; path != "/" {
		// A v2 cgroup with processes cannot hand controllers to its
		// children; only the root is exempt.
		return nil, fmt.Errorf("this process is in cgroup v2 %s, not the root, so its children cannot get the cpu controller", path)
	}
	c := &cpuCaps{v2: true, parent: "/sys/fs/cgroup"}
	sub, _ := os.ReadFile(filepath.Join(c.parent, "cgroup.subtree_control"))
	if !strings.Contains(" "+strings.TrimSpace(string(sub))+" ", " cpu ") {
		if err := os.WriteFile(filepath.Join(c.parent, "cgroup.subtree_control"), []byte("+cpu"), 0); err != nil {
			return nil, fmt.Errorf("enable the cpu controller for /sys/fs/cgroup's children: %w", err)
		}
	}
	return c, c.probe()
}

// ownCgroups maps each cgroup v1 controller of this process to its cgroup
// path, and "" to its cgroup v2 path, from /proc/self/cgroup.
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	defer f.Close()
	own := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			own[ctl] = parts[2]
		}
	}
	return own, sc.Err()
}

// probe makes and removes one cgroup, to find out whether we may.
func (c *cpuCaps) probe() error {
	dir := filepath.Join(c.parent, fmt.Sprintf("ssogate-bench-probe-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s not writable: %w", c.parent, err)
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("remove probe cgroup %s: %w", dir, err)
	}
	return nil
}

// cpuCap is one capped cgroup holding one process.
type cpuCap struct {
	dir string
	v2  bool
}

// limit moves process pid into a new cgroup that may use cpus CPUs (0.4 is
// 40% of one core) averaged over each period; the CFS scheduler throttles
// it for the rest of a period once it has used its quota. The cgroup goes
// away in tb's cleanup: pid moves back to the parent cgroup, then the
// cgroup is removed (retried briefly; an error if it stays).
func (c *cpuCaps) limit(tb testing.TB, name string, pid int, cpus float64, period time.Duration) *cpuCap {
	tb.Helper()
	dir := filepath.Join(c.parent, fmt.Sprintf("ssogate-bench-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("make cgroup: %v", err)
	}
	cg := &cpuCap{dir: dir, v2: c.v2}
	tb.Cleanup(func() {
		// The process, if it still runs, goes back to where it came from
		// (ESRCH when it has exited: nothing to move).
		_ = os.WriteFile(filepath.Join(c.parent, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		var err error
		for range 50 {
			if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
		tb.Errorf("cgroup %s left behind: %v", dir, err)
	})
	periodUS := period.Microseconds()
	quotaUS := int64(cpus * float64(periodUS))
	if c.v2 {
		cg.write(tb, "cpu.max", fmt.Sprintf("%d %d", quotaUS, periodUS))
	} else {
		// The period first: the kernel checks the quota against it.
		cg.write(tb, "cpu.cfs_period_us", strconv.FormatInt(periodUS, 10))
		cg.write(tb, "cpu.cfs_quota_us", strconv.FormatInt(quotaUS, 10))
	}
	cg.write(tb, "cgroup.procs", strconv.Itoa(pid)) // all of its threads
	return cg
}

func (cg *cpuCap) write(tb testing.TB, file, value string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(cg.dir, file), []byte(value), 0); err != nil {
		tb.Fatalf("cgroup %s: write %s: %v", cg.dir, file, err)
	}
}

// throttleStats are a capped cgroup's CFS counters: enforcement periods
// and how many of them ran out of quota.
type throttleStats struct {
	periods, throttled int64
	throttledFor       time.Duration
}

func (cg *cpuCap) stats(tb testing.TB) throttleStats {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(cg.dir, "cpu.stat"))
	if err != nil {
		tb.Fatalf("cgroup %s: %v", cg.dir, err)
	}
	var s throttleStats
	for line := range strings.Lines(string(raw)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "nr_periods":
			s.periods = n
		case "nr_throttled":
			s.throttled = n
		case "throttled_time": // v1, ns
			s.throttledFor = time.Duration(n)
		case "throttled_usec": // v2
			s.throttledFor = time.Duration(n) * time.Microsecond
		}
	}
	return s
}

func (s throttleStats) sub(o throttleStats) throttleStats {
	return throttleStats{s.periods - o.periods, s.throttled - o.throttled, s.throttledFor - o.throttledFor}
}

func (s throttleStats) add(o throttleStats) throttleStats {
	return throttleStats{s.periods + o.periods, s.throttled + o.throttled, s.throttledFor + o.throttledFor}
}
