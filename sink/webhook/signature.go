package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// secretPrefix marks a Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// decodeSecret returns the HMAC key of a "whsec_<base64>" secret.
func decodeSecret(s string) ([]byte, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), secretPrefix)
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		// Never quote the secret.
		return nil, errors.New(`not a valid secret: want "whsec_" followed by standard base64 (generate one with ` +
			"`echo whsec_$(head -c 32 /dev/urandom | base64)`)")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the secret decodes to %d bytes; Standard Webhooks secrets are 24 to 64 bytes", len(key))
	}
	return key, nil
}

// Signer signs webhook requests with one or more keys.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a signer for secrets in "whsec_<base64>" form.
func NewSigner(secrets []string) (*Signer, error) {
	s := &Signer{}
	for i, sec := range secrets {
		key, err := decodeSecret(sec)
		if err != nil {
			return nil, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

// Sign returns the webhook-signature header value for a message: "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" for each key, separated by spaces. Empty without keys.
func (s *Signer) Sign(id string, timestamp int64, body []byte) string {
	if s == nil || len(s.keys) == 0 {
		return ""
	}
	ts := strconv.FormatInt(timestamp, 10)
	sigs := make([]string, len(s.keys))
	for i, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return strings.Join(sigs, " ")
}
