package sqlite_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/sqlite"
	"github.com/conveyorhq/conveyor/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Harness{
		Dialect: outbox.SQLite,
		New: func(t *testing.T) (store.Store, *sql.DB) {
			path := testdb.SQLitePath(t)
			s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s, s.DB()
		},
	})
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"sqlite:///db.sqlite3":       "db.sqlite3",
		"sqlite:////tmp/x.sqlite3":   "/tmp/x.sqlite3",
		"sqlite:relative/db.sqlite3": "relative/db.sqlite3",
	} {
		got, err := sqlite.ParseURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"postgres://x", "sqlite://host/db", "sqlite:"} {
		_, err := sqlite.ParseURL(bad)
		require.Error(t, err, bad)
	}
}

func TestOpenMissingFile(t *testing.T) {
	t.Parallel()
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: "/nonexistent/db.sqlite3"})
	require.ErrorContains(t, err, "python manage.py migrate")
}
