// Package safetext bounds text that comes from outside (response bodies, headers, certificate
// names) before it goes into an error message or a log line.
package safetext

import (
	"strings"
	"unicode/utf8"
)

// Clip returns s with invalid UTF-8 replaced, shortened to at most n bytes plus "..." on a
// character boundary.
func Clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
