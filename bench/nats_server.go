package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamName is the JetStream stream every NATS run publishes into (subjects events.>),
// file storage, one replica, the default 2-minute duplicate window: what a production
// stream for the relay looks like on one node.
const streamName = "BENCH"

// natsServer is a nats-server process of our own (the tests start theirs the same way),
// on a free loopback port with its store in a scratch directory.
type natsServer struct {
	cmd *exec.Cmd
	url string
	dir string
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(ctx context.Context, bin, scratch string) (*natsServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(scratch, "jetstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(scratch, "nats-server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", dir, "-n", "bench")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &natsServer{cmd: cmd, url: fmt.Sprintf("nats://127.0.0.1:%d", port), dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.nc, err = nats.Connect(s.url, nats.Name("bench"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("nats-server on %s did not accept connections: %w", s.url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.stop()
		return nil, err
	}
	if _, err := s.js.AccountInfo(ctx); err != nil {
		s.stop()
		return nil, fmt.Errorf("nats-server on %s has no JetStream: %w", s.url, err)
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *natsServer) pid() int { return s.cmd.Process.Pid }

// resetStream deletes the stream and creates it empty, freeing the previous run's disk.
func (s *natsServer) resetStream(ctx context.Context) error {
	if err := s.js.DeleteStream(ctx, streamName); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream: %w", err)
	}
	_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"events.>"},
		Storage: jetstream.FileStorage, Replicas: 1, Duplicates: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	return nil
}

// count is the number of messages the stream holds.
func (s *natsServer) count(ctx context.Context) (int64, error) {
	st, err := s.js.Stream(ctx, streamName)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Msgs), nil
}

func (s *natsServer) stop() {
	if s.nc != nil {
		s.nc.Close()
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(s.dir)
}

func natsVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}
