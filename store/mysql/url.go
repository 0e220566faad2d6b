package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// URL query parameters the relay reads itself; every other one goes to the driver
// (github.com/go-sql-driver/mysql DSN parameters: tls, timeout, readTimeout, charset,
// collation, ... and session variables such as time_zone).
const (
	paramSocket  = "socket"   // a Unix socket path instead of host:port
	paramSSLCA   = "ssl-ca"   // PEM file of the CA(s) that signed the server certificate
	paramSSLCert = "ssl-cert" // PEM client certificate (with ssl-key)
	paramSSLKey  = "ssl-key"  // PEM client key
)

// defaultDialTimeout bounds connecting to an unreachable server unless the URL sets
// timeout=.
const defaultDialTimeout = 10 * time.Second

const urlForm = "mysql://user:password@host:3306/dbname"

// ParseURL turns mysql://user:password@host:3306/dbname?param=value (or mariadb://...)
// into a driver configuration. The error never contains the password.
//
// The relay always reads times as UTC (parseTime=true, loc=UTC) and, unless the URL says
// otherwise, interpolates parameters client-side (one round trip per statement) and
// gives up connecting after 10s. tls=true|false|skip-verify|preferred is the driver's;
// ssl-ca, ssl-cert and ssl-key name PEM files, as the mysql client's --ssl-* options do.
func ParseURL(raw string) (*driver.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		msg := "cannot parse"
		if errors.As(err, &ue) {
			msg = ue.Err.Error() // without the echo of the input, which holds the password
		}
		return nil, fmt.Errorf("conveyor: database url for mysql is malformed (%s): expected %s", msg, urlForm)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, fmt.Errorf("conveyor: database url scheme %q is not mysql: expected %s", u.Scheme, urlForm)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("conveyor: database url for mysql is malformed (no // after the scheme): expected %s", urlForm)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("conveyor: database url for mysql has a malformed query string (%v): expected %s?tls=true", err, urlForm)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("conveyor: database url for mysql names no database: expected %s", urlForm)
	}
	network, addr := "tcp", ""
	if sock := q.Get(paramSocket); sock != "" {
		if u.Host != "" {
			return nil, fmt.Errorf("conveyor: database url for mysql has both a host and a socket; use mysql://user:password@/dbname?socket=/run/mysqld/mysqld.sock for a Unix socket")
		}
		network, addr = "unix", sock
	} else {
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return nil, fmt.Errorf("conveyor: database url for mysql names no host: expected %s", urlForm)
		}
		if port == "" {
			port = "3306"
		}
		addr = net.JoinHostPort(host, port)
	}
	// The driver's own parameters, re-encoded in its DSN syntax.
	var params []string
	for k, vs := range q {
		switch k {
		case paramSocket, paramSSLCA, paramSSLCert, paramSSLKey:
			continue
		case "parseTime", "loc":
			return nil, fmt.Errorf("conveyor: database url for mysql sets %s; remove it: the relay always reads times as UTC (Django stores naive UTC with USE_TZ)", k)
		}
		for _, v := range vs {
			params = append(params, k+"="+url.QueryEscape(v))
		}
	}
	sort.Strings(params)
	dsn := network + "(" + addr + ")/"
	if len(params) > 0 {
		dsn += "?" + strings.Join(params, "&")
	}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("conveyor: database url for mysql has a bad parameter (%v): expected %s?tls=true", err, urlForm)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = name
	cfg.ParseTime, cfg.Loc = true, time.UTC
	if !q.Has("interpolateParams") {
		cfg.InterpolateParams = true
	}
	if !q.Has("timeout") {
		cfg.Timeout = defaultDialTimeout
	}
	if err := applySSLFiles(cfg, q, u.Hostname()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// applySSLFiles adds ssl-ca, ssl-cert and ssl-key to the TLS settings; tls= decides
// whether the server certificate is verified (default: verified).
func applySSLFiles(cfg *driver.Config, q url.Values, host string) error {
	ca, cert, key := q.Get(paramSSLCA), q.Get(paramSSLCert), q.Get(paramSSLKey)
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	if cfg.TLSConfig == "false" {
		return fmt.Errorf("conveyor: database url for mysql sets tls=false together with %s, %s or %s; drop one of them", paramSSLCA, paramSSLCert, paramSSLKey)
	}
	if (cert == "") != (key == "") {
		return fmt.Errorf("conveyor: database url for mysql needs both %s and %s for a client certificate", paramSSLCert, paramSSLKey)
	}
	if cfg.TLS == nil { // no tls= (or tls=true): verify the server
		cfg.TLS = &tls.Config{ServerName: host}
	}
	cfg.TLS.MinVersion = tls.VersionTLS12
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("conveyor: database url for mysql: %s: %w", paramSSLCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("conveyor: database url for mysql: %s %s holds no PEM certificate", paramSSLCA, ca)
		}
		cfg.TLS.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("conveyor: database url for mysql: %s/%s: %w", paramSSLCert, paramSSLKey, err)
		}
		cfg.TLS.Certificates = []tls.Certificate{pair}
	}
	return nil
}

// describe names a connection target without its password.
func describe(c *driver.Config) string {
	if c.Net == "unix" {
		return fmt.Sprintf("socket=%s user=%s database=%s", c.Addr, c.User, c.DBName)
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		host, port = c.Addr, ""
	}
	return fmt.Sprintf("host=%s port=%s user=%s database=%s", host, port, c.User, c.DBName)
}
