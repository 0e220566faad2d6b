package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
)

// cli runs the CLI in-process and returns exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conveyor.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	code, out, _ := cli(t, "version")
	require.Equal(t, 0, code)
	require.Contains(t, out, "conveyor ")
	code, out, _ = cli(t, "help")
	require.Equal(t, 0, code)
	for _, sub := range []string{"run", "check", "status", "tail", "version"} {
		require.Contains(t, out, sub)
	}
	code, _, errOut := cli(t, "nope")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "nope"`)
	code, _, errOut = cli(t, "run", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "-config")
}

func TestMalformedConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ body, want string }{
		"unknown key":  {"database:\n  urll: x\n", `database.urll: unknown key (did you mean "url"?)`},
		"bad duration": {"relay:\n  lease: 30\n", `invalid duration "30"`},
		"unknown sink": {"sinks:\n  a: {type: nats}\nroutes:\n  - {sink: b, destination: x}\n", `routes[0].sink: unknown sink "b"`},
		"bad template": {"sinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'x.{nope}'}\n", "unknown placeholder {nope}"},
		"missing env":  {"database:\n  url: ${CONVEYOR_TEST_UNSET_VAR}\n", "CONVEYOR_TEST_UNSET_VAR is not set"},
		"bad scheme":   {"database:\n  url: mongodb://u:hunter2@x/db\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: x}\n", "database.url: unsupported scheme"},
		"sink type":    {"sinks:\n  a: {type: carrier-pigeon}\n", `unknown sink type "carrier-pigeon"`},
		"not yaml":     {"database: [\n", "yaml"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := cli(t, "check", "--config", writeConfig(t, tc.body))
			require.Equal(t, 1, code, errOut)
			require.Contains(t, errOut, tc.want)
			require.NotContains(t, errOut, "hunter2")
		})
	}
}

func TestMissingSQLiteFile(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "database:\n  url: sqlite:////nonexistent/dir/db.sqlite3\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'events.{event_type}'}\n")
	code, _, errOut := cli(t, "check", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "python manage.py migrate")
}

func TestWrongPostgresPasswordIsClearAndRedacted(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresURL(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	const secret = "not-the-password-7f3a9"
	u.User = url.UserPassword(u.User.Username(), secret)
	cfg := writeConfig(t, "database:\n  url: "+u.String()+"\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'events.{event_type}'}\n")
	for _, sub := range []string{"check", "run", "status"} {
		code, out, errOut := cli(t, sub, "--config", cfg)
		require.Equal(t, 1, code, sub)
		require.Contains(t, errOut, "password authentication failed", sub)
		require.NotContains(t, errOut+out, secret, sub)
	}
}

func TestUnreachablePostgres(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "database:\n  url: postgres://conveyor:s3cret-pw@127.0.0.1:1/conveyor?connect_timeout=2\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'events.{event_type}'}\n")
	code, _, errOut := cli(t, "check", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "host=127.0.0.1 port=1")
	require.NotContains(t, errOut, "s3cret-pw")
}

func TestMissingTableNamesTheMigration(t *testing.T) {
	t.Parallel()
	dsn := testdb.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "DROP TABLE conveyor_event")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	cfg := writeConfig(t, "database:\n  url: "+dsn+"\nsinks:\n  a: {type: nats}\nroutes:\n  - {sink: a, destination: 'events.{event_type}'}\n")
	code, _, errOut := cli(t, "run", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "run `python manage.py migrate conveyor`")
	require.True(t, strings.Contains(errOut, "conveyor_event not found"), errOut)
}
