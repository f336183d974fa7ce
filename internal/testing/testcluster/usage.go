package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is what the cluster's processes used over a while.
type Usage struct {
	// RSS is each process's resident memory at the end, in bytes.
	RSS map[string]int64
	// CPU is each process's CPU time over the interval, user and system.
	CPU map[string]time.Duration
	// Interval is how long was measured.
	Interval time.Duration
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc's times.
const clockTicks = 100

// Measure reads the processes' CPU time, waits for d, and reads it again with their memory.
func (c *Cluster) Measure(d time.Duration) (Usage, error) {
	pids := c.PIDs()
	before := map[string]time.Duration{}
	for name, pid := range pids {
		t, _, err := procUsage(pid)
		if err != nil {
			return Usage{}, err
		}
		before[name] = t
	}
	time.Sleep(d)
	u := Usage{RSS: map[string]int64{}, CPU: map[string]time.Duration{}, Interval: d}
	for name, pid := range pids {
		t, rss, err := procUsage(pid)
		if err != nil {
			return Usage{}, err
		}
		u.CPU[name], u.RSS[name] = t-before[name], rss
	}
	return u, nil
}

// String is one line per process and a total.
func (u Usage) String() string {
	var b strings.Builder
	var rss int64
	var cpu time.Duration
	names := make([]string, 0, len(u.RSS))
	for n := range u.RSS {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		rss += u.RSS[n]
		cpu += u.CPU[n]
		fmt.Fprintf(&b, "%-24s %6d MiB RSS  %5.1f%% of a core\n", n, u.RSS[n]>>20, 100*u.CPU[n].Seconds()/u.Interval.Seconds())
	}
	fmt.Fprintf(&b, "%-24s %6d MiB RSS  %5.1f%% of a core (over %s)", "total", rss>>20, 100*cpu.Seconds()/u.Interval.Seconds(), u.Interval)
	return b.String()
}

// CPUTimes reads the CPU time (user + system) each process has used so far, by name; the
// difference of two readings is what it used in between.
func CPUTimes(pids map[string]int) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for name, pid := range pids {
		t, _, err := procUsage(pid)
		if err != nil {
			return nil, fmt.Errorf("reading the CPU time of %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// procUsage reads a process's CPU time (user + system) and resident memory from /proc.
func procUsage(pid int) (cpu time.Duration, rss int64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	_, fields, ok := parseStat(string(b))
	// After the command name: state is field 0, utime 11, stime 12, rss (pages) 21.
	if !ok || len(fields) < 22 {
		return 0, 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	pages, _ := strconv.ParseInt(fields[21], 10, 64)
	cpu = time.Duration(utime+stime) * time.Second / clockTicks
	return cpu, pages * int64(os.Getpagesize()), nil
}
