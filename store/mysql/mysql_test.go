package mysql_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
	"github.com/conveyorhq/conveyor/store/mysql"
	"github.com/conveyorhq/conveyor/store/storetest"
)

func open(t *testing.T) (*mysql.Store, string) {
	t.Helper()
	u := testdb.MySQLURL(t)
	s, err := mysql.Open(context.Background(), mysql.Config{URL: u})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, u
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, storetest.Harness{
		Dialect: outbox.MySQL,
		New: func(t *testing.T) (store.Store, *sql.DB) {
			s, _ := open(t)
			return s, s.DB()
		},
	})
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	c, err := mysql.ParseURL("mysql://app%20user:p%40ss%3Aw%2Frd@db.internal:3307/shop?tls=skip-verify&timeout=3s&time_zone=%27%2B00%3A00%27")
	require.NoError(t, err)
	require.Equal(t, "app user", c.User)
	require.Equal(t, "p@ss:w/rd", c.Passwd)
	require.Equal(t, "tcp", c.Net)
	require.Equal(t, "db.internal:3307", c.Addr)
	require.Equal(t, "shop", c.DBName)
	require.Equal(t, "skip-verify", c.TLSConfig)
	require.Equal(t, 3*time.Second, c.Timeout)
	require.Equal(t, "'+00:00'", c.Params["time_zone"])
	require.True(t, c.ParseTime)
	require.Equal(t, time.UTC, c.Loc)
	require.True(t, c.InterpolateParams)

	c, err = mysql.ParseURL("mariadb://u@[::1]/shop")
	require.NoError(t, err)
	require.Equal(t, "[::1]:3306", c.Addr)
	require.Equal(t, 10*time.Second, c.Timeout, "a default dial timeout")

	c, err = mysql.ParseURL("mysql://u:p@/shop?socket=/run/mysqld/mysqld.sock&interpolateParams=false")
	require.NoError(t, err)
	require.Equal(t, "unix", c.Net)
	require.Equal(t, "/run/mysqld/mysqld.sock", c.Addr)
	require.False(t, c.InterpolateParams)

	c, err = mysql.ParseURL("mysql://u:p@db/shop?tls=true")
	require.NoError(t, err)
	require.Equal(t, "true", c.TLSConfig)
	require.NotNil(t, c.TLS)
	require.Equal(t, "db", c.TLS.ServerName)
}

// TestParseURLSSLFiles: ssl-ca, ssl-cert and ssl-key load PEM files into the TLS config;
// without tls= the server is verified, with tls=skip-verify it is not.
func TestParseURLSSLFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	ca, cert, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.WriteFile(ca, certPEM, 0o600))
	require.NoError(t, os.WriteFile(cert, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))

	c, err := mysql.ParseURL("mysql://u:p@db.internal/shop?ssl-ca=" + url.QueryEscape(ca) + "&ssl-cert=" + url.QueryEscape(cert) + "&ssl-key=" + url.QueryEscape(keyFile))
	require.NoError(t, err)
	require.NotNil(t, c.TLS)
	require.False(t, c.TLS.InsecureSkipVerify)
	require.Equal(t, "db.internal", c.TLS.ServerName)
	require.NotNil(t, c.TLS.RootCAs)
	require.Len(t, c.TLS.Certificates, 1)

	c, err = mysql.ParseURL("mysql://u:p@db.internal/shop?tls=skip-verify&ssl-ca=" + url.QueryEscape(ca))
	require.NoError(t, err)
	require.True(t, c.TLS.InsecureSkipVerify)
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-secret"
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for raw, want := range map[string]string{
		"mysql://u:" + secret + "@db:3306":                         "names no database",
		"mysql://u:" + secret + "@db:3306/":                        "names no database",
		"mysql://u:" + secret + "@:3306/shop":                      "names no host",
		"mysql://u:" + secret + "@db:port/shop":                    "malformed",
		"mysql://u:" + secret + "@db/shop?tls=maybe":               "bad parameter",
		"mysql://u:" + secret + "@db/shop?timeout=soon":            "bad parameter",
		"mysql://u:" + secret + "@db/shop?parseTime=false":         "always reads times as UTC",
		"mysql://u:" + secret + "@db/shop?x=%zz":                   "malformed query string",
		"mysql:u:" + secret + "@db/shop":                           "no // after the scheme",
		"postgres://u:" + secret + "@db/shop":                      "is not mysql",
		"mysql://u:" + secret + "@db/shop?socket=/tmp/s":           "both a host and a socket",
		"mysql://u:" + secret + "@db/shop?ssl-ca=/nonexistent.pem": "ssl-ca",
		"mysql://u:" + secret + "@db/shop?ssl-ca=" + notPEM:        "holds no PEM certificate",
		"mysql://u:" + secret + "@db/shop?ssl-cert=/c.pem":         "needs both ssl-cert and ssl-key",
		"mysql://u:" + secret + "@db/shop?tls=false&ssl-ca=/c.pem": "tls=false together with",
	} {
		_, err := mysql.ParseURL(raw)
		require.ErrorContains(t, err, want, raw)
		require.NotContains(t, err.Error(), secret, raw)
		require.Contains(t, err.Error(), "mysql", raw)
	}
}

func TestOpenErrorsAreClearAndRedacted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Unreachable: nothing listens on port 1.
	_, err := mysql.Open(ctx, mysql.Config{URL: "mysql://conveyor:s3cret-pw-1@127.0.0.1:1/conveyor?timeout=2s"})
	require.ErrorContains(t, err, "connect to mysql host=127.0.0.1 port=1 user=conveyor database=conveyor")
	require.NotContains(t, err.Error(), "s3cret-pw-1")

	good := testdb.MySQLURL(t)
	u, err := url.Parse(good)
	require.NoError(t, err)
	const wrong = "not-the-password-7f3a9"
	u.User = url.UserPassword(u.User.Username(), wrong)
	_, err = mysql.Open(ctx, mysql.Config{URL: u.String()})
	require.ErrorContains(t, err, "Access denied")
	require.NotContains(t, err.Error(), wrong)

	// tls=true against this server, which has no TLS: refused, not sent in clear text.
	_, err = mysql.Open(ctx, mysql.Config{URL: good + "?tls=true"})
	require.ErrorContains(t, err, "TLS requested but server does not support TLS")

	u, err = url.Parse(good)
	require.NoError(t, err)
	u.Path = "/no_such_database_x"
	_, err = mysql.Open(ctx, mysql.Config{URL: u.String()})
	require.ErrorContains(t, err, "Unknown database")
	require.ErrorContains(t, err, "python manage.py migrate")
	pw, _ := u.User.Password()
	require.NotContains(t, err.Error(), pw)
}

// TestCheckNamesTheMissingMigration: a database migrated only up to 0003 is refused with
// the migration to apply, as on PostgreSQL and SQLite.
func TestCheckNamesTheMissingMigration(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	last := store.KnownMigrations[len(store.KnownMigrations)-1]
	_, err := s.DB().Exec(`DELETE FROM django_migrations WHERE app = 'conveyor' AND name = ?`, last)
	require.NoError(t, err)
	err = s.Check(context.Background())
	require.ErrorContains(t, err, "migration conveyor."+last+" is not applied; run `python manage.py migrate conveyor`")
}

func TestCheckMissingTableSaysMigrate(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	_, err := s.DB().Exec(`DROP TABLE conveyor_event`)
	require.NoError(t, err)
	err = s.Check(context.Background())
	require.ErrorIs(t, err, conveyor.ErrSchemaMissing)
	require.ErrorContains(t, err, "python manage.py migrate")
}

// TestIdsAreOrderedByTime: whatever the id column's type (char(32) on MySQL, uuid on
// MariaDB 10.7+), ids sort in UUIDv7 byte order, which is the per-key order.
func TestIdsAreOrderedByTime(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ids := []uuid.UUID{
		uuid.MustParse("00000000-0000-7000-8000-0000000000ff"),
		uuid.MustParse("00000001-0000-7000-8000-000000000000"),
		uuid.MustParse("0193a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a50"),
		uuid.MustParse("0193a0b1-c2d4-7000-8000-00000000000f"),
		uuid.MustParse("ffffffff-0000-7000-8000-000000000000"),
	}
	evs := make([]*outbox.Event, len(ids))
	for i := len(ids) - 1; i >= 0; i-- { // inserted newest first
		evs[len(ids)-1-i] = &outbox.Event{ID: ids[i], Type: "t", Source: "s", Key: "k", Data: map[string]int{"i": i}}
	}
	_, err := outbox.Insert(context.Background(), s.DB(), outbox.MySQL, evs...)
	require.NoError(t, err)
	var got []uuid.UUID
	for {
		c, err := s.Claim(context.Background(), &store.ClaimParams{RelayID: "r", Limit: 10, PerKey: 1, Lease: time.Minute})
		require.NoError(t, err)
		if len(c) == 0 {
			break
		}
		require.Len(t, c, 1, "one event of the key at a time")
		got = append(got, c[0].ID)
		res, err := s.Settle(context.Background(), &store.SettleParams{RelayID: "r", Outcomes: []store.Outcome{{ID: c[0].ID, LeaseToken: c[0].LeaseToken}}})
		require.NoError(t, err)
		require.Empty(t, res.LeaseLost)
	}
	require.Equal(t, ids, got)
}

// TestInvalidJSONIsReported: MariaDB's JSON is LONGTEXT; a row whose check was bypassed
// is reported for dead-lettering, not published.
func TestInvalidJSONIsReported(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	db := s.DB()
	id := uuid.Must(uuid.NewV7())
	_, err := outbox.Insert(context.Background(), db, outbox.MySQL, &outbox.Event{ID: id, Type: "t", Source: "s", Data: map[string]int{"n": 1}})
	require.NoError(t, err)
	// Drop the json_valid check MariaDB puts on the column (JSON is LONGTEXT there).
	_, err = db.Exec(`ALTER TABLE conveyor_event MODIFY data longtext NOT NULL`)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE conveyor_event SET data = '{not json' WHERE id = ?`, mysql.HexID(id))
	require.NoError(t, err)
	c, err := s.Claim(context.Background(), &store.ClaimParams{RelayID: "r", Limit: 10, PerKey: 1, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, c, 1)
	require.ErrorContains(t, c[0].DecodeErr, "data is not valid JSON")
}

func TestNoListenNotify(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	require.False(t, s.SupportsListenNotify())
	ch, err := s.Listen(context.Background())
	require.NoError(t, err)
	require.Nil(t, ch)
}
