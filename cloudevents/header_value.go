package cloudevents

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Percent-encoding of attribute values for the ASCII-only header bindings (HTTP and NATS),
// as their specs define it: space, double quote, percent and every byte outside printable
// ASCII (U+0021-U+007E) become %XY with upper-case hex. Everything else is left alone.

const upperhex = "0123456789ABCDEF"

func needsEncoding(b byte) bool { return b <= ' ' || b >= 0x7F || b == '"' || b == '%' }

// encodeHeaderValue percent-encodes v for an HTTP or NATS header.
func encodeHeaderValue(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if needsEncoding(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if needsEncoding(c) {
			b.WriteByte('%')
			b.WriteByte(upperhex[c>>4])
			b.WriteByte(upperhex[c&0xF])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decodeHeaderValue reverses encodeHeaderValue as the HTTP and NATS bindings require:
// a double-quoted value is unquoted first (for older producers), then one round of
// percent-decoding is done. Lower-case hex and needlessly encoded characters are
// accepted; a malformed escape or a result that is not valid UTF-8 (such as the overlong
// "%C0%A0") is an error.
func decodeHeaderValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		u, err := unquote(v[1 : len(v)-1])
		if err != nil {
			return "", err
		}
		v = u
	}
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("%w: header value is not valid UTF-8", ErrInvalid)
		}
		return v, nil
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("%w: truncated percent-escape in header value %q", ErrInvalid, v)
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: malformed percent-escape %q in header value", ErrInvalid, v[i:i+3])
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(out) {
		return "", fmt.Errorf("%w: percent-decoded header value is not valid UTF-8", ErrInvalid)
	}
	return string(out), nil
}

// unquote processes the inside of an RFC 7230 quoted-string: a backslash escapes the
// next character.
func unquote(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				return "", fmt.Errorf("%w: quoted header value ends in a backslash", ErrInvalid)
			}
		}
		b = append(b, s[i])
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isToken reports whether name is an RFC 7230 token, the header names that HTTP and NATS
// (whose client is a little stricter than ADR-4) both accept.
func isToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// passValue returns an extra header's value for an ASCII-only header binding: as-is when
// the protocol can carry it unchanged, else percent-encoded like an attribute value.
func passValue(v string) string {
	if v != strings.TrimSpace(v) {
		return encodeHeaderValue(v)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c >= 0x7F {
			return encodeHeaderValue(v)
		}
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
