package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on every Linux we run on).
const clockTicks = 100

// cpuSample is a snapshot of where the machine's CPU time went so far: the whole machine,
// the PostgreSQL server (every postgres process, plus the postmaster's reaped children,
// so backends that exited are counted too) and the broker server processes.
type cpuSample struct {
	at          time.Time
	busy, total float64 // machine, seconds summed over cores
	postgres    float64
	broker      map[string]float64
}

// brokerPIDs locates the broker server processes: our nats-server, and the Kafka and
// RabbitMQ nodes of scripts/services.sh by their pid files.
func brokerPIDs(natsPID int) map[string]int {
	state := os.Getenv("CONVEYOR_STATE")
	if state == "" {
		state = "/var/tmp/conveyor"
	}
	out := map[string]int{}
	if natsPID > 0 {
		out["nats"] = natsPID
	}
	for name, f := range map[string]string{"kafka": "kafka/kafka.pid", "rabbitmq": "rabbitmq/rabbitmq.pid"} {
		b, err := os.ReadFile(filepath.Join(state, f))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[name] = pid
		}
	}
	return out
}

func sampleCPU(brokers map[string]int) cpuSample {
	s := cpuSample{at: time.Now(), broker: map[string]float64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
		var v [8]float64
		for i := 1; i < len(f) && i <= 8; i++ {
			v[i-1], _ = strconv.ParseFloat(f[i], 64)
		}
		s.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / clockTicks
		s.total = s.busy + (v[3]+v[4])/clockTicks
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, own, children, ok := procCPU(pid)
		if !ok {
			continue
		}
		if comm == "postgres" {
			s.postgres += own + children
		}
	}
	for name, pid := range brokers {
		if _, own, _, ok := procCPU(pid); ok {
			s.broker[name] = own
		}
	}
	return s
}

// procCPU reads a process's command name, its own CPU seconds and those of its reaped
// children.
func procCPU(pid int) (comm string, own, children float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < 0 {
		return "", 0, 0, false
	}
	comm = s[open+1 : closing]
	f := strings.Fields(s[closing+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return "", 0, 0, false
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
	own = (num(11) + num(12)) / clockTicks // utime stime: fields 14, 15
	children = (num(13) + num(14)) / clockTicks
	return comm, own, children, true
}

// cpuSplit is the CPU time of one run, by consumer, in seconds.
type cpuSplit struct {
	MachineBusyPct float64 `json:"machine_busy_pct"`
	PostgresS      float64 `json:"postgres_cpu_s"`
	BrokerS        float64 `json:"broker_cpu_s,omitempty"`
}

func splitCPU(a, b cpuSample, broker string) cpuSplit {
	c := cpuSplit{PostgresS: b.postgres - a.postgres}
	if total := b.total - a.total; total > 0 {
		c.MachineBusyPct = 100 * (b.busy - a.busy) / total
	}
	if broker != "" {
		c.BrokerS = b.broker[broker] - a.broker[broker]
	}
	return c
}
