// Package testdb gives each test its own database made by the real Django migrations:
// PostgreSQL databases are cloned from the migrated template database, MariaDB/MySQL
// databases get a copy of the migrated template database's tables, SQLite files are
// copied from the migrated template file (scripts/services.sh templates makes them all).
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/conveyorhq/conveyor/store/mysql"
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

// MySQLURL returns the URL of a fresh MariaDB/MySQL database holding a copy of the
// migrated template's tables (CREATE TABLE ... LIKE keeps columns, indexes and checks)
// and rows (django_migrations). MariaDB has no CREATE DATABASE ... TEMPLATE. It is
// dropped when the test ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	admin := Require(t, "CONVEYOR_TEST_MYSQL_DSN")
	template := os.Getenv("CONVEYOR_TEST_MYSQL_TEMPLATE")
	if template == "" {
		template = "conveyor_template"
	}
	cfg, err := mysql.ParseURL(admin)
	if err != nil {
		t.Fatalf("testdb: CONVEYOR_TEST_MYSQL_DSN: %v", err)
	}
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		t.Fatalf("testdb: CONVEYOR_TEST_MYSQL_DSN: %v", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, template)
	if err != nil {
		t.Fatalf("testdb: list template tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("testdb: list template tables: %v", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("testdb: list template tables: %v", err)
	}
	if len(tables) == 0 {
		t.Fatalf("testdb: MySQL template database %s has no tables (run `scripts/services.sh templates`)", template)
	}
	name := "t_" + randHex(8)
	ident := func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
	stmts := []string{fmt.Sprintf("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", ident(name))}
	for _, tb := range tables {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s.%s LIKE %s.%s", ident(name), ident(tb), ident(template), ident(tb)),
			fmt.Sprintf("INSERT INTO %s.%s SELECT * FROM %s.%s", ident(name), ident(tb), ident(template), ident(tb)))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := driver.NewConnector(cfg)
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+ident(name)); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			t.Fatalf("testdb: copy template %s: %s: %v", template, st, err)
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testdb: parse CONVEYOR_TEST_MYSQL_DSN: %v", err)
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
