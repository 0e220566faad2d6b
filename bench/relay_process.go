package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sinkSpec is the sink block and route destination of a relay config.
type sinkSpec struct {
	name        string // nats, kafka, rabbitmq: also the broker's name in reports
	block       string // the YAML lines of sinks.main, indented by 4
	destination string
}

// relayOptions are the relay settings a run changes; everything else is the default a
// user gets.
type relayOptions struct {
	listen bool
	extra  string // more YAML lines under relay:, indented by 2
	// telemetry is the metrics address; default 127.0.0.1:0 (a free port, unused).
	telemetry string
}

// relayProcess is one `bin/conveyor run` subprocess.
type relayProcess struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{} // closed when the process has ended
	waitErr error
}

// relayUsage is what the kernel accounted to a relay process over its life.
type relayUsage struct {
	CPUSeconds float64
	// MaxRSSMB is the process's VmHWM, read just before SIGTERM. The rusage maxrss is
	// no use here: os/exec starts the child with vfork, and Linux carries the parent's
	// memory high-water mark into the child's maxrss across exec, so it reports the
	// bench's own size.
	MaxRSSMB float64
	// RusageMaxRSSMB is that rusage value anyway, for the record.
	RusageMaxRSSMB float64
}

// vmHWM is a live process's peak resident memory in MB, from /proc/PID/status.
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// startRelay writes a config and starts the relay binary. The database URL and the
// broker credentials reach it through the environment (${...} in the config), so the
// config files hold no secret.
func startRelay(bin, dir, id, dbURL string, sk sinkSpec, o relayOptions) (*relayProcess, error) {
	cfg := fmt.Sprintf(`# written by bench/: one run of make bench
database:
  url: ${BENCH_DATABASE_URL}
  listen: %t
relay:
  id: %s
%s
sinks:
  main:
%s
routes:
  - name: all
    sink: main
    destination: %q
telemetry:
  listen: %s
log:
  level: warn
  format: json
`, o.listen, id, o.extra, sk.block, sk.destination, cmp.Or(o.telemetry, "127.0.0.1:0"))
	path := filepath.Join(dir, id+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, id+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Env = append(os.Environ(), "BENCH_DATABASE_URL="+dbURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &relayProcess{cmd: cmd, logPath: logPath, started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.done = make(chan struct{})
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process already ended (a bad config, a failed connection)
// and, if so, why.
func (p *relayProcess) exited() (bool, string) {
	select {
	case <-p.done:
		return true, fmt.Sprintf("%v: %s", p.waitErr, p.logTail())
	default:
		return false, ""
	}
}

func (p *relayProcess) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// stop sends SIGTERM, waits for the graceful shutdown and returns the process's rusage.
func (p *relayProcess) stop() (relayUsage, error) {
	hwm := vmHWM(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		err = fmt.Errorf("relay did not stop within 40s of SIGTERM; killed")
		<-p.done
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return relayUsage{}, fmt.Errorf("relay: no rusage")
	}
	u := relayUsage{
		CPUSeconds:     tv(ru.Utime) + tv(ru.Stime),
		MaxRSSMB:       hwm,
		RusageMaxRSSMB: float64(ru.Maxrss) / 1024, // KiB on Linux
	}
	if err == nil && p.waitErr != nil && !strings.Contains(p.waitErr.Error(), "signal: terminated") {
		err = fmt.Errorf("relay exited: %w: %s", p.waitErr, p.logTail())
	}
	return u, err
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
