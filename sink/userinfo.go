package sink

import "strings"

// The functions below find the user information of a URL without parsing it: a URL
// holding a password may not parse, and url.Parse errors quote the whole URL.

// cutUserinfo splits raw into prefix ("scheme://", or "" without a scheme), info (what
// stands before the last "@") and rest (that "@" and what follows). found is false when
// raw has no "@".
func cutUserinfo(raw string) (prefix, info, rest string, found bool) {
	scheme, after, ok := strings.Cut(raw, "://")
	if ok {
		prefix = scheme + "://"
	} else {
		after = raw
	}
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return "", "", raw, false
	}
	return prefix, after[:at], after[at:], true
}

// RedactPassword hides the password of user:password@ in raw. A user without a
// password is not a secret and stays.
func RedactPassword(raw string) string {
	prefix, info, rest, found := cutUserinfo(raw)
	if !found {
		return raw
	}
	user, _, hasPassword := strings.Cut(info, ":")
	if !hasPassword {
		return raw
	}
	return prefix + user + ":" + Redacted + rest
}

// RedactUserinfo hides the password of user:password@ in raw, or the whole of token@
// (where a lone user information is a password or a token).
func RedactUserinfo(raw string) string {
	prefix, info, rest, found := cutUserinfo(raw)
	if found && !strings.Contains(info, ":") {
		return prefix + Redacted + rest
	}
	return RedactPassword(raw)
}

// URLPassword returns the password of scheme://user:password@ in raw, or "". Without
// a scheme raw is no URL and has none.
func URLPassword(raw string) string {
	prefix, info, _, _ := cutUserinfo(raw)
	if prefix == "" {
		return ""
	}
	_, pw, _ := strings.Cut(info, ":")
	return pw
}

// UserinfoSecret returns what RedactUserinfo hides: the password of user:password@ in
// raw, or the whole of token@; "" when raw has no user information.
func UserinfoSecret(raw string) string {
	_, info, _, _ := cutUserinfo(raw)
	if _, pw, hasPassword := strings.Cut(info, ":"); hasPassword {
		return pw
	}
	return info
}
