// Package testproc runs the server processes a test starts itself (a broker it can
// crash and restart without disturbing other tests), on free ports.
package testproc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/internal/testlog"
)

// pollEvery is how often Start checks whether the process is ready.
const pollEvery = 20 * time.Millisecond

// Process is a server process owned by one test, which can stop it and start it again.
// Its output, across restarts, is printed when the test fails.
type Process struct {
	name   string
	out    testlog.Buffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// New returns a process that is not running yet; name ("redis-server") is for messages.
// When the test ends the process is killed, and its output printed if the test failed.
func New(t testing.TB, name string) *Process {
	t.Helper()
	p := &Process{name: name}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Start runs cmd, its stdout and stderr going to the process's output, and waits until
// ready returns nil. It fails the test when the process exits first or ready has not
// passed within timeout.
func (p *Process) Start(t testing.TB, cmd *exec.Cmd, timeout time.Duration, ready func() error) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); close(exited) }(p.exited)

	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			p.cmd = nil
			t.Fatalf("%s exited at startup:\n%s", p.name, p.Output())
		default:
		}
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %s: %v\n%s", p.name, timeout, err, p.Output())
		}
		time.Sleep(pollEvery)
	}
}

// Kill kills the process, as a crash would, and waits for it to exit. It does nothing
// when the process is not running.
func (p *Process) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Stop asks the process to exit with SIGTERM and kills it if it has not within grace.
// It does nothing when the process is not running.
func (p *Process) Stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Output returns what the process has written so far, across restarts.
func (p *Process) Output() string { return p.out.String() }
