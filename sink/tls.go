package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSOptions are the settings of a sink's tls block. Errors name them as the YAML
// config spells them (tls.ca_file, tls.cert_file/key_file).
type TLSOptions struct {
	// CAFile is a PEM file of the CAs to trust; empty keeps the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
	// InsecureSkipVerify disables server certificate verification. For tests only.
	InsecureSkipVerify bool
}

// Config returns a client config for TLS 1.2 or later with the options applied.
func (o TLSOptions) Config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if err := o.LoadFiles(tc); err != nil {
		return nil, err
	}
	return tc, nil
}

// LoadFiles sets the root CAs of tc from CAFile and its client certificate from
// CertFile and KeyFile, each when set. It leaves the other fields of tc alone, for a
// client library's own config.
func (o TLSOptions) LoadFiles(tc *tls.Config) error {
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls.ca_file %s holds no PEM certificate", o.CAFile)
		}
		tc.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return nil
}
