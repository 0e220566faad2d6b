// Package testdb gives each test its own database made by the real Django migrations:
// PostgreSQL databases are cloned from the migrated template database, SQLite files are
// copied from the migrated template file (scripts/services.sh templates makes both).
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Require returns the environment variable or stops the test: it fails under CI (a
// service that is missing there is a broken build) and skips elsewhere.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set; run `make test` (or `eval \"$(scripts/services.sh env)\"` after `scripts/services.sh up`)", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// PostgresURL returns the DSN of a fresh database cloned from the migrated template. It
// is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := Require(t, "CONVEYOR_TEST_PG_DSN")
	template := os.Getenv("CONVEYOR_TEST_PG_TEMPLATE")
	if template == "" {
		template = "conveyor_template"
	}
	name := "t_" + randHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testdb: connect admin: %v", err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE ... TEMPLATE fails if anyone else is connected to the template, so
	// retry briefly: parallel tests clone it at the same time.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, pgx.Identifier{template}.Sanitize()))
		if err == nil || i > 50 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testdb: create database from template %s: %v (run `scripts/services.sh templates`)", template, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testdb: parse CONVEYOR_TEST_PG_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLitePath returns a fresh copy of the migrated template SQLite file.
func SQLitePath(t testing.TB) string {
	t.Helper()
	src := Require(t, "CONVEYOR_TEST_SQLITE_TEMPLATE")
	dst := filepath.Join(t.TempDir(), "db.sqlite3")
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("testdb: open sqlite template: %v (run `scripts/services.sh templates`)", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatalf("testdb: copy sqlite template: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return dst
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
