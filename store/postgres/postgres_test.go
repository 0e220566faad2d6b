package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/postgres"
	"github.com/conveyorhq/conveyor/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Harness{
		Dialect: outbox.Postgres,
		New: func(t *testing.T) (store.Store, *sql.DB) {
			url := testdb.PostgresURL(t)
			s, err := postgres.Open(context.Background(), postgres.Config{URL: url})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			db, err := sql.Open("pgx", url)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return s, db
		},
	})
}

func TestJITIsOffUnlessConfigured(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	for dsn, want := range map[string]string{url: "off", url + "&jit=on": "on"} {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: dsn})
		require.NoError(t, err)
		var jit string
		require.NoError(t, s.Pool().QueryRow(context.Background(), "SHOW jit").Scan(&jit))
		require.Equal(t, want, jit)
		require.NoError(t, s.Close())
	}
}
